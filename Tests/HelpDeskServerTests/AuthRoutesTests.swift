import Foundation
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("auth routes")
struct AuthRoutesTests {
    @Test("login returns tokens; me answers with the caller")
    func loginAndMe() async throws {
        let node = try await TestNode.make()
        try await node.createUser("ann@example.com", role: "agent")
        try await node.test { client in
            let login = try await client.json(.post, "/api/v1/auth/login", body: ["email": "ANN@example.com ", "password": "password123"])
            #expect(login.status == 200)
            #expect(login.body["expires_in"] as? Int == 900)
            #expect((login.body["user"] as? [String: Any])?["role"] as? String == "agent")
            #expect((login.body["user"] as? [String: Any])?["password_hash"] == nil)
            let token = try #require(login.body["access_token"] as? String)
            let me = try await client.json(.get, "/api/v1/auth/me", token: token)
            #expect(me.status == 200)
            #expect(me.body["email"] as? String == "ann@example.com")
        }
    }

    @Test("wrong password and unknown e-mail get the same 401")
    func noEnumeration() async throws {
        let node = try await TestNode.make()
        try await node.createUser("ann@example.com", role: "agent")
        try await node.test { client in
            let wrong = try await client.json(.post, "/api/v1/auth/login", body: ["email": "ann@example.com", "password": "wrong-password"])
            let unknown = try await client.json(.post, "/api/v1/auth/login", body: ["email": "nobody@example.com", "password": "wrong-password"])
            #expect(wrong.status == 401)
            #expect(unknown.status == 401)
            // The same answer but for the request id each response carries (issue 12 #5).
            func withoutRequestID(_ body: [String: Any]) -> NSDictionary {
                var error = body["error"] as? [String: Any] ?? [:]
                #expect(error.removeValue(forKey: "request_id") is String)
                return NSDictionary(dictionary: ["error": error])
            }
            #expect(withoutRequestID(wrong.body) == withoutRequestID(unknown.body))
            #expect(wrong.body.errorCode == "invalid_credentials")
        }
    }

    @Test("refresh rotates; an old refresh token is refused and ends that login's sessions")
    func refreshRotation() async throws {
        let node = try await TestNode.make()
        try await node.createUser("ann@example.com", role: "agent")
        try await node.test { client in
            let login = try await client.json(.post, "/api/v1/auth/login", body: ["email": "ann@example.com", "password": "password123"])
            let first = try #require(login.body["refresh_token"] as? String)
            let rotated = try await client.json(.post, "/api/v1/auth/refresh", body: ["refresh_token": first])
            #expect(rotated.status == 200)
            let second = try #require(rotated.body["refresh_token"] as? String)
            #expect(second != first)
            #expect(rotated.body["access_token"] is String)

            let reuse = try await client.json(.post, "/api/v1/auth/refresh", body: ["refresh_token": first])
            #expect(reuse.status == 401)
            // Reuse means the token leaked: the newer token of the same login is revoked too.
            let afterReuse = try await client.json(.post, "/api/v1/auth/refresh", body: ["refresh_token": second])
            #expect(afterReuse.status == 401)

            let garbage = try await client.json(.post, "/api/v1/auth/refresh", body: ["refresh_token": "nonsense"])
            #expect(garbage.status == 401)
        }
    }

    @Test("logout revokes the refresh token")
    func logout() async throws {
        let node = try await TestNode.make()
        try await node.createUser("ann@example.com", role: "agent")
        try await node.test { client in
            let login = try await client.json(.post, "/api/v1/auth/login", body: ["email": "ann@example.com", "password": "password123"])
            let access = try #require(login.body["access_token"] as? String)
            let refresh = try #require(login.body["refresh_token"] as? String)
            let out = try await client.json(.post, "/api/v1/auth/logout", token: access, body: ["refresh_token": refresh])
            #expect(out.status == 204)
            #expect(try await client.json(.post, "/api/v1/auth/refresh", body: ["refresh_token": refresh]).status == 401)
            #expect(try await client.json(.post, "/api/v1/auth/logout", body: ["refresh_token": refresh]).status == 401, "logout needs a token")
        }
    }

    @Test("expired, forged and alg:none tokens get 401")
    func badTokens() async throws {
        let node = try await TestNode.make()
        let id = try await node.createUser("root@example.com", role: "admin")
        try await node.test { client in
            let now = Int(Date().timeIntervalSince1970)
            let expired = node.services.tokens.sign(.init(sub: String(id), role: "admin", iat: now - 1000, exp: now - 10))
            let valid = node.services.tokens.sign(.init(sub: String(id), role: "admin", iat: now, exp: now + 100))
            let parts = valid.split(separator: ".").map(String.init)
            let none = Base64URLTest.encode(#"{"alg":"none","kid":"k1"}"#) + "." + parts[1] + "."
            let forged = parts[0] + "." + Base64URLTest.encode(#"{"sub":"\#(id)","role":"admin","iat":\#(now),"exp":\#(now + 9999)}"#) + "." + parts[2]
            for token in [expired, none, forged, "garbage"] {
                let response = try await client.json(.get, "/api/v1/users", token: token)
                #expect(response.status == 401, "\(token)")
            }
            #expect(try await client.json(.get, "/api/v1/users", token: valid).status == 200)
            #expect(try await client.json(.get, "/api/v1/users").status == 401, "no token")
        }
    }

    @Test("repeated failed logins get 429 per e-mail, even with the right password")
    func rateLimitPerEmail() async throws {
        let node = try await TestNode.make(["HELPDESK_LOGIN_LIMIT_PER_EMAIL": "3"])
        try await node.createUser("ann@example.com", role: "agent")
        try await node.test { client in
            for _ in 0..<3 {
                #expect(try await client.json(.post, "/api/v1/auth/login", body: ["email": "ann@example.com", "password": "nope-nope"]).status == 401)
            }
            let blocked = try await client.json(.post, "/api/v1/auth/login", body: ["email": "ann@example.com", "password": "password123"])
            #expect(blocked.status == 429)
            #expect(blocked.body.errorCode == "rate_limited")
            // Another account is not blocked by Ann's counter.
            try await node.createUser("bob@example.com", role: "agent")
            #expect(try await client.json(.post, "/api/v1/auth/login", body: ["email": "bob@example.com", "password": "password123"]).status == 200)
        }
    }

    @Test("repeated failed logins from one IP get 429 across e-mails")
    func rateLimitPerIP() async throws {
        let node = try await TestNode.make(["HELPDESK_LOGIN_LIMIT_PER_IP": "3"])
        try await node.createUser("ann@example.com", role: "agent")
        try await node.test { client in
            for email in ["x0@example.com", "x1@example.com", "x2@example.com"] {
                let failed = try await client.json(.post, "/api/v1/auth/login", body: ["email": email, "password": "nope-nope"])
                #expect(failed.status == 401)
            }
            let blocked = try await client.json(.post, "/api/v1/auth/login", body: ["email": "ann@example.com", "password": "password123"])
            #expect(blocked.status == 429)
        }
        // The counters live in Redis under the node's prefix.
        let keys = try await node.services.redis.send("KEYS", node.services.keys.prefix + "rl:login:ip:*").array ?? []
        #expect(keys.count == 1)
    }

    @Test("malformed login bodies get 400 with a code and message")
    func badBodies() async throws {
        let node = try await TestNode.make()
        try await node.test { client in
            let cases: [(String, String)] = [
                ("{not json", "invalid_json"),
                ("", "invalid_json"),
                (#"{"email": 5, "password": "x"}"#, "validation_failed"),
                (#"{"email": "a@b.io"}"#, "validation_failed"),
                ("[1,2]", "validation_failed"),
                (#"{"email":"a@b.io","password":"\#(String(repeating: "x", count: 70_000))"}"#, "payload_too_large"),
            ]
            for (raw, code) in cases {
                let response = try await client.json(.post, "/api/v1/auth/login", raw: raw)
                #expect(response.status == 400, "\(raw.prefix(40))")
                #expect(response.body.errorCode == code, "\(raw.prefix(40))")
                let message = (response.body["error"] as? [String: Any])?["message"] as? String
                #expect(message?.isEmpty == false)
            }
        }
    }
}

enum Base64URLTest {
    static func encode(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

import Foundation
import HelpDeskCore
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("customer accounts", .serialized)
struct CustomerAccountsTests {
    static func register(_ node: TestCluster.Node, name: String = "Dana", email: String, password: String = "correct horse") async throws -> (Int, [String: Any]) {
        try await HTTP.request("POST", node.url + "/api/v1/auth/register", body: ["name": name, "email": email, "password": password])
    }

    static func login(_ node: TestCluster.Node, _ email: String, _ password: String = "correct horse") async throws -> String {
        let (status, reply) = try await HTTP.request("POST", node.url + "/api/v1/auth/login", body: ["email": email, "password": password])
        guard status == 200, let token = reply["access_token"] as? String else { throw TestSocketError.failed("login failed: \(status) \(reply)") }
        return token
    }

    static func myConversations(_ node: TestCluster.Node, _ token: String, query: String = "") async throws -> (Int, [[String: Any]], [String: Any]) {
        let (status, reply) = try await HTTP.request("GET", node.url + "/api/v1/me/conversations" + query, token: token)
        return (status, reply["conversations"] as? [[String: Any]] ?? [], reply)
    }

    @Test("register → login → chat (customer on A, agent on B) → close: the conversation and its transcript are in My conversations, live and archived; another customer gets 404")
    func accountChatIsListed() async throws {
        // archived conversations leave Redis a second after the flush: the list and the transcript then come from PostgreSQL
        let cluster = try await TestCluster(overrides: ["HELPDESK_ARCHIVE_RETENTION": "1"])
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent\(TestEnvironment.uniqueID())@example.com", on: b)
        let email = "dana\(TestEnvironment.uniqueID())@example.com"

        let (registered, reply) = try await Self.register(a, email: email)
        #expect(registered == 201, "\(reply)")
        let user = reply["user"] as? [String: Any] ?? [:]
        #expect(user["role"] as? String == "customer" && user["email"] as? String == email && user["name"] as? String == "Dana")
        #expect(reply["access_token"] is String && reply["refresh_token"] == nil)
        let again = try await Self.register(b, name: "Mallory", email: email.uppercased())
        #expect(again.0 == 409 && again.1.errorCode == "conflict", "\(again)")

        // sign in on the other node; the wrong password gets the same 401 as an unknown address
        let wrong = try await HTTP.request("POST", b.url + "/api/v1/auth/login", body: ["email": email, "password": "not the one"])
        let unknown = try await HTTP.request("POST", b.url + "/api/v1/auth/login", body: ["email": "nobody-\(email)", "password": "not the one"])
        #expect(wrong.0 == 401 && unknown.0 == 401 && wrong.1.errorCode == unknown.1.errorCode)
        let token = try await Self.login(b, email)
        let me = try await HTTP.request("GET", a.url + "/api/v1/auth/me", token: token)
        #expect(me.0 == 200 && me.1["email"] as? String == email && me.1["role"] as? String == "customer")
        #expect(try await Self.myConversations(a, token).1.isEmpty)

        // A signed-in start: the account's name and e-mail whatever the form says; starting again
        // while it is open gives the same conversation back.
        let (started, start) = try await HTTP.request("POST", a.url + "/api/v1/conversations", token: token,
                                                      body: ["name": "Someone Else", "email": "else@example.com", "subject": "Invoice"])
        #expect(started == 201, "\(start)")
        let id = try #require(start["conversation_id"] as? String)
        let chatToken = try #require(start["customer_token"] as? String)
        let resumed = try await HTTP.request("POST", b.url + "/api/v1/conversations", token: token, body: ["name": "Dana", "email": email])
        #expect(resumed.0 == 200 && resumed.1["conversation_id"] as? String == id, "\(resumed)")
        let live = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(id)", token: token)
        #expect(live.0 == 200 && (live.1["customer"] as? [String: Any])?["name"] as? String == "Dana", "\(live)")

        let customer = try await TestSocket.connect(a.wsURL, token: chatToken, label: "customer")
        _ = try await customer.next("QUEUE_STATUS")
        let agentSocket = try await TestSocket.connect(b.wsURL, token: agent.token, label: "agent")
        #expect(try await agentSocket.request("PICK", ["conversation_id": id]).event == "ACK")
        _ = try await customer.next("CONVERSATION_ASSIGNED")
        #expect(try await customer.request("SEND_MESSAGE", ["conversation_id": id, "text": "my invoice is wrong", "client_msg_id": "c1"]).event == "ACK")
        #expect(try await agentSocket.request("SEND_MESSAGE", ["conversation_id": id, "text": "fixed it", "client_msg_id": "a1"]).event == "ACK")
        // the account token itself may write too (REST): it owns the conversation
        let viaAccount = try await HTTP.request("POST", b.url + "/api/v1/conversations/\(id)/messages", token: token,
                                                body: ["text": "thanks!", "client_msg_id": "c2"])
        #expect(viaAccount.0 == 201, "\(viaAccount)")
        #expect(try await agentSocket.request("CLOSE_CONVERSATION", ["conversation_id": id, "resolution": "solved"]).event == "ACK")
        _ = try await customer.next("CONVERSATION_CLOSED")

        // closed, not yet (or just) archived: listed with its transcript
        let (listed, list, _) = try await Self.myConversations(a, token)
        #expect(listed == 200)
        #expect(list.compactMap { $0["id"] as? String } == [id])
        #expect(list.first?["status"] as? String == "closed")
        let transcript = try await HTTP.request("GET", b.url + "/api/v1/conversations/\(id)/messages", token: token)
        #expect(transcript.0 == 200)
        #expect((transcript.1["messages"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String } == ["my invoice is wrong", "fixed it", "thanks!"])

        // archived and gone from Redis: the same answers from PostgreSQL
        let redis = cluster.redis()
        defer { Task { await redis.close() } }
        try await eventually("archived and expired from Redis", timeout: .seconds(20)) {
            try await redis.send("EXISTS", cluster.prefix + "conv:" + id).int == 0
        }
        let (_, archivedList, _) = try await Self.myConversations(b, token)
        #expect(archivedList.compactMap { $0["id"] as? String } == [id])
        #expect(archivedList.first?["status"] as? String == "closed" && archivedList.first?["resolution"] as? String == "solved")
        let archivedTranscript = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(id)/messages", token: token)
        #expect((archivedTranscript.1["messages"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String } == ["my invoice is wrong", "fixed it", "thanks!"])

        // another customer: an account of its own, and an anonymous one; neither sees it
        let otherEmail = "eve\(TestEnvironment.uniqueID())@example.com"
        #expect(try await Self.register(a, name: "Eve", email: otherEmail).0 == 201)
        let eve = try await Self.login(a, otherEmail)
        let anonymous = try await cluster.startChat(on: a)
        for stranger in [eve, anonymous.token] {
            let conversation = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(id)", token: stranger)
            let messages = try await HTTP.request("GET", b.url + "/api/v1/conversations/\(id)/messages", token: stranger)
            #expect(conversation.0 == 404 && conversation.1.errorCode == "not_found", "\(conversation)")
            #expect(messages.0 == 404 && messages.1.errorCode == "not_found", "\(messages)")
        }
        #expect(try await Self.myConversations(a, eve).1.isEmpty)
        // an anonymous chat token does not list anything
        #expect(try await Self.myConversations(a, anonymous.token).0 == 403)
    }

    @Test("an anonymous chat started with a registered e-mail gets its own customer identity: not listed, not readable by the account, and the account's chat is not the anonymous token's")
    func anonymousChatWithARegisteredEmail() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let email = "fay\(TestEnvironment.uniqueID())@example.com"
        #expect(try await Self.register(a, name: "Fay", email: email).0 == 201)
        let token = try await Self.login(a, email)
        let (_, own) = try await HTTP.request("POST", a.url + "/api/v1/conversations", token: token, body: ["name": "Fay", "email": email])
        let ownID = try #require(own["conversation_id"] as? String)

        // someone else types Fay's address: a chat of its own, answered like any start
        let stranger = try await cluster.startChat(on: a, email: email, name: "Not Fay")
        #expect(stranger.id != ownID)
        let listed = try await Self.myConversations(a, token).1.compactMap { $0["id"] as? String }
        #expect(listed == [ownID])
        #expect(try await HTTP.request("GET", a.url + "/api/v1/conversations/\(stranger.id)", token: token).0 == 404)
        #expect(try await HTTP.request("GET", a.url + "/api/v1/conversations/\(ownID)", token: stranger.token).0 == 404)
        let strangerView = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(stranger.id)", token: stranger.token)
        let accountID = try #require((try await HTTP.request("GET", a.url + "/api/v1/auth/me", token: token)).1["id"] as? String)
        #expect((strangerView.1["customer"] as? [String: Any])?["id"] as? String != accountID)
        // and it cannot write into the account's chat
        let write = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(ownID)/messages", token: stranger.token,
                                           body: ["text": "hi", "client_msg_id": "x"])
        #expect(write.0 == 403, "\(write)")
    }

    @Test("register checks its fields, refuses staff addresses, and is rate-limited per IP")
    func registerRules() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_REGISTER_LIMIT_PER_IP": "3"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let staffEmail = "staff\(TestEnvironment.uniqueID())@example.com"
        _ = try await cluster.staff(staffEmail, on: a)
        let short = try await Self.register(a, email: "x\(TestEnvironment.uniqueID())@example.com", password: "short")
        #expect(short.0 == 400 && short.1.errorCode == "validation_failed")
        let badEmail = try await Self.register(a, email: "not-an-address")
        #expect(badEmail.0 == 400 && badEmail.1.errorCode == "validation_failed")
        // validation failures are not counted; these three are
        let staff = try await Self.register(a, email: staffEmail)
        #expect(staff.0 == 409 && staff.1.errorCode == "conflict", "\(staff)")
        #expect(try await Self.register(a, email: "g\(TestEnvironment.uniqueID())@example.com").0 == 201)
        #expect(try await Self.register(a, email: "h\(TestEnvironment.uniqueID())@example.com").0 == 201)
        let limited = try await Self.register(a, email: "i\(TestEnvironment.uniqueID())@example.com")
        #expect(limited.0 == 429 && limited.1.errorCode == "rate_limited", "\(limited)")
        // the staff account still signs in as staff
        let login = try await HTTP.request("POST", a.url + "/api/v1/auth/login", body: ["email": staffEmail, "password": "password123"])
        #expect(login.0 == 200 && (login.1["user"] as? [String: Any])?["role"] as? String == "agent" && login.1["refresh_token"] is String)
    }

    @Test("an admin resets a customer's password (`helpdesk customer reset-password`): the new one signs in, the old one no longer")
    func resetPassword() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let email = "gus\(TestEnvironment.uniqueID())@example.com"
        #expect(try await Self.register(a, name: "Gus", email: email, password: "old password").0 == 201)
        let accounts = CustomerAccounts(pool: a.services.postgres)
        #expect(try await accounts.resetPassword(email: email.uppercased(), password: "new password"))
        #expect(try await !accounts.resetPassword(email: "nobody-\(email)", password: "new password"))
        await #expect(throws: HelpDeskError.self) { _ = try await accounts.resetPassword(email: email, password: "short") }
        #expect(try await HTTP.request("POST", a.url + "/api/v1/auth/login", body: ["email": email, "password": "old password"]).0 == 401)
        _ = try await Self.login(a, email, "new password")

        // the command itself, as an admin runs it
        let binary = TestEnvironment.repositoryRoot + "/.build/debug/helpdesk"
        if FileManager.default.isExecutableFile(atPath: binary) {
            let env = cluster.environment(nodeID: "cli")
            let output = try CLI.run(binary, ["customer", "reset-password", "--email", email], environment: env)
            #expect(output.status == 0, "\(output)")
            let printed = try #require(output.stdout.components(separatedBy: ": ").last?.trimmingCharacters(in: .whitespacesAndNewlines))
            _ = try await Self.login(a, email, printed)
            let missing = try CLI.run(binary, ["customer", "reset-password", "--email", "nobody-\(email)", "--password", "whatever123"], environment: env)
            #expect(missing.status != 0 && missing.stderr.contains("no customer account"), "\(missing)")
        } else {
            Issue.record("\(binary) is not built")
        }
    }
}

/// Runs a command to its end and returns its status and output.
enum CLI {
    static func run(_ path: String, _ arguments: [String], environment: [String: String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

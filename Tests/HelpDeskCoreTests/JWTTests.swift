import Foundation
import Testing
@testable import HelpDeskCore

@Suite("JWT HS256")
struct JWTTests {
    let keyring = try! JWTKeyring(currentKeyID: "k2", currentSecret: "a-secret-of-at-least-16-bytes", previousKeys: "k1:the-previous-secret-value")
    var signer: JWTSigner { JWTSigner(keyring: keyring) }
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func claims(exp: Int = 1_800_000_900) -> TokenClaims {
        TokenClaims(sub: "42", role: "agent", iat: 1_800_000_000, exp: exp, name: "Ann")
    }

    /// RFC 7515 appendix A.1: the HS256 example's signature over its exact signing input.
    @Test("HMAC-SHA256 signature matches RFC 7515 A.1")
    func rfc7515() throws {
        let key = try #require(Base64URL.decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"))
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        #expect(Base64URL.encode(Crypto.hmacSHA256(key: key, data: Array(input.utf8))) == "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        // The RFC's token has no kid: our verifier refuses it even with the right key.
        let ring = JWTSigner(keyring: JWTKeyring(currentKeyID: "rfc", keys: ["rfc": key]))
        #expect(throws: HelpDeskError.self) { try ring.verify(input + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", now: Date(timeIntervalSince1970: 1_300_000_000)) }
    }

    @Test("base64url: every length round-trips without padding or + /; padding, other characters and impossible lengths are refused")
    func base64URL() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("+") && !text.contains("/") && !text.contains("="), "\(text)")
            #expect(text.utf8.count == (length * 4 + 2) / 3)
            #expect(Base64URL.decode(text) == bytes)
            #expect(Base64URL.decode(text[...]) == bytes, "a Substring, as a token's parts are")
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xfb, 0xff])
        #expect(Base64URL.decode("-_8=") == nil)
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("ab c") == nil)
        #expect(Base64URL.decode("é") == nil)
        #expect(Base64URL.decode("") == [])
    }

    @Test("a signed token verifies and carries its claims and kid")
    func roundTrip() throws {
        let token = signer.sign(claims())
        #expect(try signer.verify(token, now: now) == claims())
        let header = try #require(Base64URL.decode(token.split(separator: ".")[0]))
        let json = try JSONSerialization.jsonObject(with: Data(header)) as? [String: String]
        #expect(json?["alg"] == "HS256")
        #expect(json?["kid"] == "k2")
    }

    @Test("an expired token is refused as token_expired")
    func expired() {
        let token = signer.sign(claims(exp: 1_800_000_000))
        #expect(throws: HelpDeskError(.tokenExpired, "token expired")) { try signer.verify(token, now: now) }
    }

    @Test("forged signature, alg none, other algorithms and unknown kids are refused")
    func forged() throws {
        let token = signer.sign(claims())
        let parts = token.split(separator: ".").map(String.init)
        // Flip the last signature character.
        let badSig = parts[0] + "." + parts[1] + "." + String(parts[2].dropLast()) + (parts[2].hasSuffix("A") ? "B" : "A")
        func header(_ json: String) -> String { Base64URL.encode(Array(json.utf8)) }
        let forgedPayload = Base64URL.encode(Array(#"{"sub":"1","role":"admin","iat":1800000000,"exp":1900000000}"#.utf8))
        let cases = [
            badSig,
            header(#"{"alg":"none","kid":"k2"}"#) + "." + forgedPayload + ".",
            header(#"{"alg":"none","kid":"k2"}"#) + "." + parts[1] + "." + parts[2],
            header(#"{"alg":"HS512","kid":"k2"}"#) + "." + parts[1] + "." + parts[2],
            header(#"{"alg":"HS256","kid":"nope"}"#) + "." + parts[1] + "." + parts[2],
            header(#"{"alg":"HS256"}"#) + "." + parts[1] + "." + parts[2],
            parts[0] + "." + forgedPayload + "." + parts[2],
            "not.a.token", "", "a.b", token + ".x",
        ]
        for bad in cases {
            #expect(throws: HelpDeskError.self, "\(bad)") { try signer.verify(bad, now: now) }
        }
    }

    @Test("a token signed with a previous key still verifies after rotation")
    func rotation() throws {
        let old = JWTSigner(keyring: try JWTKeyring(currentKeyID: "k1", currentSecret: "the-previous-secret-value"))
        let token = old.sign(claims())
        #expect(try signer.verify(token, now: now).sub == "42")
        // ...and one signed with an unknown secret under a known kid does not.
        let impostor = JWTSigner(keyring: try JWTKeyring(currentKeyID: "k1", currentSecret: "some-other-secret-value"))
        #expect(throws: HelpDeskError.self) { try signer.verify(impostor.sign(claims()), now: now) }
    }

    @Test("secrets shorter than 16 bytes are refused")
    func shortSecret() {
        #expect(throws: HelpDeskError.self) { try JWTKeyring(currentKeyID: "k1", currentSecret: "short") }
    }
}

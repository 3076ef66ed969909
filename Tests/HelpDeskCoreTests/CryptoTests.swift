import Foundation
import Testing
@testable import HelpDeskCore

private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

@Suite("scrypt, HMAC and password hashes")
struct CryptoTests {
    /// RFC 7914 section 12, the first three vectors (the fourth needs 1 GiB and adds nothing).
    @Test("scrypt matches RFC 7914 section 12", arguments: [
        ("", "", UInt64(16), UInt64(1), UInt64(1),
         "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"),
        ("password", "NaCl", 1024, 8, 16,
         "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
        ("pleaseletmein", "SodiumChloride", 16384, 8, 1,
         "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"),
    ])
    func scryptVectors(password: String, salt: String, n: UInt64, r: UInt64, p: UInt64, expected: String) throws {
        let key = try Crypto.scrypt(password: Array(password.utf8), salt: Array(salt.utf8), n: n, r: r, p: p, length: 64)
        #expect(hex(key) == expected)
    }

    /// RFC 4231 test cases 1 and 2.
    @Test("HMAC-SHA256 matches RFC 4231")
    func hmacVectors() {
        let case1 = Crypto.hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), data: Array("Hi There".utf8))
        #expect(hex(case1) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        let case2 = Crypto.hmacSHA256(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(hex(case2) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    /// RFC 2202 test case 2.
    @Test("HMAC-SHA1 matches RFC 2202")
    func hmacSHA1Vector() {
        let mac = Crypto.hmacSHA1(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(hex(mac) == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    }

    @Test("SHA-256 of abc")
    func sha256() {
        #expect(hex(Crypto.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("password hashes verify the right password only and carry their parameters")
    func passwordHash() throws {
        let hasher = PasswordHasher(logN: 10, r: 8, p: 1)
        let stored = try hasher.hash("correct horse")
        #expect(stored.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        #expect(PasswordHasher.verify("correct horse", against: stored))
        #expect(!PasswordHasher.verify("correct horsf", against: stored))
        #expect(try hasher.hash("correct horse") != stored, "each hash has its own salt")
    }

    @Test("malformed or absurd stored hashes never verify")
    func malformedHashes() {
        for stored in ["", "plain", "$scrypt$ln=10,r=8$AAAA$AAAA", "$scrypt$ln=40,r=8,p=1$AAAA$AAAA", "$bcrypt$ln=10,r=8,p=1$AAAA$AAAA", "$scrypt$ln=10,r=8,p=1$!!$AAAA"] {
            #expect(!PasswordHasher.verify("x", against: stored), "\(stored)")
        }
    }

    @Test("constant-time comparison")
    func constantTime() {
        #expect(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!Crypto.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEqual([1, 2, 3], [1, 2]))
    }
}

@Suite("TURN REST credentials")
struct TurnCredentialTests {
    /// Vector computed independently: base64(HMAC-SHA1("north-pole-secret", "1800000000:42")).
    @Test("username is expiry:user and the password the base64 HMAC-SHA1 of it")
    func knownVector() {
        let credentials = TurnCredentials(secret: "north-pole-secret", userID: "42", expiresAt: 1_800_000_000)
        #expect(credentials.username == "1800000000:42")
        #expect(credentials.credential == "0nFsVdOnvjirPu1aU92nuPtaU7o=")
    }
}

import Foundation

/// scrypt password hashes with their parameters in the stored string:
/// `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt, base64>$<hash, base64>` (the passlib layout).
///
/// Old hashes keep verifying after the default cost changes, because each carries its own.
public struct PasswordHasher: Sendable {
    public var logN: Int
    public var r: Int
    public var p: Int
    static let keyLength = 32
    static let saltLength = 16

    /// Defaults: N = 2^15, r = 8, p = 1 (32 MiB, tens of milliseconds on this class of machine).
    public init(logN: Int = 15, r: Int = 8, p: Int = 1) {
        self.logN = logN
        self.r = r
        self.p = p
    }

    /// A new hash with a fresh random salt.
    public func hash(_ password: String) throws -> String {
        let salt = Crypto.randomBytes(Self.saltLength)
        let key = try Crypto.scrypt(password: Array(password.utf8), salt: salt, n: 1 << UInt64(logN), r: UInt64(r), p: UInt64(p), length: Self.keyLength)
        return "$scrypt$ln=\(logN),r=\(r),p=\(p)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    /// True if `password` matches `stored`. Malformed or absurd hashes never match.
    public static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "scrypt" else { return false }
        var params: [String: Int] = [:]
        for pair in parts[2].split(separator: ",") {
            let kv = pair.split(separator: "=")
            guard kv.count == 2, let value = Int(kv[1]) else { return false }
            params[String(kv[0])] = value
        }
        // Bounds keep a tampered row from turning a login into a memory bomb.
        guard let ln = params["ln"], let r = params["r"], let p = params["p"],
              (1...20).contains(ln), (1...32).contains(r), (1...16).contains(p),
              let salt = Data(base64Encoded: String(parts[3])), let expected = Data(base64Encoded: String(parts[4])),
              !expected.isEmpty, expected.count <= 64
        else { return false }
        guard let key = try? Crypto.scrypt(password: Array(password.utf8), salt: Array(salt), n: 1 << UInt64(ln), r: UInt64(r), p: UInt64(p), length: expected.count)
        else { return false }
        return Crypto.constantTimeEqual(key, Array(expected))
    }
}

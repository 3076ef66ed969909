import COpenSSL
import Foundation

/// The few primitives we take from OpenSSL's libcrypto: HMAC, SHA-256, scrypt, random bytes and
/// a constant-time comparison.
public enum Crypto {
    // OpenSSL's digest descriptors are immutable static tables; reading them from any thread is safe.
    nonisolated(unsafe) private static let sha256 = EVP_sha256()
    nonisolated(unsafe) private static let sha1 = EVP_sha1()

    /// HMAC-SHA256 of `data` under `key`.
    public static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        hmac(sha256, key: key, data: data)
    }

    /// HMAC-SHA1 of `data` under `key` (coturn's REST credentials use it).
    public static func hmacSHA1(key: [UInt8], data: [UInt8]) -> [UInt8] {
        hmac(sha1, key: key, data: data)
    }

    private static func hmac(_ md: OpaquePointer?, key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                // HMAC accepts a NULL key pointer only with length 0; give it a valid pointer always.
                let keyPointer = k.baseAddress ?? UnsafePointer(bitPattern: 1)
                _ = HMAC(md, keyPointer, Int32(k.count), d.baseAddress, d.count, &out, &length)
            }
        }
        return Array(out.prefix(Int(length)))
    }

    /// SHA-256 digest.
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        data.withUnsafeBufferPointer { d in
            _ = EVP_Digest(d.baseAddress, d.count, &out, &length, sha256, nil)
        }
        return Array(out.prefix(Int(length)))
    }

    /// scrypt (RFC 7914) through EVP_PBE_scrypt.
    public static func scrypt(password: [UInt8], salt: [UInt8], n: UInt64, r: UInt64, p: UInt64, length: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        // 128 * N * r * p bytes of work memory, plus headroom; OpenSSL refuses anything above maxmem.
        let maxmem = 128 * n * r * (p + 1) + 1_048_576
        let status = password.withUnsafeBufferPointer { pw in
            salt.withUnsafeBufferPointer { s in
                pw.baseAddress.withMemoryRebound(to: CChar.self, capacity: pw.count) { pwChars in
                    EVP_PBE_scrypt(pwChars, pw.count, s.baseAddress, s.count, n, r, p, maxmem, &out, length)
                }
            }
        }
        guard status == 1 else { throw HelpDeskError(.internalError, "scrypt failed (parameters out of range)") }
        return out
    }

    /// Cryptographically secure random bytes.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&out, Int32(count)) == 1 else { fatalError("OpenSSL RAND_bytes failed") }
        return out
    }

    /// Compares two byte strings in time that depends only on their length.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }
}

extension Optional where Wrapped == UnsafePointer<UInt8> {
    fileprivate func withMemoryRebound<T>(to: CChar.Type, capacity: Int, _ body: (UnsafePointer<CChar>?) -> T) -> T {
        guard let self else { return body(nil) }
        return self.withMemoryRebound(to: CChar.self, capacity: capacity) { body($0) }
    }
}

/// Base64 without padding in the URL alphabet (RFC 4648 section 5), as JWT uses it.
/// base64url without padding (RFC 4648 §5), as JWTs and tickets write it. The alphabet is mapped
/// byte by byte around Foundation's base64: `replacingOccurrences` bridged every token through
/// NSString on each request (9.6 % of a node's samples went to verifying tokens while the pick
/// bench read 2,000 conversations over REST, most of it in these replacements).
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        for byte in Data(bytes).base64EncodedData() {
            switch byte {
            case UInt8(ascii: "+"): out.append(UInt8(ascii: "-"))
            case UInt8(ascii: "/"): out.append(UInt8(ascii: "_"))
            case UInt8(ascii: "="): break
            default: out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Nil for padding, a character outside the alphabet or an impossible length.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var base64: [UInt8] = []
        base64.reserveCapacity(text.utf8.count + 3)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "-"): base64.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): base64.append(UInt8(ascii: "/"))
            case UInt8(ascii: "="): return nil
            default: base64.append(byte)
            }
        }
        while base64.count % 4 != 0 { base64.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(base64)).map { [UInt8]($0) }
    }
}

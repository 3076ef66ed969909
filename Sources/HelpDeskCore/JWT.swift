import Foundation

/// What an access token (or a customer token) says about its bearer.
public struct TokenClaims: Codable, Sendable, Equatable {
    /// User id, or for a customer token the customer id.
    public var sub: String
    /// `admin`, `supervisor`, `agent` or `customer`.
    public var role: String
    public var iat: Int
    public var exp: Int
    /// Display name, so sockets can say who sent a message without a database call.
    public var name: String?
    /// For customer tokens: the one conversation the token grants.
    public var conv: String?
    /// For customer tokens: true when signed in to a customer account (`sub` is the account id);
    /// such a token owns every conversation of the account, and is bound to none.
    public var acct: Bool?

    public init(sub: String, role: String, iat: Int, exp: Int, name: String? = nil, conv: String? = nil, acct: Bool? = nil) {
        self.sub = sub
        self.role = role
        self.iat = iat
        self.exp = exp
        self.name = name
        self.conv = conv
        self.acct = acct
    }
}

/// HMAC keys by key id. Tokens are signed with `currentKeyID`; any listed key verifies, so a key can
/// be rotated by adding the new one, switching `currentKeyID`, and dropping the old one later.
public struct JWTKeyring: Sendable {
    public let currentKeyID: String
    let keys: [String: [UInt8]]

    public init(currentKeyID: String, keys: [String: [UInt8]]) {
        precondition(keys[currentKeyID] != nil, "the current JWT key must be in the keyring")
        self.currentKeyID = currentKeyID
        self.keys = keys
    }

    /// The current key plus earlier keys still accepted, given as `kid:secret,kid:secret`.
    public init(currentKeyID: String, currentSecret: String, previousKeys: String = "") throws {
        guard currentSecret.utf8.count >= 16 else { throw HelpDeskError(.validationFailed, "the JWT secret must be at least 16 bytes") }
        var keys: [String: [UInt8]] = [currentKeyID: Array(currentSecret.utf8)]
        for entry in previousKeys.split(separator: ",") {
            guard let colon = entry.firstIndex(of: ":") else {
                throw HelpDeskError(.validationFailed, "HELPDESK_JWT_PREVIOUS_KEYS must be kid:secret pairs separated by commas")
            }
            let kid = String(entry[..<colon]), secret = Array(entry[entry.index(after: colon)...].utf8)
            // An empty (or short) secret would let anyone sign tokens; a kid equal to the current
            // one (or repeated) would silently replace a key, so tokens verify with the wrong secret.
            guard !kid.isEmpty else { throw HelpDeskError(.validationFailed, "HELPDESK_JWT_PREVIOUS_KEYS has an entry without a key id") }
            guard kid != currentKeyID else {
                throw HelpDeskError(.validationFailed, "HELPDESK_JWT_PREVIOUS_KEYS lists the current key id \(kid) (HELPDESK_JWT_KID); give earlier keys other ids")
            }
            guard keys[kid] == nil else { throw HelpDeskError(.validationFailed, "HELPDESK_JWT_PREVIOUS_KEYS lists the key id \(kid) twice") }
            guard secret.count >= 16 else {
                throw HelpDeskError(.validationFailed, "HELPDESK_JWT_PREVIOUS_KEYS: the secret of key \(kid) is \(secret.isEmpty ? "empty" : "shorter than 16 bytes")")
            }
            keys[kid] = secret
        }
        self.init(currentKeyID: currentKeyID, keys: keys)
    }
}

/// HS256 JSON Web Tokens (RFC 7519) with a `kid` header, signed and checked with OpenSSL's HMAC.
///
/// Verification accepts exactly `alg: HS256` with a known `kid` and a valid `exp`; everything else
/// (`alg: none`, other algorithms, unknown keys, bad signatures) is refused.
public struct JWTSigner: Sendable {
    public let keyring: JWTKeyring

    public init(keyring: JWTKeyring) {
        self.keyring = keyring
    }

    private struct Header: Codable {
        var alg: String
        var typ: String?
        var kid: String?
    }

    /// Signs claims with the current key.
    public func sign(_ claims: TokenClaims) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let header = try! encoder.encode(Header(alg: "HS256", typ: "JWT", kid: keyring.currentKeyID))
        let payload = try! encoder.encode(claims)
        let signingInput = Base64URL.encode(Array(header)) + "." + Base64URL.encode(Array(payload))
        let signature = Crypto.hmacSHA256(key: keyring.keys[keyring.currentKeyID]!, data: Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }

    /// Checks a token's header, signature and expiry at `now`; returns its claims.
    public func verify(_ token: String, now: Date) throws -> TokenClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        let invalid = HelpDeskError(.unauthorized, "invalid token")
        guard parts.count == 3,
              let headerBytes = Base64URL.decode(parts[0]),
              let header = try? JSONDecoder().decode(Header.self, from: Data(headerBytes))
        else { throw invalid }
        guard header.alg == "HS256", let kid = header.kid, let key = keyring.keys[kid] else { throw invalid }
        guard let signature = Base64URL.decode(parts[2]) else { throw invalid }
        let expected = Crypto.hmacSHA256(key: key, data: Array("\(parts[0]).\(parts[1])".utf8))
        guard Crypto.constantTimeEqual(signature, expected) else { throw invalid }
        guard let payloadBytes = Base64URL.decode(parts[1]),
              let claims = try? JSONDecoder().decode(TokenClaims.self, from: Data(payloadBytes))
        else { throw invalid }
        let nowSeconds = Int(now.timeIntervalSince1970)
        guard claims.exp > nowSeconds else { throw HelpDeskError(.tokenExpired, "token expired") }
        // A token "issued" in the future by more than a minute of clock skew is not ours.
        guard claims.iat <= nowSeconds + 60 else { throw invalid }
        return claims
    }
}

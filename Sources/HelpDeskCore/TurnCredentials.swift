import Foundation

/// Short-lived TURN credentials in coturn's REST scheme (`use-auth-secret`):
/// username = `<expiry unix time>:<user id>`, password = base64(HMAC-SHA1(shared secret, username)).
public struct TurnCredentials: Sendable, Equatable {
    public let username: String
    public let credential: String

    public init(secret: String, userID: String, expiresAt: Int) {
        username = "\(expiresAt):\(userID)"
        credential = Data(Crypto.hmacSHA1(key: Array(secret.utf8), data: Array(username.utf8))).base64EncodedString()
    }
}

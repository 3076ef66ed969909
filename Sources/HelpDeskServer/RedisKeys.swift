/// Every Redis key and channel name, in one place. All start with the deployment's prefix, which
/// holds a hash tag (`hd:{default}:`), so the keys of any one script share a Redis Cluster slot.
/// README's key table documents each of them for operators.
public struct RedisKeys: Sendable {
    public let prefix: String

    public init(prefix: String) {
        self.prefix = prefix
    }

    /// Failed logins for one e-mail in the current window (STRING counter with expiry).
    public func loginFailuresByEmail(_ email: String) -> String { prefix + "rl:login:email:" + email }
    /// Failed logins from one IP in the current window.
    public func loginFailuresByIP(_ ip: String) -> String { prefix + "rl:login:ip:" + ip }
    /// Single-use WebSocket tickets (STRING, 30 s).
    public func wsTicket(_ ticket: String) -> String { prefix + "ticket:" + ticket }
}

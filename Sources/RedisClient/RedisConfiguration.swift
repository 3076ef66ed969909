import Foundation

/// Where and how to reach Redis, parsed from `redis://[:password@]host:port/db`.
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var password: String?
    public var username: String?
    public var database: Int
    /// How long to wait for a TCP connection.
    public var connectTimeout: Duration
    /// How long a command may wait for its reply before the connection is dropped as broken.
    public var commandTimeout: Duration

    public init(
        host: String = "127.0.0.1", port: Int = 6379, password: String? = nil, username: String? = nil,
        database: Int = 0, connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.password = password
        self.username = username
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), components.scheme == "redis" else {
            throw RedisError(.invalidArgument, "not a redis:// URL: \(url)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw RedisError(.invalidArgument, "no host in redis URL")
        }
        self.init(host: host, port: components.port ?? 6379)
        // `password` is already percent-decoded; decode the encoded form once (decoding `password`
        // again would turn a literal "%41" in a password into "A").
        if let encoded = components.percentEncodedPassword, !encoded.isEmpty {
            self.password = encoded.removingPercentEncoding ?? encoded
            if let user = components.user, !user.isEmpty { self.username = user }
        }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let db = Int(path), db >= 0 else { throw RedisError(.invalidArgument, "bad database number in redis URL: \(path)") }
            self.database = db
        }
    }
}

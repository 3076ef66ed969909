import Foundation

/// Where and how to reach Redis, parsed from `redis://[:password@]host:port/db`, or through
/// Redis Sentinel from `redis+sentinel://[:password@]host:port[,host:port...]/master-name[/db]`.
public struct RedisConfiguration: Sendable, Equatable {
    /// A host and port.
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public var host: String
    public var port: Int
    /// Sentinels to ask for the current primary of `masterName` (empty: connect to host:port).
    public var sentinels: [Endpoint] = []
    public var masterName: String?
    public var password: String?
    public var username: String?
    public var database: Int
    /// How long to wait for a TCP connection.
    public var connectTimeout: Duration
    /// How long a command may wait for its reply before the connection is dropped as broken.
    public var commandTimeout: Duration
    /// Calls of a batched function one `FCALL` may carry (`RedisConnection.submitBatched`); 1 sends
    /// each call on its own. Redis runs one call at a time, so a batch holds every other client
    /// back for all of its calls: for chat messages (~45 µs of Redis each at the relay bench's
    /// size) 32 make ~1.5 ms, more with the longest texts allowed.
    public var maxBatchCalls = RedisConfiguration.defaultMaxBatchCalls
    public static let defaultMaxBatchCalls = 32
    /// Batches (`submitBatched`) one connection may have unanswered before its next batches wait
    /// for a reply; 0 never waits. While Redis is behind, calls then gather into fuller batches
    /// instead of queueing in Redis's socket as one small `FCALL` each, so the cost per call falls
    /// just when Redis needs it to (BENCHMARKS.md, eleventh round). An idle connection writes at once.
    public var maxBatchesInFlight = RedisConfiguration.defaultMaxBatchesInFlight
    public static let defaultMaxBatchesInFlight = 1

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

    /// Parses `redis://[[user]:password@]host[:port][/db]` or
    /// `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db]`.
    public init(url: String) throws {
        if url.hasPrefix("redis+sentinel://") {
            try self.init(sentinelURL: url)
            return
        }
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

    private init(sentinelURL url: String) throws {
        var rest = Substring(url.dropFirst("redis+sentinel://".count))
        var password: String?
        var username: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 {
                if !parts[0].isEmpty { username = String(parts[0]).removingPercentEncoding }
                password = String(parts[1]).removingPercentEncoding
            }
        }
        let pieces = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count >= 2, !pieces[1].isEmpty else {
            throw RedisError(.invalidArgument, "a sentinel URL names its master: redis+sentinel://host:26379/mymaster")
        }
        var sentinels: [Endpoint] = []
        for address in pieces[0].split(separator: ",") {
            let hp = address.split(separator: ":")
            guard let host = hp.first, !host.isEmpty else { throw RedisError(.invalidArgument, "bad sentinel address \(address)") }
            guard let port = hp.count > 1 ? Int(hp[1]) : 26379 else { throw RedisError(.invalidArgument, "bad sentinel port in \(address)") }
            sentinels.append(Endpoint(host: String(host), port: port))
        }
        guard !sentinels.isEmpty else { throw RedisError(.invalidArgument, "no sentinel address in \(url)") }
        self.init(host: sentinels[0].host, port: sentinels[0].port, password: password, username: username)
        self.sentinels = sentinels
        self.masterName = String(pieces[1])
        if pieces.count > 2, !pieces[2].isEmpty {
            guard let db = Int(pieces[2]), db >= 0 else { throw RedisError(.invalidArgument, "bad database number in sentinel URL") }
            self.database = db
        }
    }
}

import Foundation
import HelpDeskCore
import RedisClient

/// Everything a node needs to start, from `HELPDESK_*` environment variables; `helpdesk serve`
/// flags override single fields. README keeps the table of names and defaults.
public struct ServerConfiguration: Sendable {
    public var redisURL: String
    public var databaseURL: String
    public var jwtSecret: String
    public var jwtKeyID: String
    /// Earlier JWT keys still accepted during a rotation: `kid:secret,kid:secret`.
    public var jwtPreviousKeys: String
    public var host: String
    public var port: Int
    public var nodeID: String
    /// Prefix of every Redis key; holds one Redis Cluster hash tag so each script's keys share a slot.
    public var keyPrefix: String
    /// Directory of the Lua scripts (`lua/`), the migrations and the web UI.
    public var luaDirectory: String
    public var migrationsDirectory: String
    public var publicDirectory: String
    /// Chart.js for the admin charts (Debian's libjs-chart.js).
    public var chartJSPath: String
    /// Access-token lifetime, seconds.
    public var accessTokenTTL: Int
    /// Refresh-token lifetime, seconds.
    public var refreshTokenTTL: Int
    /// Failed logins allowed per e-mail from one IP, and per IP, within `loginWindowSeconds`.
    public var loginLimitPerEmail: Int
    public var loginLimitPerIP: Int
    public var loginWindowSeconds: Int
    /// Take the client IP from `X-Real-IP` (set by our nginx) instead of the TCP peer.
    public var trustProxy: Bool
    /// Log level: trace, debug, info, notice, warning, error, critical.
    public var logLevel: String
    public var postgresPoolSize: Int
    public var redisPoolSize: Int
    /// Chat messages one `FCALL send` may carry (`HELPDESK_REDIS_MAX_BATCH`; 1: each on its own).
    public var redisMaxBatch: Int
    /// `FCALL send` batches a Redis connection may have unanswered before its next ones wait for a
    /// reply (`HELPDESK_REDIS_BATCHES_IN_FLIGHT`; 0: never wait).
    public var redisBatchesInFlight: Int = RedisConfiguration.defaultMaxBatchesInFlight
    /// Chats a single IP may start per window.
    public var startLimitPerIP: Int
    public var startWindowSeconds: Int
    /// Customer-token lifetime, seconds.
    public var customerTokenTTL: Int
    /// How long an agent may be without any socket before going offline (its chats are requeued).
    public var agentGraceSeconds: Int
    /// How long a waiting customer may be without a socket before the chat is abandoned.
    public var customerGraceSeconds: Int
    /// Node and socket heartbeat period; a node silent for three periods is dead.
    public var heartbeatSeconds: Double
    /// A pending outbox entry idle this long is taken over by another flusher.
    public var outboxClaimIdleSeconds: Double
    /// How long Redis keeps an archived conversation.
    public var archiveRetentionSeconds: Int
    /// False (`HELPDESK_FLUSH_ENABLED=0`) holds this node's flusher off: closed conversations wait
    /// in the outbox (benchmarks, maintenance of PostgreSQL).
    public var flushEnabled: Bool = true
    /// Upper bound of a graceful shutdown (drain, then stop), seconds.
    public var drainTimeoutSeconds: Int
    /// Seconds an unanswered call rings before it ends as missed.
    public var callTimeoutSeconds: Int
    /// Seconds an agent has to accept an offered conversation (`HELPDESK_OFFER_TIMEOUT`, fractions allowed).
    public var offerTimeoutSeconds: Double = 20
    /// STUN and TURN servers handed to browsers (comma-separated in the environment).
    public var stunURLs: [String]
    public var turnURLs: [String]
    /// coturn's `static-auth-secret`; TURN entries are only given when it is set.
    public var turnSecret: String?
    /// Lifetime of TURN credentials, seconds.
    public var turnTTL: Int
    /// WebSockets one client IP, and one user, may hold on a node.
    public var maxSocketsPerIP: Int = 500
    public var maxSocketsPerUser: Int = 20
    /// Bytes a socket may have queued for a client that does not read before it is closed (4008).
    public var socketOutboundBytes: Int = 1 << 20
    /// Chat messages one socket may send a second, and in one burst.
    public var socketMessageRate: Double = 20
    public var socketMessageBurst: Double = 100
    /// The other events one socket may send a second, and in one burst (SocketLimits.other: PICK,
    /// CLOSE_CONVERSATION, SET_STATUS, TAKE_OVER, CANCEL, offers, wrap-up, LEAVE, PING), customers'
    /// sockets and staff's alike.
    public var socketEventRate: Double = 20
    public var socketEventBurst: Double = 40
    /// WebSocket tickets one user, and one IP, may get per `ticketWindowSeconds`.
    public var ticketLimitPerUser: Int = 30
    public var ticketLimitPerIP: Int = 300
    public var ticketWindowSeconds: Int = 60
    /// Messages one conversation may hold; past it a send is refused (`conversation_full`).
    public var maxMessagesPerConversation: Int = 10_000
    /// Customer accounts one IP may register per window (`POST /auth/register`).
    public var registerLimitPerIP: Int = 10
    public var registerWindowSeconds: Int = 3600
    /// The largest attachment, bytes (`POST /conversations/{id}/attachments`; 413 past it).
    public var attachmentMaxBytes: Int = 10 << 20
    /// Bearer token `/metrics` asks for; unset: `/metrics` answers 404 (nothing is public by default).
    public var metricsToken: String? = nil
    /// `HELPDESK_LOG_FORMAT`: `text` or `json` (one object per line, `JSONLogHandler`).
    public var logFormat: LogFormat = .text
    /// `HELPDESK_SLA_FIRST_RESPONSE`: first-response targets per priority (analytics).
    public var slaFirstResponse: SLATargets = .defaults
    /// `HELPDESK_EXPORT_MAX_ROWS`: rows one CSV export may hold (a longer window is refused).
    public var exportMaxRows: Int = 50_000

    /// Reads the environment. Missing values get development defaults, except the JWT secret,
    /// which must be set (at least 16 bytes).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> ServerConfiguration {
        let resources = ResourceLocator()
        guard let secret = env["HELPDESK_JWT_SECRET"], !secret.isEmpty else {
            throw HelpDeskError(.validationFailed, "HELPDESK_JWT_SECRET is not set (at least 16 bytes)")
        }
        func int(_ name: String, _ fallback: Int) throws -> Int {
            guard let text = env[name] else { return fallback }
            guard let value = Int(text) else { throw HelpDeskError(.validationFailed, "\(name) must be an integer, got \(text)") }
            return value
        }
        let prefix = env["HELPDESK_KEY_PREFIX"] ?? "hd:{default}:"
        // Every script's keys must share one Redis Cluster slot: the prefix holds a `{tag}`.
        guard let open = prefix.firstIndex(of: "{"), let close = prefix[open...].firstIndex(of: "}"),
              prefix.index(after: open) < close else {
            throw HelpDeskError(.validationFailed, "HELPDESK_KEY_PREFIX must contain a non-empty {hash tag}, e.g. hd:{default}:")
        }
        func positive(_ name: String, _ fallback: Int) throws -> Int {
            let value = try int(name, fallback)
            guard value > 0 else { throw HelpDeskError(.validationFailed, "\(name) must be a positive integer, got \(value)") }
            return value
        }
        func bounded(_ name: String, _ fallback: Int, max: Int) throws -> Int {
            let value = try positive(name, fallback)
            guard value <= max else { throw HelpDeskError(.validationFailed, "\(name) must be at most \(max), got \(value)") }
            return value
        }
        func nonNegative(_ name: String, _ fallback: Int, max: Int) throws -> Int {
            let value = try int(name, fallback)
            guard (0...max).contains(value) else { throw HelpDeskError(.validationFailed, "\(name) must be from 0 to \(max), got \(value)") }
            return value
        }
        func double(_ name: String, _ fallback: Double) throws -> Double {
            guard let text = env[name] else { return fallback }
            guard let value = Double(text), value > 0 else { throw HelpDeskError(.validationFailed, "\(name) must be a positive number, got \(text)") }
            return value
        }
        /// A token bucket's burst: a whole token at least, or the bucket never lets one event through.
        func burst(_ name: String, _ fallback: Double) throws -> Double {
            let value = try double(name, fallback)
            guard value >= 1 else { throw HelpDeskError(.validationFailed, "\(name) must be at least 1, got \(value)") }
            return value
        }
        var configuration = ServerConfiguration(
            redisURL: env["HELPDESK_REDIS_URL"] ?? "redis://127.0.0.1:6379",
            databaseURL: env["HELPDESK_DATABASE_URL"] ?? "postgresql://postgres@127.0.0.1:5432/helpdesk",
            jwtSecret: secret,
            jwtKeyID: env["HELPDESK_JWT_KID"] ?? "k1",
            jwtPreviousKeys: env["HELPDESK_JWT_PREVIOUS_KEYS"] ?? "",
            host: env["HELPDESK_HOST"] ?? "127.0.0.1",
            port: try int("HELPDESK_PORT", 8080),
            nodeID: env["HELPDESK_NODE_ID"] ?? Self.defaultNodeID(),
            keyPrefix: prefix,
            luaDirectory: env["HELPDESK_LUA_DIR"] ?? resources.directory("lua"),
            migrationsDirectory: env["HELPDESK_MIGRATIONS_DIR"] ?? resources.directory("migrations"),
            publicDirectory: env["HELPDESK_PUBLIC_DIR"] ?? resources.directory("Public"),
            chartJSPath: env["HELPDESK_CHARTJS_PATH"] ?? "/usr/share/javascript/chart.js/chart.min.js",
            accessTokenTTL: try int("HELPDESK_ACCESS_TOKEN_TTL", 900),
            refreshTokenTTL: try int("HELPDESK_REFRESH_TOKEN_TTL", 30 * 86400),
            loginLimitPerEmail: try int("HELPDESK_LOGIN_LIMIT_PER_EMAIL", 5),
            loginLimitPerIP: try int("HELPDESK_LOGIN_LIMIT_PER_IP", 30),
            loginWindowSeconds: try int("HELPDESK_LOGIN_WINDOW", 900),
            trustProxy: env["HELPDESK_TRUST_PROXY"] == "1" || env["HELPDESK_TRUST_PROXY"] == "true",
            logLevel: env["HELPDESK_LOG_LEVEL"] ?? "info",
            postgresPoolSize: try int("HELPDESK_PG_POOL_SIZE", 4),
            redisPoolSize: try int("HELPDESK_REDIS_POOL_SIZE", 4),
            redisMaxBatch: try bounded("HELPDESK_REDIS_MAX_BATCH", RedisConfiguration.defaultMaxBatchCalls, max: 1_000),
            startLimitPerIP: try int("HELPDESK_START_LIMIT_PER_IP", 20),
            startWindowSeconds: try int("HELPDESK_START_WINDOW", 600),
            customerTokenTTL: try int("HELPDESK_CUSTOMER_TOKEN_TTL", 86400),
            agentGraceSeconds: try int("HELPDESK_AGENT_GRACE", 60),
            customerGraceSeconds: try int("HELPDESK_CUSTOMER_GRACE", 60),
            heartbeatSeconds: try double("HELPDESK_HEARTBEAT_INTERVAL", 5),
            outboxClaimIdleSeconds: try double("HELPDESK_OUTBOX_CLAIM_IDLE", 30),
            archiveRetentionSeconds: try int("HELPDESK_ARCHIVE_RETENTION", 3600),
            drainTimeoutSeconds: try int("HELPDESK_DRAIN_TIMEOUT", 20),
            callTimeoutSeconds: try int("HELPDESK_CALL_TIMEOUT", 45),
            stunURLs: (env["HELPDESK_STUN_URLS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty },
            turnURLs: (env["HELPDESK_TURN_URLS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty },
            turnSecret: env["HELPDESK_TURN_SECRET"].flatMap { $0.isEmpty ? nil : $0 },
            turnTTL: try int("HELPDESK_TURN_TTL", 3600),
            maxSocketsPerIP: try int("HELPDESK_MAX_SOCKETS_PER_IP", 500),
            maxSocketsPerUser: try int("HELPDESK_MAX_SOCKETS_PER_USER", 20),
            socketOutboundBytes: try int("HELPDESK_SOCKET_OUTBOUND_BYTES", 1 << 20),
            socketMessageRate: try double("HELPDESK_SOCKET_MESSAGE_RATE", 20),
            socketMessageBurst: try burst("HELPDESK_SOCKET_MESSAGE_BURST", 100),
            socketEventRate: try double("HELPDESK_SOCKET_EVENT_RATE", 20),
            socketEventBurst: try burst("HELPDESK_SOCKET_EVENT_BURST", 40),
            ticketLimitPerUser: try positive("HELPDESK_TICKET_LIMIT_PER_USER", 30),
            ticketLimitPerIP: try positive("HELPDESK_TICKET_LIMIT_PER_IP", 300),
            ticketWindowSeconds: try positive("HELPDESK_TICKET_WINDOW", 60),
            maxMessagesPerConversation: try positive("HELPDESK_MAX_MESSAGES_PER_CONVERSATION", 10_000),
            registerLimitPerIP: try positive("HELPDESK_REGISTER_LIMIT_PER_IP", 10),
            registerWindowSeconds: try positive("HELPDESK_REGISTER_WINDOW", 3600),
            attachmentMaxBytes: try positive("HELPDESK_ATTACHMENT_MAX_BYTES", 10 << 20),
            metricsToken: env["HELPDESK_METRICS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        )
        configuration.offerTimeoutSeconds = try double("HELPDESK_OFFER_TIMEOUT", 20)
        switch env["HELPDESK_FLUSH_ENABLED"] ?? "1" {
        case "1", "true": configuration.flushEnabled = true
        case "0", "false": configuration.flushEnabled = false
        case let other: throw HelpDeskError(.validationFailed, "HELPDESK_FLUSH_ENABLED must be 1 or 0, got \(other)")
        }
        let format = env["HELPDESK_LOG_FORMAT"] ?? "text"
        guard let logFormat = LogFormat(rawValue: format) else {
            throw HelpDeskError(.validationFailed, "HELPDESK_LOG_FORMAT must be text or json, got \(format)")
        }
        configuration.logFormat = logFormat
        configuration.exportMaxRows = try positive("HELPDESK_EXPORT_MAX_ROWS", 50_000)
        configuration.redisBatchesInFlight = try nonNegative("HELPDESK_REDIS_BATCHES_IN_FLIGHT", RedisConfiguration.defaultMaxBatchesInFlight, max: 1_000)
        if let sla = env["HELPDESK_SLA_FIRST_RESPONSE"] { configuration.slaFirstResponse = try SLATargets(parsing: sla) }
        return configuration
    }

    /// `hostname-pid`: unique per process on a host, readable in `redis-cli`.
    public static func defaultNodeID() -> String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    }
}

/// Finds the project's resource directories (`lua/`, `migrations/`, `Public/`) when no
/// environment variable names them: in the working directory or above the executable.
public struct ResourceLocator: Sendable {
    public init() {}

    public func directory(_ name: String) -> String {
        var candidates = [FileManager.default.currentDirectoryPath]
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(url.path)
            url = url.deletingLastPathComponent()
        }
        for base in candidates {
            var isDirectory: ObjCBool = false
            let path = base + "/" + name
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return path }
        }
        return name
    }
}

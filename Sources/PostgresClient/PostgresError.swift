/// The one error type of the PostgreSQL client.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// No connection could be made, or it broke during a call.
        case connectionFailed
        /// The server refused a statement (syntax, constraint, ...); `sqlState` says which.
        case queryFailed
        /// A value could not be turned into the Swift type asked for.
        case decodingFailed
        /// The pool was shut down.
        case poolClosed
        /// A migration file failed; it was rolled back whole.
        case migrationFailed
        /// A parameter cannot be sent whole (it holds U+0000, which libpq's C strings cannot carry).
        case invalidParameter
        /// No pooled connection became free within the pool's acquire deadline.
        case timedOut
    }

    /// What a caller should do about an error.
    public enum Kind: Sendable, Equatable {
        /// The server or the network is unavailable for now (outage, failover, overload, lock or
        /// statement timeout, serialization failure): the same work may succeed later.
        case transient
        /// The data itself is refused (22xxx data exceptions, 23xxx integrity violations, a value
        /// we cannot encode or decode): retrying the same data fails the same way.
        case data
        /// Anything else (a bug: syntax, missing table, ...).
        case other
    }

    public let code: Code
    public let message: String
    /// The five-character SQLSTATE, when the server sent one (`23505` unique violation, ...).
    public let sqlState: String?

    public init(_ code: Code, _ message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
    }

    /// True for a unique-constraint violation.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// Classifies by code and SQLSTATE (PostgreSQL manual, appendix A).
    public var kind: Kind {
        switch code {
        case .connectionFailed, .poolClosed, .timedOut: return .transient
        case .invalidParameter, .decodingFailed: return .data
        case .migrationFailed: return .other
        case .queryFailed: break
        }
        guard let state = sqlState else { return .transient }
        if Self.transientStates.contains(state) { return .transient }
        for prefix in Self.transientClasses where state.hasPrefix(prefix) { return .transient }
        if state.hasPrefix("22") || state.hasPrefix("23") { return .data }
        return .other
    }

    /// 08 connection exception, 53 insufficient resources (disk full, out of memory, too many
    /// connections), 57P operator intervention (admin shutdown, crash shutdown, cannot connect now),
    /// 58 system error (I/O), 40 transaction rollback (serialization failure, deadlock).
    static let transientClasses = ["08", "53", "57P", "58", "40"]
    /// 55P03 lock not available (lock_timeout), 57014 query canceled (statement_timeout),
    /// 25006 read-only transaction (a standby promoted slowly, or we hit the old primary).
    static let transientStates: Set<String> = ["55P03", "57014", "25006"]

    /// True when a request should be answered 503 `unavailable` (try again later) rather than 500.
    public var isUnavailable: Bool {
        switch code {
        case .connectionFailed, .poolClosed, .timedOut: return true
        case .queryFailed: return kind == .transient
        default: return false
        }
    }

    public var description: String { "PostgresError(\(code.rawValue)\(sqlState.map { ", \($0)" } ?? "")): \(message)" }
}

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

    public var description: String { "PostgresError(\(code.rawValue)\(sqlState.map { ", \($0)" } ?? "")): \(message)" }
}

import Foundation
import Logging

/// Applies `NNNN_name.sql` files in order, each once, each in its own transaction.
///
/// An advisory lock (keyed by the current schema) makes concurrent runs on several nodes wait
/// for each other; `schema_migrations` records what was applied.
public struct Migrator: Sendable {
    public let pool: PostgresPool
    public let directory: String
    let logger: Logger

    public init(pool: PostgresPool, directory: String, logger: Logger = Logger(label: "migrate")) {
        self.pool = pool
        self.directory = directory
        self.logger = logger
    }

    /// The migration files, sorted by name.
    public func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
    }

    /// Applies every file not yet applied; returns the versions applied by this call.
    @discardableResult
    public func migrate() async throws -> [String] {
        let files = try self.files()
        let scripts = try files.map { ($0, try String(contentsOfFile: directory + "/" + $0, encoding: .utf8)) }
        let logger = self.logger
        return try await pool.withConnection { connection in
            // A migration (or waiting for another node's) may take longer than the pool's statement timeout.
            let timeout: String = try connection.query("SELECT current_setting('statement_timeout') AS t").first?.decode("t") ?? "0"
            try connection.execute(script: "SET statement_timeout = 0")
            defer { _ = try? connection.query("SELECT set_config('statement_timeout', $1, false)", [timeout]) }
            // Two-key advisory lock: a fixed class id and the schema, so test schemas don't block each other.
            try connection.query("SELECT pg_advisory_lock(7231, hashtext(current_schema()))")
            defer { _ = try? connection.query("SELECT pg_advisory_unlock(7231, hashtext(current_schema()))") }
            try connection.execute(script: """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version text PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """)
            let done = Set(try connection.query("SELECT version FROM schema_migrations").rows.map { try $0.decode("version", as: String.self) })
            var applied: [String] = []
            for (file, sql) in scripts {
                let version = String(file.dropLast(4))
                guard !done.contains(version) else { continue }
                do {
                    try connection.transaction {
                        try connection.execute(script: sql)
                        try connection.query("INSERT INTO schema_migrations (version) VALUES ($1)", [version])
                    }
                } catch {
                    throw PostgresError(.migrationFailed, "\(file): \(error)")
                }
                logger.info("applied migration \(file)")
                applied.append(version)
            }
            return applied
        }
    }
}

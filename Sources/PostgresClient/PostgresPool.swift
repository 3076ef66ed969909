import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A bounded pool of libpq connections whose blocking calls run on its own threads, never on a
/// NIO event loop.
///
/// The pool owns one thread per connection; a call is a work item on those threads that takes an
/// idle connection (or opens one), so at most `size` connections exist and extra calls queue.
/// A connection that broke is dropped and the next call opens a fresh one.
public final class PostgresPool: Sendable {
    public let conninfo: String
    public let size: Int
    private let threads: NIOThreadPool
    private let idle = NIOLockedValueBox<[PostgresConnection]>([])
    private let logger: Logger

    /// - Parameter url: a `postgresql://` URL or libpq connection string. A `connect_timeout` of
    ///   3 s is added when none is given, so an outage fails calls fast instead of hanging them.
    public init(url: String, size: Int = 4, logger: Logger = Logger(label: "postgres")) {
        var conninfo = url
        if !url.contains("connect_timeout") {
            if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
                conninfo += url.contains("?") ? "&connect_timeout=3" : "?connect_timeout=3"
            } else {
                conninfo += " connect_timeout=3"
            }
        }
        self.conninfo = conninfo
        self.size = max(1, size)
        self.logger = logger
        self.threads = NIOThreadPool(numberOfThreads: self.size)
        self.threads.start()
    }

    /// Runs `body` with a connection of its own on a pool thread.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let conninfo = self.conninfo
        let idle = self.idle
        do {
            return try await threads.runIfActive {
                let connection = try idle.withLockedValue { $0.popLast() } ?? PostgresConnection(conninfo: conninfo)
                do {
                    let result = try body(connection)
                    idle.withLockedValue { $0.append(connection) }
                    return result
                } catch {
                    if connection.isHealthy { idle.withLockedValue { $0.append(connection) } }
                    throw error
                }
            }
        } catch is CancellationError where !Task.isCancelled {
            // NIOThreadPool refuses work once shut down by cancelling it.
            throw PostgresError(.poolClosed, "the pool was shut down")
        }
    }

    /// Runs one parameterized statement.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> PostgresRows {
        try await withConnection { try $0.query(sql, parameters) }
    }

    /// Runs `body` inside BEGIN ... COMMIT; any error rolls back and is rethrown.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await withConnection { connection in
            try connection.transaction { try body(connection) }
        }
    }

    /// Stops the threads and closes every connection.
    public func shutdown() async {
        try? await threads.shutdownGracefully()
        idle.withLockedValue { $0.removeAll() }
    }
}

extension PostgresConnection {
    /// Runs `body` inside BEGIN ... COMMIT on this connection; an error rolls back.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute(script: "BEGIN")
        do {
            let result = try body()
            try execute(script: "COMMIT")
            return result
        } catch {
            if isHealthy { try? execute(script: "ROLLBACK") }
            throw error
        }
    }
}

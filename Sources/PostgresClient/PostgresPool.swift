import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A bounded pool of libpq connections whose blocking calls run on its own threads, never on a
/// NIO event loop.
///
/// The pool owns one thread per connection; a call is a work item on those threads that takes an
/// idle connection (or opens one), so at most `size` connections exist and extra calls queue.
/// Waits are bounded: a call that gets no thread within `acquireTimeout` fails with `.timedOut`,
/// and every statement runs under `statementTimeout`, so a stuck PostgreSQL turns into quick 503s
/// instead of a growing pile of waiting requests. An idle connection whose server went away
/// (restart, failover) is replaced before it is handed out.
public final class PostgresPool: Sendable {
    public let conninfo: String
    public let size: Int
    /// How long a call may wait for a free connection.
    public let acquireTimeout: Duration
    /// `statement_timeout` of every connection (unless the URL sets its own), nil for none.
    public let statementTimeout: Duration?
    private let threads: NIOThreadPool
    private let idle = NIOLockedValueBox<[PostgresConnection]>([])
    private let logger: Logger

    /// - Parameter url: a `postgresql://` URL or libpq connection string. A `connect_timeout` of
    ///   3 s is added when none is given, so an outage fails calls fast instead of hanging them.
    public init(url: String, size: Int = 4, acquireTimeout: Duration = .seconds(5), statementTimeout: Duration? = .seconds(15),
                logger: Logger = Logger(label: "postgres")) {
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
        self.acquireTimeout = acquireTimeout
        self.statementTimeout = url.contains("statement_timeout") ? nil : statementTimeout
        self.logger = logger
        self.threads = NIOThreadPool(numberOfThreads: self.size)
        self.threads.start()
    }

    private enum CallState<T: Sendable>: Sendable {
        case queued(CheckedContinuation<T, any Error>)
        case started
    }

    /// Runs `body` with a connection of its own on a pool thread.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await run(retryOnStaleConnection: false, body)
    }

    /// - Parameter retryOnStaleConnection: when a reused connection turns out dead at its first
    ///   use, run `body` once more on a fresh one. Only for statements safe to repeat (reads).
    private func run<T: Sendable>(retryOnStaleConnection: Bool, _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        do {
            return try await runCounted(retryOnStaleConnection: retryOnStaleConnection, body)
        } catch let error as PostgresError {
            Counter(label: "helpdesk_postgres_errors_total", dimensions: [("kind", Self.errorKind(error))]).increment()
            throw error
        }
    }

    /// The label of `helpdesk_postgres_errors_total`: `unavailable` (the server or network is
    /// down, a pool wait or statement timed out: requests get 503), `data` (refused data, e.g. a
    /// unique violation), `other` (bugs).
    public static func errorKind(_ error: PostgresError) -> String {
        if error.isUnavailable { return "unavailable" }
        return error.kind == .data ? "data" : "other"
    }

    private func runCounted<T: Sendable>(retryOnStaleConnection: Bool, _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let deadline = acquireTimeout
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let call = NIOLockedValueBox<CallState<T>>(.queued(continuation))
            /// Takes the continuation once: whoever gets it (the work item or the timer) answers.
            @Sendable func take() -> CheckedContinuation<T, any Error>? {
                call.withLockedValue { state in
                    guard case .queued(let c) = state else { return nil }
                    state = .started
                    return c
                }
            }
            let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(Int64(deadline.components.seconds) * 1_000_000_000 + deadline.components.attoseconds / 1_000_000_000)) {
                take()?.resume(throwing: PostgresError(.timedOut, "no PostgreSQL connection became free within \(deadline)"))
            }
            threads.submit { state in
                guard let continuation = take() else { return }
                timer.cancel()
                guard state == .active else {
                    continuation.resume(throwing: PostgresError(.poolClosed, "the pool was shut down"))
                    return
                }
                continuation.resume(with: Result(catching: { try self.execute(retryOnStaleConnection: retryOnStaleConnection, body) }))
            }
        }
    }

    /// On a pool thread: check out a live connection, run `body`, put the connection back.
    private func execute<T>(retryOnStaleConnection: Bool, _ body: (PostgresConnection) throws -> T) throws -> T {
        var reused = false
        var connection: PostgresConnection?
        while let candidate = idle.withLockedValue({ $0.popLast() }) {
            if candidate.isAliveWhenIdle { connection = candidate; reused = true; break }
            logger.info("dropping a PostgreSQL connection the server closed")
        }
        let chosen = try connection ?? open()
        do {
            let result = try body(chosen)
            idle.withLockedValue { $0.append(chosen) }
            return result
        } catch let error as PostgresError where error.code == .connectionFailed && reused && retryOnStaleConnection {
            // The server went away after the check (or without a word): the statement never ran
            // on a live session, and it is a read, so one retry on a fresh connection is safe.
            let fresh = try open()
            let result = try body(fresh)
            idle.withLockedValue { $0.append(fresh) }
            return result
        } catch {
            if chosen.isHealthy { idle.withLockedValue { $0.append(chosen) } }
            throw error
        }
    }

    private func open() throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: conninfo)
        if let statementTimeout {
            let ms = statementTimeout.components.seconds * 1000 + statementTimeout.components.attoseconds / 1_000_000_000_000_000
            try connection.execute(script: "SET statement_timeout = \(max(1, ms))")
        }
        return connection
    }

    /// Runs one parameterized statement. A read (`SELECT ...`) that meets a connection the server
    /// closed since its last use is retried once on a fresh connection.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> PostgresRows {
        let isRead = sql.drop(while: { $0.isWhitespace }).prefix(6).lowercased() == "select"
        return try await run(retryOnStaleConnection: isRead) { try $0.query(sql, parameters) }
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

import Foundation
import PostgresClient
import Synchronization
import TestSupport

/// Thrown when an operation under `withTimeout` did not finish in time.
struct TimeoutError: Error, CustomStringConvertible {
    let what: String
    let limit: Duration
    var description: String { "\(what) did not finish within \(limit)" }
}

/// Resumes one continuation exactly once, from whichever of the work and the timer finishes first.
private final class Race<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
    }
    private let state = Mutex(State())

    func start(
        _ continuation: CheckedContinuation<T, any Error>, limit: Duration, what: String,
        body: @escaping @Sendable () async throws -> T
    ) {
        state.withLock { $0.continuation = continuation }
        let work = Task {
            do { self.finish(.success(try await body())) } catch { self.finish(.failure(error)) }
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            if !Task.isCancelled { self.finish(.failure(TimeoutError(what: what, limit: limit))) }
        }
        let finished = state.withLock { state -> Bool in
            state.work = work
            state.timer = timer
            return state.continuation == nil
        }
        if finished { timer.cancel() }
    }

    private func finish(_ result: Result<T, any Error>) {
        let (continuation, work, timer) = state.withLock { state in
            defer { state.continuation = nil }
            return (state.continuation, state.work, state.timer)
        }
        guard let continuation else { return }
        continuation.resume(with: result)
        timer?.cancel()
        if case .failure(let error) = result, error is TimeoutError { work?.cancel() }
    }
}

/// Runs `body`, failing with `TimeoutError` after `limit` so a hang (a lock wait, say) fails the
/// test instead of blocking the run. After a timeout the body is cancelled, not awaited.
func withTimeout<T: Sendable>(
    _ limit: Duration = .seconds(10), _ what: String = "operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation, limit: limit, what: what, body: body)
    }
}

/// Polls `condition` until it holds; throws `TimeoutError` when it still does not after `limit`.
func waitUntil(
    _ what: String, within limit: Duration = .seconds(5),
    _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await withTimeout(limit, what) {
        while try await !condition() {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Runs `body` with a pool, shutting the pool down afterwards whether or not `body` threw.
func withPool<T>(url: String, size: Int = 2, _ body: (PostgresPool) async throws -> T) async throws -> T {
    let pool = PostgresPool(url: url, size: size)
    do {
        let result = try await body(pool)
        await pool.shutdown()
        return result
    } catch {
        await pool.shutdown()
        throw error
    }
}

/// A fresh schema of the test's own (see `TestEnvironment.makeSchema`), dropped afterwards.
func withSchema<T>(_ body: (_ url: String, _ schema: String) async throws -> T) async throws -> T {
    let (schema, url) = try await TestEnvironment.makeSchema()
    do {
        let result = try await body(url, schema)
        await dropSchema(schema)
        return result
    } catch {
        await dropSchema(schema)
        throw error
    }
}

private func dropSchema(_ schema: String) async {
    let admin = PostgresPool(url: TestEnvironment.databaseURL, size: 1)
    _ = try? await admin.query("DROP SCHEMA IF EXISTS \(schema) CASCADE")
    await admin.shutdown()
}

/// `url` with one more query parameter.
func adding(_ parameter: String, to url: String) -> String {
    url + (url.contains("?") ? "&" : "?") + parameter
}

/// How many server connections have this `application_name` right now.
func connectionCount(applicationName: String, using pool: PostgresPool) async throws -> Int {
    try await pool.query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [applicationName])
        .rows[0].decode("n", as: Int.self)
}

/// A directory of its own under the temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "migrations-\(TestEnvironment.uniqueID())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ contents: String) throws {
        try contents.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

import Foundation
import Synchronization

/// Thrown when an operation under `withTimeout` did not finish in time.
public struct TimeoutError: Error, CustomStringConvertible {
    public let what: String
    public let limit: Duration
    public var description: String { "\(what) did not finish within \(limit)" }
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
        // Stop whichever side lost: the timer after success, the work after a timeout.
        timer?.cancel()
        if case .failure(let error) = result, error is TimeoutError { work?.cancel() }
    }
}

/// Runs `body`, failing with `TimeoutError` if it takes longer than `limit`, so a hang fails the
/// test instead of blocking the run. The body is not awaited after a timeout (it may not react
/// to cancellation), it is only cancelled.
public func withTimeout<T: Sendable>(
    _ limit: Duration = .seconds(10), _ what: String = "operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation, limit: limit, what: what, body: body)
    }
}

/// Polls `condition` until it holds; throws `TimeoutError` when it still does not after `limit`.
public func waitUntil(
    _ what: String, within limit: Duration = .seconds(5),
    _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await withTimeout(limit, what) {
        while try await !condition() {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

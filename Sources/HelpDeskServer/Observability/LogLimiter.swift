import Logging
import NIOConcurrencyHelpers
import NIOCore

/// At most `limit` log lines a second (`TokenBucket`, bursts of `limit`) for a failure that clients
/// can repeat at will: during a Redis outage every frame of every socket fails, and a line per frame
/// would flood the log (and the disk under it) at the rate the sockets' buckets allow. The lines
/// left out are counted and reported with the next line that goes out (`lines_left_out`).
final class LogLimiter: Sendable {
    /// The node's lines for what failed on the server's side while serving a client (5xx), shared
    /// by every socket and request: such failures do not count against a socket's error budget
    /// (`ErrorBudget`), so only the rate buckets bound them.
    static let serverFailures = LogLimiter()

    private struct State {
        var bucket: TokenBucket
        var left = 0
    }

    private let state: NIOLockedValueBox<State>

    init(limit: Int = 10, now: NIODeadline = .now()) {
        state = NIOLockedValueBox(State(bucket: TokenBucket(rate: Double(limit), burst: Double(limit), now: now.uptimeNanoseconds)))
    }

    /// nil: leave this line out. Otherwise log it, with the number of lines left out since the
    /// last one that went out.
    func admit(now: NIODeadline = .now()) -> Int? {
        state.withLockedValue { s in
            guard s.bucket.take(now: now.uptimeNanoseconds) else {
                s.left += 1
                return nil
            }
            defer { s.left = 0 }
            return s.left
        }
    }

    /// Logs the line if `admit` lets it through, with `lines_left_out` added to its metadata.
    func log(_ logger: Logger, _ level: Logger.Level, _ message: @autoclosure () -> Logger.Message, _ metadata: Logger.Metadata) {
        guard let left = admit() else { return }
        var metadata = metadata
        metadata["lines_left_out"] = "\(left)"
        logger.log(level: level, message(), metadata: metadata)
    }
}

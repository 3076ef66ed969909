import NIOConcurrencyHelpers
import NIOCore

/// At most `limit` log lines per `interval` for a failure that clients can repeat at will: during
/// a Redis outage every frame of every socket fails, and a line per frame would flood the log (and
/// the disk under it) at the rate the sockets' buckets allow. The lines left out are counted and
/// reported with the next line that goes out.
final class LogLimiter: Sendable {
    /// The node's lines for what failed on the server's side while serving a client (5xx), shared
    /// by every socket and request: such failures do not count against a socket's error budget
    /// (`ErrorBudget`), so only the rate buckets bound them.
    static let serverFailures = LogLimiter()

    private struct Window {
        var start: NIODeadline
        var lines = 0
        var left = 0
    }

    private let window: NIOLockedValueBox<Window>
    let limit: Int
    let interval: TimeAmount

    init(limit: Int = 10, interval: TimeAmount = .seconds(1), now: NIODeadline = .now()) {
        self.limit = limit
        self.interval = interval
        self.window = NIOLockedValueBox(Window(start: now))
    }

    /// nil: leave this line out. Otherwise log it, with the number of lines left out since the
    /// last one that went out.
    func admit(now: NIODeadline = .now()) -> Int? {
        window.withLockedValue { w in
            if now - w.start >= interval {
                w.start = now
                w.lines = 0
            }
            guard w.lines < limit else {
                w.left += 1
                return nil
            }
            w.lines += 1
            defer { w.left = 0 }
            return w.left
        }
    }
}

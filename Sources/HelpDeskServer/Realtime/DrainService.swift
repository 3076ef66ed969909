import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Whether this node is draining: set once on SIGTERM, read by `/readyz` and the socket upgrade.
public final class DrainState: Sendable {
    private let draining = NIOLockedValueBox(false)
    public init() {}
    public var isDraining: Bool { draining.withLockedValue { $0 } }
    func begin() { draining.withLockedValue { $0 = true } }
}

/// Graceful drain. Run it after the application in the same `ServiceGroup` (shutdown goes in
/// reverse order, so it drains before the HTTP server stops): on shutdown `/readyz` turns 503 at
/// once, new sockets are refused, every socket is closed with 1012 (service restart) so clients
/// reconnect through the balancer to another node and resume by `last_message_id`, agents leave
/// presence as their sockets close. Then the server and the flusher (finishing its in-flight
/// flush) stop. `ServiceGroup`'s maximum graceful-shutdown duration bounds the whole.
public struct DrainService: Service {
    let state: DrainState
    let hub: ConnectionHub
    let timeout: Duration
    let logger: Logger

    public func run() async throws {
        // Sleeps until the group shuts down (SIGTERM, SIGINT).
        try? await gracefulShutdown()
        state.begin()
        let sessions = hub.allSessions()
        logger.info("draining: closing sockets", metadata: ["sockets": "\(sessions.count)"])
        for session in sessions { session.close(.unknown(1012), "service restart: reconnect") }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let open = hub.allSessions()
            if open.isEmpty { break }
            // sockets that registered after the first pass (they were starting) go too; closing
            // twice is a no-op
            for session in open { session.close(.unknown(1012), "service restart: reconnect") }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let left = hub.allSessions().count
        logger.info("drained", metadata: ["sockets_left": "\(left)"])
    }
}

import HelpDeskCore
import Logging
import NIOConcurrencyHelpers

/// Waiting customers' queue positions: each waiting customer's socket gets `QUEUE_STATUS` whenever
/// its position changes. Queue events only mark the positions stale; one recomputation (a pipeline
/// of ZRANK) runs 50 ms later for the whole burst.
final class QueuePositionTracker: Sendable {
    private struct Waiting {
        var session: SocketSession
        var conversationID: String
        var category: String
        var lastPosition: Int?
    }

    private struct State {
        var waiting: [Int: Waiting] = [:]
        var scheduled = false
    }

    private let state = NIOLockedValueBox(State())
    private let store: LiveStore
    private let logger: Logger

    init(store: LiveStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func track(_ session: SocketSession, conversationID: String, category: String) {
        state.withLockedValue { $0.waiting[session.id] = Waiting(session: session, conversationID: conversationID, category: category) }
        schedule()
    }

    func untrack(socket: Int) {
        _ = state.withLockedValue { $0.waiting.removeValue(forKey: socket) }
    }

    /// The conversation left the queue (assigned or closed).
    func untrack(conversation: String) {
        state.withLockedValue { state in state.waiting = state.waiting.filter { $0.value.conversationID != conversation } }
    }

    /// The conversation may be waiting again (requeued, transferred to a queue, reopened).
    func recheck(_ sessions: [SocketSession], conversationID: String) {
        guard !sessions.isEmpty else { return }
        Task { [store] in
            guard let view = try? await store.conversation(conversationID), view.status == "waiting" else { return }
            for session in sessions { self.track(session, conversationID: conversationID, category: view.categoryId) }
        }
    }

    /// Recomputes positions soon, once for a burst of queue events.
    func schedule() {
        let start = state.withLockedValue { state -> Bool in
            guard !state.scheduled, !state.waiting.isEmpty else { return false }
            state.scheduled = true
            return true
        }
        guard start else { return }
        Task {
            try? await Task.sleep(for: .milliseconds(50))
            await self.send()
        }
    }

    private func send() async {
        let waiting = state.withLockedValue { state -> [Int: Waiting] in
            state.scheduled = false
            return state.waiting
        }
        guard !waiting.isEmpty else { return }
        do {
            var unique: [String: String] = [:]
            for w in waiting.values { unique[w.conversationID] = w.category }
            let positions = try await store.positions(unique.map { (id: $0.key, category: $0.value) })
            let inputs = try await store.waitInputs()
            let updates = state.withLockedValue { state -> [(SocketSession, String, Int)] in
                var updates: [(SocketSession, String, Int)] = []
                for (socket, customer) in waiting {
                    guard state.waiting[socket] != nil else { continue }
                    guard let position = positions[customer.conversationID] else {
                        state.waiting.removeValue(forKey: socket)
                        continue
                    }
                    if state.waiting[socket]?.lastPosition == position { continue }
                    state.waiting[socket]?.lastPosition = position
                    updates.append((customer.session, customer.conversationID, position))
                }
                return updates
            }
            for (session, conversation, position) in updates {
                let wait = Self.estimatedWait(position: position, handleMs: inputs.handleMs, agentsOnline: inputs.agentsOnline)
                session.send(ServerFrame.frame(.queueStatus) { w in
                    w.key("conversation_id"); w.string(conversation)
                    w.raw(","); w.key("position"); w.int(position)
                    w.raw(","); w.key("estimated_wait_s"); w.int(wait)
                })
            }
        } catch {
            logger.warning("queue status failed", metadata: ["error": "\(error)"])
        }
    }

    /// Seconds until a customer at `position` is likely served: the people ahead, shared among
    /// the agents online, each taking the recent average handle time (5 min before there is one).
    static func estimatedWait(position: Int, handleMs: Int, agentsOnline: Int) -> Int {
        let handle = handleMs > 0 ? handleMs : 300_000
        return Int((Double(position) * Double(handle) / Double(max(1, agentsOnline)) / 1000).rounded(.up))
    }
}

/// Presence updates of one agent run one after another, in the order its sockets came and went on
/// this node (a reload's disconnect must not land after its connect). Entries go once idle.
final class PresenceSequencer: Sendable {
    private let chains = NIOLockedValueBox<[String: (id: Int, task: Task<String?, any Error>)]>([:])
    private let counter = NIOLockedValueBox(0)

    func run(_ agentID: String, _ update: @escaping @Sendable () async throws -> String?) -> Task<String?, any Error> {
        let id = counter.withLockedValue { $0 += 1; return $0 }
        return chains.withLockedValue { chains in
            let previous = chains[agentID]?.task
            let task = Task {
                _ = try? await previous?.value
                defer { self.finished(agentID, id: id) }
                return try await update()
            }
            chains[agentID] = (id, task)
            return task
        }
    }

    private func finished(_ agentID: String, id: Int) {
        chains.withLockedValue { chains in
            if chains[agentID]?.id == id { chains.removeValue(forKey: agentID) }
        }
    }
}

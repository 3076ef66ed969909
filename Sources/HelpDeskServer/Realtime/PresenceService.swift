import Foundation
import Logging
import RedisClient
import ServiceLifecycle

/// Runs on every node: heartbeats this node and its sockets, and sweeps absence (agents gone past
/// their grace go offline and their conversations go back to the queue; waiting customers gone past
/// theirs are abandoned). The sweep is one Lua script, so every node may run it at once.
struct PresenceService: Service {
    let hub: ConnectionHub
    let store: LiveStore
    let router: OfferRouter
    let nodeID: String
    let interval: Duration
    let agentGrace: Duration
    let customerGrace: Duration
    let logger: Logger

    /// A node that missed three heartbeats is dead.
    var nodeTTL: Duration { interval * 3 }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await tick()
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One heartbeat and one sweep.
    func tick() async {
        hub.closeExpired(now: Int(Date().timeIntervalSince1970))
        hub.keepalive()
        do {
            let (agents, waiting) = hub.heartbeatSubjects()
            let lost = try await store.heartbeat(node: nodeID, nodeTTL: Self.ms(nodeTTL), agents: agents, waitingConversations: waiting)
            for agentID in lost {
                // Redis forgot this agent (restart, or a sweep during a partition) while we hold its socket.
                guard let session = hub.sessions(ofUser: agentID).first else { continue }
                _ = try await store.agentConnected(agentID: agentID, node: nodeID, name: session.caller.name, capacity: "-", categories: "-", supervisorID: "-")
            }
            let (offline, requeued, abandoned) = try await store.sweep(
                agentGrace: Self.ms(agentGrace), nodeTTL: Self.ms(nodeTTL), customerGrace: Self.ms(customerGrace))
            try await store.expireCalls()
            // offers and wrap-ups past their time, whichever node set them (the scripts decide)
            await router.sweep()
            if requeued > 0 || !lost.isEmpty { router.trigger() }
            if offline + requeued + abandoned > 0 {
                logger.info("presence sweep", metadata: ["offline": "\(offline)", "requeued": "\(requeued)", "abandoned": "\(abandoned)"])
            }
        } catch {
            logger.warning("presence tick failed", metadata: ["error": "\(error)"])
        }
    }

    static func ms(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// Connects the pub/sub connection to the hub: messages are routed on the connection's event
/// loop as they are read (no queue in between that a burst could grow); a loss holds live
/// messages back until each socket re-joins, and a reconnect asks every socket to resync.
struct PubSubPump: Service {
    let hub: ConnectionHub
    let subscriber: RedisSubscriber
    let logger: Logger

    func run() async throws {
        let hub = self.hub
        subscriber.setMessageHandler { channel, payload in hub.deliver(channel: channel, payload: payload) }
        subscriber.setLossHandler { hub.holdLiveMessages() }
        await hub.start()
        await cancelWhenGracefulShutdown {
            for await event in subscriber.events {
                switch event {
                case .message(let channel, let payload), .patternMessage(_, let channel, let payload):
                    hub.deliver(channel: channel, payload: payload)
                case .reconnected:
                    logger.warning("pub/sub reconnected: asking every socket to resync")
                    hub.resyncAll()
                }
            }
        }
    }
}

import Foundation
import HelpDeskCore
import Logging

/// `helpdesk-bench pick-ceiling`: pick.lua's own ceiling. Agents pick from a prepared queue with
/// exactly the Redis commands a node sends for a PICK (`LiveStore.pick`: the reads of the queue
/// heads, then the script), but straight from this process: no node, socket, ACK or fan-out.
/// Redis's CPU per pick here is what a pick costs Redis at least; one second of it divided by
/// that is the most picks per second one Redis can do.
public struct PickCeiling: Sendable {
    let services: NodeServices

    /// - Parameter configuration: its key prefix should be the run's own.
    public init(configuration: ServerConfiguration, logger: Logger) throws {
        services = try NodeServices(configuration: configuration, logger: logger)
    }

    /// `customers` waiting conversations (uncategorised) and `agents` online agents with room for
    /// all of them (at most 50 each, as the server allows); returns the agents' ids.
    public func prepare(customers: Int, agents: Int, parallel: Int = 16) async throws -> [String] {
        try await services.scripts.loadAll(on: services.redis)
        let store = services.parts.store
        let capacity = String(min(50, (customers + agents - 1) / max(agents, 1) + 1))
        let ids = (0..<agents).map { String(900_000 + $0) }
        for id in ids {
            _ = try await store.agentConnected(agentID: id, node: services.configuration.nodeID, name: "Picker \(id)", capacity: capacity,
                                               categories: "", supervisorID: "")
            try await store.setStatus(agentID: id, status: "online")
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<parallel {
                group.addTask {
                    var i = worker
                    while i < customers {
                        _ = try await store.enqueue(name: "Waiting \(i)", email: "pick-ceiling-\(i)@example.com", categoryID: "0",
                                                    subject: "pick ceiling", priority: "normal")
                        i += parallel
                    }
                }
            }
            try await group.waitForAll()
        }
        return ids
    }

    /// Every agent picks the fairest waiting conversation, again as soon as it has one, until the
    /// queue is empty. Returns the picks made and how long they took.
    public func run(agentIDs: [String]) async throws -> (picks: Int, elapsed: Duration) {
        let store = services.parts.store
        let start = ContinuousClock.now
        let picks = try await withThrowingTaskGroup(of: Int.self) { group in
            for id in agentIDs {
                group.addTask {
                    var made = 0
                    while true {
                        do {
                            _ = try await store.pick(agentID: id, conversationID: nil, mode: "pick", actorID: id)
                            made += 1
                        } catch let error as HelpDeskError where error.code == .notFound || error.code == .atCapacity {
                            return made  // nobody is waiting, or this agent is full
                        } catch let error as HelpDeskError where error.code == .alreadyPicked {
                            continue  // another agent won that one: pick again, as a node does
                        }
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        return (picks, ContinuousClock.now - start)
    }

    public func shutdown() async {
        await services.shutdown()
    }
}

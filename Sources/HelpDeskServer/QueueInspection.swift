import Foundation
import RedisClient

/// `helpdesk queue`: the waiting customers and agents' load, for operators, straight from Redis.
public struct QueueInspection: Sendable {
    let store: LiveStore

    public init(configuration: ServerConfiguration) throws {
        let redis = RedisClient(configuration: try RedisConfiguration(url: configuration.redisURL), poolSize: 1)
        store = LiveStore(redis: redis, scripts: try ScriptLibrary.load(directory: configuration.luaDirectory),
                          keys: RedisKeys(prefix: configuration.keyPrefix), clock: { Date() })
    }

    /// Lines describing the queue and the agents, oldest waiting first.
    public func report() async throws -> [String] {
        var lines = ["WAITING (oldest first)"]
        let waiting = try await store.waiting(category: nil)
        if waiting.isEmpty { lines.append("  nobody") }
        for c in waiting {
            lines.append("  \(c.id)  category \(c.categoryId)  \(c.priority)  \(c.customer.name) <\(c.customer.email ?? "")>  waiting \(c.waitSeconds ?? 0)s")
        }
        lines.append("AGENTS")
        let agents = try await store.agents().sorted { ($0["status"] ?? "") > ($1["status"] ?? "") }
        if agents.isEmpty { lines.append("  none connected yet") }
        for a in agents {
            lines.append("  \(a["id"] ?? "?")  \(a["name"] ?? "")  \(a["status"] ?? "offline")\(a["connected"] == "1" ? "" : " (no socket)")  load \(a["active"] ?? "0")/\(a["capacity"] ?? "?")  node \(a["node"] ?? "-")")
        }
        await store.redis.close()
        return lines
    }
}

import Foundation
import RedisClient

extension RedisKeys {
    /// STREAM: outbox entries PostgreSQL refused for their data (`helpdesk outbox dead` / `replay`).
    public var deadLetteredOutbox: String { prefix + "outbox:dead" }
    /// HASH: a conversation's ringing or running call (expired with the conversation once archived).
    func callOfConversation(_ id: String) -> String { prefix + "conv:" + id + ":call" }
}

/// The operator's view of the outbox: dead-lettered entries, listed and moved back.
public struct OutboxAdmin: Sendable {
    /// One entry of `outbox:dead`.
    public struct DeadEntry: Sendable, Equatable {
        public var id: String
        public var conversationID: String
        public var epoch: String?
        /// The outbox entry it came from, the error and its SQLSTATE, when it failed (ms).
        public var entry: String
        public var error: String
        public var sqlState: String
        public var failedAt: Int64?
    }

    let redis: RedisClient
    let keys: RedisKeys

    public init(redis: RedisClient, keys: RedisKeys) {
        self.redis = redis
        self.keys = keys
    }

    /// Every dead-lettered entry, oldest first, read in pages.
    public func dead() async throws -> [DeadEntry] {
        var result: [DeadEntry] = []
        var start = "-"
        while true {
            let page = try await redis.send("XRANGE", keys.deadLetteredOutbox, start, "+", "COUNT", "500").array ?? []
            for item in page {
                guard let parts = item.array, parts.count == 2, let id = parts[0].string else { continue }
                let f = parts[1].fieldMap
                result.append(DeadEntry(id: id, conversationID: f["conversation_id"] ?? "", epoch: f["epoch"], entry: f["entry"] ?? "",
                                        error: f["error"] ?? "", sqlState: f["sqlstate"] ?? "", failedAt: f["failed_at"].flatMap { Int64($0) }))
            }
            guard page.count == 500, let last = result.last else { return result }
            start = "(" + last.id
        }
    }

    /// Moves dead entries back into the outbox (all when `ids` is empty): a new outbox entry with
    /// the same conversation and epoch, then the dead one is deleted. Returns the ids moved.
    /// An unknown id is an error and moves nothing.
    public func replay(_ ids: [String] = []) async throws -> [String] {
        let all = try await dead()
        let chosen: [DeadEntry]
        if ids.isEmpty {
            chosen = all
        } else {
            let byID = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            let missing = ids.filter { byID[$0] == nil }
            guard missing.isEmpty else {
                throw RedisError(.invalidArgument, "no dead-lettered outbox entry \(missing.joined(separator: ", "))")
            }
            chosen = ids.compactMap { byID[$0] }
        }
        for entry in chosen {
            var fields = ["conversation_id", entry.conversationID]
            if let epoch = entry.epoch { fields += ["epoch", epoch] }
            // Added before the dead copy is deleted: a crash in between replays twice, which the
            // idempotent archive write absorbs, rather than losing the entry.
            _ = try await redis.pipeline([
                ["XADD", keys.outbox, "*"] + fields,
                ["XDEL", keys.deadLetteredOutbox, entry.id],
            ])
        }
        return chosen.map(\.id)
    }
}

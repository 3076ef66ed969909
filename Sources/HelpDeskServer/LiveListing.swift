import Foundation
import HelpDeskCore
import RedisClient

/// Reading the whole live set (`convs:live`) in pages, so lists and counts never stop at the
/// newest N (issue 10 #23) and no single read holds the whole set.
extension LiveStore {
    /// Ids read per round trip.
    static let livePageSize = 500

    /// Calls `body` with pages of live conversation ids, newest first, created before `before` (ms,
    /// exclusive) if given, until `body` returns false or the set ends. A score cursor (creation
    /// ms), not an index: conversations created or closed meanwhile shift nothing, and ids are
    /// never repeated.
    func forEachLivePage(before: Int64? = nil, pageSize: Int = LiveStore.livePageSize,
                         _ body: ([String]) async throws -> Bool) async throws {
        var max = before.map { "(\($0)" } ?? "+inf"
        var offset = 0  // ids at exactly `max` already read
        var seen = Set<String>()
        while true {
            let items = try await redis.send("ZREVRANGEBYSCORE", keys.liveConversations, max, "-inf", "WITHSCORES",
                                             "LIMIT", String(offset), String(pageSize)).array ?? []
            var page: [(id: String, score: String)] = []
            var i = 0
            while i + 1 < items.count {
                if let id = items[i].string, let score = items[i + 1].string { page.append((id, score)) }
                i += 2
            }
            let fresh = page.map(\.id).filter { seen.insert($0).inserted }
            if !fresh.isEmpty, !(try await body(fresh)) { return }
            guard page.count == pageSize, let last = page.last?.score else { return }
            if last == max {
                offset += page.count
            } else {
                max = last
                offset = page.reversed().prefix { $0.score == last }.count
            }
        }
    }

    /// Up to `limit` live conversations matching `matches`, newest first.
    func liveConversations(limit: Int, before: Int64? = nil, where matches: (ConversationView) -> Bool) async throws -> [ConversationView] {
        var out: [ConversationView] = []
        try await forEachLivePage(before: before) { ids in
            out += try await conversations(ids).filter(matches)
            return out.count < limit
        }
        return Array(out.prefix(limit))
    }

    /// How many live conversations are in each status, over the whole set.
    func liveStatusCounts() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        try await forEachLivePage { ids in
            for reply in try await redis.pipeline(ids.map { ["HGET", keys.conversation($0), "status"] }) {
                if let status = reply.string { counts[status, default: 0] += 1 }
            }
            return true
        }
        return counts
    }
}

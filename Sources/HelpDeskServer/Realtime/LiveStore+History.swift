import HelpDeskCore
import RedisClient

extension LiveStore {
    /// One page of a conversation's messages after `after` (exclusive), oldest first, and whether
    /// more follow. Reads one more than asked to know.
    func messagePage(_ id: String, after: String?, count: Int) async throws -> (messages: [MessageView], hasMore: Bool) {
        let start = after.map { "(" + $0 } ?? "-"
        let entries = (try await redis.send("XRANGE", keys.messages(id), start, "+", "COUNT", String(count + 1)).array ?? [])
            .compactMap(MessageView.init(streamEntry:))
        return (Array(entries.prefix(count)), entries.count > count)
    }
}

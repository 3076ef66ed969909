import Foundation
import HelpDeskCore

/// The category tree as routing sees it: each category's parent, routing (`pick` or `offer`) and
/// wrap-up seconds, from the Redis mirror (`RedisKeys.categories`, loaded from PostgreSQL by
/// lua/categories_sync.lua). Category `0` is the uncategorised queue. The Lua prelude
/// (`hd.categories`, `hd.serves`) reads the same mirror by the same rules, so PICK, offers,
/// `GET /queue` and the audience of `QUEUE_UPDATED` agree.
struct CategoryTree: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        var parent: String = ""
        var routing: String = "pick"
        var wrapUpS: Int = 0
        var updatedMs: Int64 = 0
    }

    private(set) var entries: [String: Entry] = [:]
    /// The mirror holds a complete load (field `_`).
    private(set) var loaded = false

    init() {}

    /// From the mirror hash: id to `parent|routing|wrap_up_s|updated_ms`.
    init(hash: [String: String]) {
        for (id, value) in hash {
            if id == "_" {
                loaded = true
                continue
            }
            let parts = value.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 4 else { continue }
            entries[id] = Entry(parent: parts[0], routing: parts[1] == "offer" ? "offer" : "pick",
                                wrapUpS: Int(parts[2]) ?? 0, updatedMs: Int64(parts[3]) ?? 0)
        }
    }

    /// A category missing from the mirror routes by pick, without wrap-up, at the top level.
    func entry(_ id: String) -> Entry { entries[id] ?? Entry() }

    func routing(_ id: String) -> String { entry(id).routing }

    /// Categories whose customers are offered.
    var offerCategories: Set<String> { Set(entries.filter { $0.value.routing == "offer" }.keys) }

    /// Whether an agent serving `categories` (empty: all) serves the queue of `category`: its own
    /// categories and everything below them; the uncategorised queue (`0`) is every agent's.
    func serves(_ categories: Set<String>, category: String) -> Bool {
        if categories.isEmpty || category == "0" || category.isEmpty { return true }
        var current = category
        for _ in 0..<16 {
            if categories.contains(current) { return true }
            current = entry(current).parent
            if current.isEmpty || current == "0" { return false }
        }
        return false
    }

    func serves(_ categories: String, category: String) -> Bool {
        serves(Self.list(categories), category: category)
    }

    /// What an agent's queue list holds and PICK takes from: the pick-routed queues it serves.
    /// Offer-routed customers come to agents as offers instead.
    func picks(_ categories: Set<String>, category: String) -> Bool {
        routing(category) == "pick" && serves(categories, category: category)
    }

    /// A comma list (the agent hash's `categories`) as a set.
    static func list(_ categories: String) -> Set<String> {
        Set(categories.split(separator: ",").map(String.init))
    }
}

import Foundation
import HelpDeskCore
import RedisClient

/// A conversation as REST and events show it. Times are milliseconds since the epoch, the same
/// for a live conversation (from Redis) and an archived one (from PostgreSQL).
struct ConversationView: Codable, Sendable, Equatable {
    struct Person: Codable, Sendable, Equatable {
        var id: String
        var name: String
        var email: String?
    }

    var id: String
    var status: String
    var customer: Person
    var agent: Person?
    var categoryId: String
    var subject: String
    var priority: String
    var createdAt: Int64
    var enqueuedAt: Int64
    var assignedAt: Int64?
    var firstResponseAt: Int64?
    var closedAt: Int64?
    var resolution: String?
    /// The customer's 1-5 rating after close, and its comment.
    var rating: Int?
    var ratingComment: String?
    /// Wait so far (waiting) or until assignment, in seconds.
    var waitSeconds: Int?

    /// From the fields of a `conv:<id>` hash.
    init?(hash: [String: String], now: Int64) {
        guard let id = hash["id"], let status = hash["status"] else { return nil }
        func ms(_ key: String) -> Int64? { hash[key].flatMap { Int64($0) } }
        self.id = id
        self.status = status
        self.customer = Person(id: hash["customer_id"] ?? "", name: hash["customer_name"] ?? "", email: hash["customer_email"])
        if let agentID = hash["agent_id"], !agentID.isEmpty {
            self.agent = Person(id: agentID, name: hash["agent_name"] ?? "", email: nil)
        }
        self.categoryId = hash["category_id"] ?? "0"
        self.subject = hash["subject"] ?? ""
        self.priority = hash["priority"] ?? "normal"
        self.createdAt = ms("created_at") ?? 0
        self.enqueuedAt = ms("enqueued_at") ?? createdAt
        self.assignedAt = ms("assigned_at")
        self.firstResponseAt = ms("first_response_at")
        self.closedAt = ms("closed_at")
        self.resolution = hash["resolution"].flatMap { $0.isEmpty ? nil : $0 }
        self.rating = hash["rating"].flatMap { Int($0) }
        self.ratingComment = hash["rating_comment"]
        let waitEnd = status == "waiting" ? now : (assignedAt ?? closedAt ?? now)
        self.waitSeconds = Int(max(0, waitEnd - enqueuedAt) / 1000)
    }

    init(id: String, status: String, customer: Person, agent: Person?, categoryId: String, subject: String, priority: String,
         createdAt: Int64, enqueuedAt: Int64, assignedAt: Int64?, firstResponseAt: Int64?, closedAt: Int64?, resolution: String?,
         rating: Int? = nil, ratingComment: String? = nil) {
        self.rating = rating
        self.ratingComment = ratingComment
        self.id = id
        self.status = status
        self.customer = customer
        self.agent = agent
        self.categoryId = categoryId
        self.subject = subject
        self.priority = priority
        self.createdAt = createdAt
        self.enqueuedAt = enqueuedAt
        self.assignedAt = assignedAt
        self.firstResponseAt = firstResponseAt
        self.closedAt = closedAt
        self.resolution = resolution
        self.waitSeconds = Int(max(0, (assignedAt ?? closedAt ?? enqueuedAt) - enqueuedAt) / 1000)
    }
}

/// One chat message, live or archived.
struct MessageView: Codable, Sendable, Equatable {
    struct Sender: Codable, Sendable, Equatable {
        var id: String
        var role: String
        var name: String
    }

    var id: String
    var sender: Sender
    var text: String
    var sentAt: Int64
    var clientMsgId: String
    var isInternal: Bool

    enum CodingKeys: String, CodingKey {
        case id, sender, text, sentAt, clientMsgId
        case isInternal = "internal"
    }

    /// From one XRANGE entry: `[id, [field, value, ...]]`.
    init?(streamEntry: RESPValue) {
        guard let parts = streamEntry.array, parts.count == 2, let id = parts[0].string, let fields = parts[1].array else { return nil }
        var f: [String: String] = [:]
        var i = 0
        while i + 1 < fields.count {
            if let k = fields[i].string, let v = fields[i + 1].string { f[k] = v }
            i += 2
        }
        self.id = id
        self.sender = Sender(id: f["sender_id"] ?? "", role: f["sender_role"] ?? "", name: f["sender_name"] ?? "")
        self.text = f["text"] ?? ""
        self.sentAt = Int64(f["sent_at"] ?? "") ?? 0
        self.clientMsgId = f["client_msg_id"] ?? ""
        self.isInternal = f["internal"] == "1"
    }

    init(id: String, sender: Sender, text: String, sentAt: Int64, clientMsgId: String, isInternal: Bool) {
        self.id = id
        self.sender = sender
        self.text = text
        self.sentAt = sentAt
        self.clientMsgId = clientMsgId
        self.isInternal = isInternal
    }
}

/// A Redis stream id (`<ms>-<seq>`), ordered as Redis orders them.
struct StreamID: Comparable, Sendable, Hashable {
    let ms: UInt64
    let seq: UInt64

    init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "-", maxSplits: 1)
        guard parts.count == 2, let ms = UInt64(parts[0]), let seq = UInt64(parts[1]) else { return nil }
        self.ms = ms
        self.seq = seq
    }

    static func < (a: StreamID, b: StreamID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }

    var text: String { "\(ms)-\(seq)" }
}

extension RESPValue {
    /// A flat `[field, value, ...]` reply (HGETALL) as a dictionary.
    var fieldMap: [String: String] {
        guard let items = array else { return [:] }
        var map: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { map[k] = v }
            i += 2
        }
        return map
    }
}

/// Milliseconds since the epoch.
func epochMillis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

import Foundation
import HelpDeskCore
import RedisClient

/// The protocol's views (HelpDeskProtocol) as read from Redis.
extension ConversationView {
    /// From the fields of a `conv:<id>` hash.
    init?(hash: [String: String], now: Int64) {
        guard let id = hash["id"], let status = hash["status"] else { return nil }
        func ms(_ key: String) -> Int64? { hash[key].flatMap { Int64($0) } }
        var agent: Person?
        if let agentID = hash["agent_id"], !agentID.isEmpty {
            agent = Person(id: agentID, name: hash["agent_name"] ?? "")
        }
        let createdAt = ms("created_at") ?? 0
        let enqueuedAt = ms("enqueued_at") ?? createdAt
        let assignedAt = ms("assigned_at"), closedAt = ms("closed_at")
        let waitEnd = status == "waiting" ? now : (assignedAt ?? closedAt ?? now)
        self.init(
            id: id, status: status,
            customer: Person(id: hash["customer_id"] ?? "", name: hash["customer_name"] ?? "", email: hash["customer_email"]),
            agent: agent, categoryId: hash["category_id"] ?? "0", subject: hash["subject"] ?? "", priority: hash["priority"] ?? "normal",
            createdAt: createdAt, enqueuedAt: enqueuedAt, assignedAt: assignedAt, firstResponseAt: ms("first_response_at"),
            closedAt: closedAt, resolution: hash["resolution"].flatMap { $0.isEmpty ? nil : $0 },
            escalated: hash["escalated"] == "1", rating: hash["rating"].flatMap { Int($0) }, ratingComment: hash["rating_comment"],
            waitSeconds: Int(max(0, waitEnd - enqueuedAt) / 1000))
        if escalated == true {
            escalationNote = hash["escalation_note"]
            escalatedAt = ms("escalated_at")
        }
    }
}

extension MessageView {
    /// From one XRANGE entry: `[id, [field, value, ...]]`.
    init?(streamEntry: RESPValue) {
        guard let parts = streamEntry.array, parts.count == 2, let id = parts[0].string, let fields = parts[1].array else { return nil }
        var f: [String: String] = [:]
        var i = 0
        while i + 1 < fields.count {
            if let k = fields[i].string, let v = fields[i + 1].string { f[k] = v }
            i += 2
        }
        self.init(
            id: id, sender: Sender(id: f["sender_id"] ?? "", role: f["sender_role"] ?? "", name: f["sender_name"] ?? ""),
            text: f["text"] ?? "", sentAt: Int64(f["sent_at"] ?? "") ?? 0, clientMsgId: f["client_msg_id"] ?? "",
            isInternal: f["internal"] == "1", attachments: f["attachments"].flatMap(AttachmentView.list(json:)))
    }
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

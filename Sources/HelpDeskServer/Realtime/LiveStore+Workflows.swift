import Foundation
import HelpDeskCore
import RedisClient

/// The supervision and customer workflows the pages drive: take over (lua/takeover.lua), leave
/// the queue (lua/cancel.lua), and whom a conversation can be transferred to.
extension LiveStore {
    /// takeover.lua: `actor` (a supervisor of the agent's team, or an admin) becomes the
    /// conversation's assignee; the former agent's capacity is freed. Returns the former agent's id.
    func takeOver(conversationID: String, actor: Caller) async throws -> String {
        guard actor.role == .supervisor || actor.role == .admin else {
            throw HelpDeskError(.forbidden, "only supervisors and admins take conversations over")
        }
        let id = conversationID
        let reply = try await runFresh("takeover") {
            let old = try await redis.send("HGET", keys.conversation(id), "agent_id").string ?? ""
            return ([keys.conversation(id), keys.events(id), keys.call(id), keys.conversationChannel(id), keys.ringingCalls,
                     keys.agent(old), keys.agentConversations(old), keys.availableAgents, keys.presenceChannel, keys.userChannel(old),
                     keys.userChannel(actor.id)],
                    [nowOverride, id, actor.id, actor.role.rawValue, actor.name, old])
        }
        let r = reply.array ?? []
        guard r.first?.string == "ok" else {
            switch r.count > 1 ? r[1].string : nil {
            case "not_active": throw HelpDeskError(.conflict, "only a conversation an agent is handling can be taken over; assign a waiting one")
            case "already_yours": throw HelpDeskError(.conflict, "you already handle this conversation")
            case "forbidden": throw HelpDeskError(.forbidden, "that conversation's agent is in another supervisor's team")
            case let code: throw Self.scriptError(code)
            }
        }
        return r.count > 1 ? r[1].string ?? "" : ""
    }

    /// cancel.lua: the customer of a waiting conversation leaves the queue; it ends as abandoned at once.
    /// cancel.lua: a waiting customer leaves the queue (an offer in flight ends: the caller routes
    /// again, that agent has room).
    func cancel(conversationID: String, customer: Caller) async throws {
        guard customer.role == .customer else { throw HelpDeskError(.forbidden, "only the customer leaves the queue") }
        let id = conversationID
        let reply = try await runFresh("cancel") {
            let read = try await redis.send("HMGET", keys.conversation(id), "category_id", "customer_email", "offered_to", "account_id").array ?? []
            let category = read.first?.string ?? "", email = read.count > 1 ? read[1].string ?? "" : ""
            let offeredTo = read.count > 2 ? read[2].string ?? "" : ""
            let account = read.count > 3 ? read[3].string ?? "" : ""
            return ([keys.conversation(id), keys.events(id), keys.queue(category), customerKey(email: email, account: account), keys.customersSeen,
                     keys.liveConversations, keys.outbox, keys.queueChannel, keys.conversationChannel(id),
                     keys.offers, keys.agent(offeredTo), keys.availableAgents, keys.userChannel(offeredTo), keys.presenceChannel],
                    [nowOverride, id, customer.id, category, email, offeredTo])
        }
        let r = reply.array ?? []
        guard r.first?.string == "ok" else {
            switch r.count > 1 ? r[1].string : nil {
            case "not_waiting": throw HelpDeskError(.conflict, "an agent is already with you: the chat is no longer in the queue")
            case "forbidden": throw HelpDeskError(.forbidden, "not your conversation")
            case let code: throw Self.scriptError(code)
            }
        }
    }

    /// An agent another conversation can be transferred to: present (online or away, with a
    /// socket) and under its capacity, as transfer.lua checks again when it runs.
    struct TransferTarget: Codable, Sendable, Equatable {
        var id: String
        var name: String
        var status: String
        var active: Int
        var capacity: Int
    }

    /// The agents with free capacity, without `excluding` (the caller); only `team`'s agents when given.
    func transferTargets(excluding: String, team: String?) async throws -> [TransferTarget] {
        try await agents().compactMap { a -> TransferTarget? in
            guard let id = a["id"], id != excluding, a["status"] == "online" || a["status"] == "away", a["connected"] == "1" else { return nil }
            if let team, a["supervisor_id"] != team { return nil }
            let active = Int(a["active"] ?? "") ?? 0, capacity = Int(a["capacity"] ?? "") ?? 0
            guard active < capacity else { return nil }
            return TransferTarget(id: id, name: a["name"] ?? "", status: a["status"] ?? "", active: active, capacity: capacity)
        }.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
    }
}

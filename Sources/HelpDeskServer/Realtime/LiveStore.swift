import Foundation
import HelpDeskCore
import RedisClient

/// Live conversations, the queue and presence in Redis. Every change goes through one Lua script
/// (lua/*.lua), which keeps its invariant; this type only shapes arguments and replies.
struct LiveStore: Sendable {
    let redis: RedisClient
    let scripts: RedisScripts
    let keys: RedisKeys
    let clock: @Sendable () -> Date

    var now: Int64 { epochMillis(clock()) }

    /// Priority boosts in ms: a higher priority jumps ahead of customers who have waited less than this.
    static let priorityBoost: [String: Int64] = ["low": -300_000, "normal": 0, "high": 300_000, "urgent": 900_000]

    // MARK: queue

    struct Enqueued: Sendable {
        var conversationID: String
        var position: Int
        var created: Bool
        var customerID: String
        var status: String
    }

    /// enqueue.lua: a new waiting conversation, or the e-mail's open one.
    func enqueue(name: String, email: String, categoryID: String, subject: String, priority: String) async throws -> Enqueued {
        let id = UUID().uuidString.lowercased()
        let reply = try await scripts.run("enqueue", keys: [keys.conversation(id)], arguments: [
            keys.prefix, id, UUID().uuidString.lowercased(), name, email, categoryID, subject, priority,
            String(now), String(Self.priorityBoost[priority] ?? 0),
        ], on: redis)
        guard let r = reply.array, r.count == 5, let conv = r[0].string, let customer = r[3].string else {
            throw HelpDeskError(.internalError, "enqueue: unexpected reply")
        }
        return Enqueued(conversationID: conv, position: r[1].int ?? 0, created: r[2].int == 1, customerID: customer, status: r[4].string ?? "waiting")
    }

    /// pick.lua: `agentID` takes `conversationID` (or the fairest); mode `pick` (the agent) or `assign` (a supervisor).
    func pick(agentID: String, conversationID: String?, mode: String, actorID: String) async throws -> ConversationView {
        let reply = try await scripts.run("pick", keys: [keys.agent(agentID)], arguments: [
            keys.prefix, agentID, conversationID ?? "", mode, actorID, String(now),
        ], on: redis)
        let r = reply.array ?? []
        guard r.first?.string == "ok", r.count >= 2, let id = r[1].string else {
            throw Self.scriptError(r.count > 1 ? r[1].string : nil)
        }
        guard let view = try await conversation(id) else {
            throw HelpDeskError(.internalError, "picked conversation vanished")
        }
        return view
    }

    /// The waiting conversations of some categories (all when nil), oldest first.
    func waiting(category: String?) async throws -> [ConversationView] {
        let categories: [String]
        if let category { categories = [category] } else {
            categories = (try await redis.send("SMEMBERS", keys.queues).array ?? []).compactMap(\.string)
        }
        var ids: [(String, Double)] = []
        if !categories.isEmpty {
            let replies = try await redis.pipeline(categories.map { ["ZRANGE", keys.queue($0), "0", "-1", "WITHSCORES"] })
            for reply in replies {
                let items = reply.array ?? []
                var i = 0
                while i + 1 < items.count {
                    if let id = items[i].string, let score = items[i + 1].string.flatMap(Double.init) { ids.append((id, score)) }
                    i += 2
                }
            }
        }
        ids.sort { $0.1 < $1.1 }
        return try await conversations(ids.map(\.0))
    }

    // MARK: conversations

    /// One live conversation, or nil when Redis has none (never existed, or archived and expired).
    func conversation(_ id: String) async throws -> ConversationView? {
        let hash = try await redis.send("HGETALL", keys.conversation(id)).fieldMap
        return ConversationView(hash: hash, now: now)
    }

    /// Several live conversations in one round trip, in the given order (missing ones skipped).
    func conversations(_ ids: [String]) async throws -> [ConversationView] {
        guard !ids.isEmpty else { return [] }
        let now = self.now
        return try await redis.pipeline(ids.map { ["HGETALL", keys.conversation($0)] })
            .compactMap { ConversationView(hash: $0.fieldMap, now: now) }
    }

    /// Live conversations, newest first.
    func liveConversations(limit: Int) async throws -> [ConversationView] {
        let ids = (try await redis.send("ZREVRANGE", keys.liveConversations, "0", String(max(0, limit - 1))).array ?? []).compactMap(\.string)
        return try await conversations(ids)
    }

    /// Every message after `after` (exclusive), or all, read in pages.
    func messages(_ id: String, after: String?) async throws -> [MessageView] {
        var messages: [MessageView] = []
        var start = after.map { "(" + $0 } ?? "-"
        while true {
            let page = (try await redis.send("XRANGE", keys.messages(id), start, "+", "COUNT", "1000").array ?? [])
                .compactMap(MessageView.init(streamEntry:))
            messages += page
            guard page.count == 1000, let last = page.last else { return messages }
            start = "(" + last.id
        }
    }

    struct Sent: Sendable {
        var messageID: String
        var duplicate: Bool
        var message: MessageView?
    }

    /// send.lua: store and publish one message.
    func send(conversationID: String, sender: Caller, text: String, clientMsgID: String, isInternal: Bool) async throws -> Sent {
        let reply = try await scripts.run("send", keys: [keys.conversation(conversationID)], arguments: [
            keys.prefix, conversationID, sender.id, sender.role.rawValue, sender.name, text, clientMsgID, isInternal ? "1" : "0", String(now),
        ], on: redis)
        let r = reply.array ?? []
        guard r.first?.string == "ok", r.count == 4, let id = r[1].string else { throw Self.scriptError(r.count > 1 ? r[1].string : nil) }
        let message = r[3].string.flatMap { try? JSON.decoder.decode(MessageView.self, from: Data($0.utf8)) }
        return Sent(messageID: id, duplicate: r[2].int == 1, message: message)
    }

    /// close.lua: close and queue for archiving.
    func close(conversationID: String, actor: Caller, resolution: String) async throws {
        let reply = try await scripts.run("close", keys: [keys.conversation(conversationID)], arguments: [
            keys.prefix, conversationID, actor.id, actor.role.rawValue, resolution, String(now),
        ], on: redis)
        let r = reply.array ?? []
        guard r.first?.string == "ok" else { throw Self.scriptError(r.count > 1 ? r[1].string : nil) }
    }

    /// transfer.lua: to another agent (`agentID`), or back to a queue (`category`, nil keeps it).
    /// Returns the conversation's status afterwards.
    func transfer(conversationID: String, actor: Caller, agentID: String?, category: String?, note: String) async throws -> String {
        try await runTransfer("transfer", conversationID: conversationID, actor: actor, note: note, agentID: agentID ?? "", category: category ?? "")
    }

    /// transfer.lua escalate: flags the conversation and tells the agent's supervisor (and admins).
    func escalate(conversationID: String, actor: Caller, note: String) async throws {
        _ = try await runTransfer("escalate", conversationID: conversationID, actor: actor, note: note, agentID: "", category: "")
    }

    private func runTransfer(_ op: String, conversationID: String, actor: Caller, note: String, agentID: String, category: String) async throws -> String {
        let reply = try await scripts.run("transfer", keys: [keys.conversation(conversationID)], arguments: [
            keys.prefix, op, String(now), conversationID, actor.id, actor.role.rawValue, note, agentID, category,
        ], on: redis)
        let r = reply.array ?? []
        guard r.first?.string == "ok" else { throw Self.scriptError(r.count > 1 ? r[1].string : nil) }
        return r.count > 1 ? r[1].string ?? "" : ""
    }

    /// reopen.lua: a closed conversation back in its queue; returns its position.
    func reopen(conversationID: String, actor: Caller) async throws -> Int {
        let reply = try await scripts.run("reopen", keys: [keys.conversation(conversationID)], arguments: [
            keys.prefix, conversationID, actor.id, actor.role.rawValue, String(now),
        ], on: redis)
        let r = reply.array ?? []
        guard r.first?.string == "ok" else {
            if r.count > 1, r[1].string == "conflict" {
                throw HelpDeskError(.conflict, "only a closed conversation can be reopened, and only while its customer has no other open one")
            }
            if r.count > 1, r[1].string == "not_found" {
                throw HelpDeskError(.conflict, "this conversation is archived and can no longer be reopened; start a new chat")
            }
            throw Self.scriptError(r.count > 1 ? r[1].string : nil)
        }
        return r.count > 1 ? r[1].int ?? 0 : 0
    }

    /// Relays a typing indicator to the conversation's sockets without storing it.
    func publishTyping(conversationID: String, user: Caller, typing: Bool) async throws {
        let frame = ServerFrame.encode("TYPING", TypingData(conversationId: conversationID, userId: user.id, role: user.role.rawValue, typing: typing))
        try await redis.send("PUBLISH", keys.conversationChannel(conversationID), "a|-|" + frame)
    }

    // MARK: presence

    /// presence.lua connect: an agent's first socket on this node.
    /// Returns the agent's status (`online`, or `away` if it had chosen that). `-` keeps a field.
    func agentConnected(agentID: String, node: String, name: String, capacity: String, categories: String, supervisorID: String) async throws -> String {
        try await presence("connect", [agentID, node, name, capacity, categories, supervisorID]).string ?? "online"
    }

    /// An agent's current status as Redis has it.
    func agentStatus(_ agentID: String) async throws -> String {
        try await redis.send("HGET", keys.agent(agentID), "status").string ?? "offline"
    }

    func agentDisconnected(agentID: String, node: String) async throws {
        _ = try await presence("disconnect", [agentID, node])
    }

    func setStatus(agentID: String, status: String) async throws {
        do {
            _ = try await presence("status", [agentID, status])
        } catch let error as RedisError where error.message.contains("not_connected") {
            throw HelpDeskError(.conflict, "connect a socket before setting a status")
        }
    }

    /// Refreshes this node's sockets; returns the agents Redis no longer knows as connected here.
    func heartbeat(node: String, nodeTTL: Int, agents: [String], waitingConversations: [String]) async throws -> [String] {
        let reply = try await presence("heartbeat", [node, String(nodeTTL), String(agents.count)] + agents + waitingConversations)
        return (reply.array ?? []).compactMap(\.string)
    }

    /// Acts on absence; returns (agents gone offline, conversations requeued, customers abandoned).
    func sweep(agentGrace: Int, nodeTTL: Int, customerGrace: Int) async throws -> (Int, Int, Int) {
        let r = try await presence("sweep", [String(agentGrace), String(nodeTTL), String(customerGrace)]).array ?? []
        return (r.first?.int ?? 0, r.count > 1 ? r[1].int ?? 0 : 0, r.count > 2 ? r[2].int ?? 0 : 0)
    }

    private func presence(_ op: String, _ arguments: [String]) async throws -> RESPValue {
        try await scripts.run("presence", keys: [keys.presence], arguments: [keys.prefix, op, String(now)] + arguments, on: redis)
    }

    /// Every agent Redis knows, with status and load.
    func agents() async throws -> [[String: String]] {
        let ids = (try await redis.send("SMEMBERS", keys.agents).array ?? []).compactMap(\.string)
        guard !ids.isEmpty else { return [] }
        return try await redis.pipeline(ids.map { ["HGETALL", keys.agent($0)] }).map(\.fieldMap).filter { !$0.isEmpty }
    }

    /// Queue position (1-based) of a waiting conversation, or nil when it is not waiting.
    func positions(_ conversations: [(id: String, category: String)]) async throws -> [String: Int] {
        guard !conversations.isEmpty else { return [:] }
        let replies = try await redis.pipeline(conversations.map { ["ZRANK", keys.queue($0.category), $0.id] })
        var out: [String: Int] = [:]
        for (conversation, reply) in zip(conversations, replies) {
            if let rank = reply.int { out[conversation.id] = rank + 1 }
        }
        return out
    }

    /// Average handle time (ms) and agents online, for wait estimates.
    func waitInputs() async throws -> (handleMs: Int, agentsOnline: Int) {
        let replies = try await redis.pipeline([["HGET", keys.stats, "handle_ms_avg"], ["ZCARD", keys.availableAgents], ["ZCARD", keys.presence]])
        return (replies[0].int ?? 0, max(replies[1].int ?? 0, replies[2].int ?? 0))
    }

    /// Maps a script's error code to the API's error.
    static func scriptError(_ code: String?) -> HelpDeskError {
        switch code {
        case "already_picked": return HelpDeskError(.alreadyPicked, "someone else took this conversation")
        case "at_capacity": return HelpDeskError(.atCapacity, "the agent already has as many conversations as its capacity allows")
        case "not_online": return HelpDeskError(.conflict, "set your status to online to pick conversations")
        case "agent_offline": return HelpDeskError(.conflict, "that agent is offline")
        case "queue_empty": return HelpDeskError(.notFound, "nobody is waiting")
        case "not_found": return HelpDeskError(.notFound, "no such conversation")
        case "conversation_closed": return HelpDeskError(.conversationClosed, "the conversation is closed")
        case "forbidden": return HelpDeskError(.forbidden, "you are not a participant of this conversation")
        default: return HelpDeskError(.internalError, "unexpected script reply \(code ?? "nil")")
        }
    }
}


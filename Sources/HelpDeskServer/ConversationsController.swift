import Foundation
import HelpDeskCore
import Hummingbird
import PostgresClient

/// `/api/v1/conversations`, `/queue`, `/presence`: the REST side of the realtime core. Live state
/// comes from Redis through `LiveStore`; closed conversations from PostgreSQL through `ArchiveStore`.
struct ConversationsController: Sendable {
    let store: LiveStore
    let archive: ArchiveStore
    let users: UserStore
    let services: NodeServices
    /// Offer routing: told about every event that can make a match (enqueue, requeue, close, ...).
    let router: OfferRouter

    struct StartBody: Decodable {
        var name: String
        var email: String
        var categoryId: Int?
        var subject: String?
        var priority: String?
    }

    struct StartReply: Encodable {
        var conversationId: String
        var customerToken: String
        var position: Int
        var status: String
    }

    struct MessageBody: Decodable {
        var text: String
        var clientMsgId: String
        var isInternal: Bool?
        var attachmentIds: [String]?
        enum CodingKeys: String, CodingKey { case text, clientMsgId, attachmentIds, isInternal = "internal" }
    }

    struct PickBody: Decodable { var conversationId: String? }
    struct AssignBody: Decodable { var agentId: Int }
    struct CloseBody: Decodable { var resolution: String? }
    struct StatusBody: Decodable { var status: String }
    struct RatingBody: Decodable { var rating: Int; var comment: String? }
    struct TransferBody: Decodable { var agentId: Int?; var categoryId: Int?; var note: String? }
    struct EscalateBody: Decodable { var note: String? }

    static let priorities: Set<String> = ["low", "normal", "high", "urgent"]

    func addRoutes(public api: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AuthenticatedContext>) {
        api.post("conversations") { request, context in
            let ip = clientIP(request: request, remote: context.remoteAddress, trustProxy: services.configuration.trustProxy)
            let body = try await request.decodeJSON(StartBody.self, context: context)
            var name = try Validate.text(body.name, field: "name", max: 100)
            var email = try Validate.email(body.email)
            // A signed-in customer's chat belongs to its account: its name and e-mail are the
            // account's, whatever the form said.
            var account: String?
            if let caller = context.caller, caller.isAccount {
                guard let found = try await CustomerAccounts(pool: services.postgres).find(id: caller.id) else {
                    throw HelpDeskError(.unauthorized, "account no longer active")
                }
                (name, email, account) = (found.name, found.email, found.id)
            }
            let subject = try Validate.text(body.subject ?? "", field: "subject", max: 200, min: 0)
            let priority = body.priority ?? "normal"
            guard Self.priorities.contains(priority) else { throw HelpDeskError(.validationFailed, "priority must be low, normal, high or urgent") }
            let category = try await validCategory(body.categoryId)
            let wait = try await services.scripts.run("ratelimit", keys: [services.keys.conversationStartsByIP(ip)],
                arguments: ["hit", String(services.configuration.startWindowSeconds * 1000), String(services.configuration.startLimitPerIP)],
                on: services.redis).int ?? 0
            guard wait == 0 else { throw HelpDeskError(.rateLimited, "too many chats started from here; try again in \((wait + 999) / 1000) s") }
            // An open conversation is handed back only to whoever holds its customer token; anyone
            // else gets a new one: knowing an e-mail address neither opens nor blocks someone's chat,
            // and no answer tells whether that address has one open.
            let resume = context.caller?.role == .customer ? context.caller?.conversationID : nil
            let queued = try await store.enqueue(name: name, email: email, categoryID: category, subject: subject, priority: priority,
                                                 resume: resume, account: account)
            if queued.created { router.trigger() }
            let now = Int(services.clock().timeIntervalSince1970)
            let token = services.tokens.sign(TokenClaims(sub: queued.customerID, role: Role.customer.rawValue, iat: now,
                                                          exp: now + services.configuration.customerTokenTTL, name: name, conv: queued.conversationID))
            return try Response.json(StartReply(conversationId: queued.conversationID, customerToken: token, position: queued.position, status: queued.status),
                                     status: queued.created ? .created : .ok)
        }

        authenticated.get("conversations") { request, context in
            let caller = context.caller
            guard caller.isStaff else { throw HelpDeskError(.forbidden, "staff only") }
            let q = request.uri.queryParameters
            let limit = try Validate.range(q.get("limit", as: Int.self) ?? 50, field: "limit", 1...500)
            let status = q.get("status")
            var agentFilter = q.get("agent_id", as: Int.self)
            let category = q.get("category_id", as: Int.self)
            // Agents see their own conversations only; supervisors their team's and the queue's (#16).
            if caller.role == .agent { agentFilter = Int(caller.id) }
            let team = caller.role == .supervisor ? try await teamAgents(of: caller) : nil
            // `before` (ms) pages both parts: live conversations by creation, archived ones by close.
            // Up to the year 9999: a larger one overflowed the microseconds of the PostgreSQL parameter (schemathesis).
            let beforeMs = try q.get("before", as: Int64.self).map { Int64(try Validate.range(Int($0), field: "before", 0...253_402_300_799_999)) }
            var results: [ConversationView] = []
            if status == nil || status == "waiting" || status == "active" {
                // Read in pages until `limit` match: never only the newest N of the live set.
                results += try await store.liveConversations(limit: limit, before: beforeMs) { view in
                    (status == nil || view.status == status) && (category == nil || view.categoryId == String(category!))
                        && (agentFilter == nil || view.agent?.id == String(agentFilter!))
                        && (team == nil || view.agent.map { team!.contains($0.id) } ?? true)
                }
            }
            if results.count < limit, status == nil || status == "closed" || status == "abandoned" {
                let before = beforeMs.map { Date(timeIntervalSince1970: Double($0) / 1000) }
                let archived = try await archive.conversations(status: status, categoryID: category, agentID: agentFilter,
                                                               teamOf: team == nil ? nil : Int(caller.id), limit: limit, before: before)
                let live = Set(results.map(\.id))
                results += archived.filter { !live.contains($0.id) }
            }
            return try Response.json(Array(results.prefix(limit)))
        }

        authenticated.get("conversations/:id") { _, context in
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            return try Response.json(try await readable(id, caller: context.caller))
        }

        authenticated.get("conversations/:id/messages") { request, context in
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            let view = try await readable(id, caller: context.caller)
            let after = request.uri.queryParameters.get("after")
            let afterID = try after.map { text -> StreamID in
                guard let id = StreamID(text) else { throw HelpDeskError(.validationFailed, "after is not a message id") }
                return id
            }
            // One bounded page (`limit`, default 500, at most 1,000); `has_more` asks for the next
            // one with `after` = the last id. Live conversations read the stream, archived ones
            // PostgreSQL: same shape either way.
            let limit = try Validate.range(request.uri.queryParameters.get("limit").map { text in
                guard let n = Int(text) else { throw HelpDeskError(.validationFailed, "limit must be a number") }
                return n
            } ?? 500, field: "limit", 1...1000)
            var page = try await store.messagePage(id, after: afterID?.text, count: limit)
            if page.messages.isEmpty, view.status == "closed" || view.status == "abandoned", try await store.conversation(id) == nil {
                let archived = try await archive.messages(id, after: afterID, limit: limit + 1)
                page = (Array(archived.prefix(limit)), archived.count > limit)
            }
            let messages = context.caller.isStaff ? page.messages : page.messages.filter { !$0.isInternal }
            var reply = ["conversation_id": AnyEncodable(id), "messages": AnyEncodable(messages), "has_more": AnyEncodable(page.hasMore)]
            // Where the next page starts: the page's last message, shown or not (a customer's page of
            // internal notes only is empty, and must not stop or repeat the paging).
            if page.hasMore, let last = page.messages.last { reply["next_after"] = AnyEncodable(last.id) }
            return try Response.json(reply)
        }

        authenticated.post("conversations/:id/messages") { request, context in
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            try ConversationRules.requireOwnConversation(context.caller, id)
            let body = try await request.decodeJSON(MessageBody.self, context: context)
            let attachmentIDs = try AttachmentRules.ids(body.attachmentIds)
            let message = try ConversationRules.validMessage(
                text: body.text, clientMsgID: body.clientMsgId, isInternal: body.isInternal, caller: context.caller, allowEmptyText: !attachmentIDs.isEmpty)
            let sent = try await store.send(conversationID: id, sender: context.caller, text: message.text, clientMsgID: message.clientMsgID,
                                            isInternal: message.isInternal, attachmentIDs: attachmentIDs)
            return try Response.json(SendAck(conversationId: id, messageId: sent.messageID, clientMsgId: message.clientMsgID, duplicate: sent.duplicate),
                                     status: sent.duplicate ? .ok : .created)
        }

        authenticated.post("conversations/:id/assign") { request, context in
            try context.require(.supervisor, .admin)
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            let body = try await request.decodeJSON(AssignBody.self, context: context)
            if context.caller.role == .supervisor {
                guard let agent = try await users.find(id: body.agentId), agent.role == .agent else {
                    throw HelpDeskError(.validationFailed, "agent_id is not an agent")
                }
                _ = agent
                // from the queue (or the own team) to an agent of the own team only
                try await store.requireTeamScope(context.caller, conversationID: id)
                try await store.requireTeamScope(context.caller, agentID: String(body.agentId))
            }
            let view = try await store.pick(agentID: String(body.agentId), conversationID: id, mode: "assign", actorID: context.caller.id)
            return try Response.json(view)
        }

        authenticated.post("conversations/:id/close") { request, context in
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            let hasBody = request.headers[.contentLength].map { $0 != "0" } ?? false
            let body = hasBody ? try await request.decodeJSON(CloseBody.self, context: context) : CloseBody(resolution: nil)
            let resolution = try Validate.text(body.resolution ?? "", field: "resolution", max: 500, min: 0)
            router.closed(try await store.close(conversationID: id, actor: context.caller, resolution: resolution))
            return try Response.json(try await store.conversation(id))
        }

        authenticated.post("conversations/:id/transfer") { request, context in
            try context.require(.agent, .supervisor, .admin)
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            let body = try await request.decodeJSON(TransferBody.self, context: context)
            guard body.agentId == nil || body.categoryId == nil else {
                throw HelpDeskError(.validationFailed, "give agent_id or category_id, not both")
            }
            let note = try Validate.text(body.note ?? "", field: "note", max: 500, min: 0)
            let category = try await body.categoryId.asyncMap { try await validCategory($0) }
            // a supervisor moves its own team's conversations, to its own team or a queue
            try await store.requireTeamScope(context.caller, conversationID: id)
            try await store.requireTeamScope(context.caller, agentID: body.agentId.map(String.init))
            _ = try await store.transfer(conversationID: id, actor: context.caller, agentID: body.agentId.map(String.init), category: category, note: note)
            // capacity freed, maybe a customer back in a queue
            router.trigger()
            return try Response.json(try await store.conversation(id))
        }

        authenticated.post("conversations/:id/escalate") { request, context in
            try context.require(.agent)
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            let hasBody = request.headers[.contentLength].map { $0 != "0" } ?? false
            let body = hasBody ? try await request.decodeJSON(EscalateBody.self, context: context) : EscalateBody(note: nil)
            try await store.escalate(conversationID: id, actor: context.caller, note: try Validate.text(body.note ?? "", field: "note", max: 500, min: 0))
            return try Response.json(try await store.conversation(id))
        }

        authenticated.post("conversations/:id/reopen") { _, context in
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            try ConversationRules.requireOwnConversation(context.caller, id)
            // staff reopen what was theirs: an agent its own chats, a supervisor its team's
            if context.caller.role == .agent || context.caller.role == .supervisor, let view = try await store.conversation(id) {
                if context.caller.role == .agent, view.agent?.id != context.caller.id {
                    throw HelpDeskError(.forbidden, "this conversation was not yours")
                }
                try await store.requireTeamScope(context.caller, agentID: view.agent?.id)
            }
            let position = try await store.reopen(conversationID: id, actor: context.caller)
            router.trigger()
            return try Response.json(["conversation_id": AnyEncodable(id), "position": AnyEncodable(position), "status": AnyEncodable("waiting")])
        }

        authenticated.post("conversations/:id/rating") { request, context in
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            guard context.caller.role == .customer else { throw HelpDeskError(.forbidden, "only the conversation's customer rates it") }
            if context.caller.isAccount { _ = try await readable(id, caller: context.caller) } else if context.caller.conversationID != id {
                throw HelpDeskError(.forbidden, "only the conversation's customer rates it")
            }
            let body = try await request.decodeJSON(RatingBody.self, context: context)
            let rating = try Validate.range(body.rating, field: "rating", 1...5)
            let comment = try Validate.text(body.comment ?? "", field: "comment", max: 1000, min: 0)
            try await rate(id, rating: rating, comment: comment)
            return try Response.json(["conversation_id": AnyEncodable(id), "rating": AnyEncodable(rating), "comment": AnyEncodable(comment)])
        }

        authenticated.get("queue") { request, context in
            try context.require(.agent, .supervisor, .admin)
            let category = request.uri.queryParameters.get("category_id", as: Int.self).map(String.init)
            guard context.caller.role == .agent else { return try Response.json(try await store.waiting(category: category)) }
            // An agent sees what it may PICK (pick.lua's rule): the pick-routed queues it serves, i.e.
            // its categories, their subcategories and the uncategorised queue (all when it has no
            // categories); offer-routed customers come to it as offers. No e-mail address: that
            // comes with an assignment (issue 10 #18).
            guard let agent = try await users.find(id: try staffID(context.caller)) else { throw HelpDeskError(.unauthorized, "account no longer exists") }
            let serves = Set(agent.categoryIds.map(String.init))
            let tree = try await store.categoryTree()
            var waiting: [ConversationView]
            if let category {
                waiting = tree.picks(serves, category: category) ? try await store.waiting(category: category) : []
            } else {
                waiting = try await store.waiting(category: nil).filter { tree.picks(serves, category: $0.categoryId) }
            }
            for i in waiting.indices { waiting[i].customer.email = nil }
            return try Response.json(waiting)
        }

        authenticated.post("queue/pick") { request, context in
            try context.require(.agent)
            let hasBody = request.headers[.contentLength].map { $0 != "0" } ?? false
            let body = hasBody ? try await request.decodeJSON(PickBody.self, context: context) : PickBody(conversationId: nil)
            let wanted = try body.conversationId.map(ConversationRules.conversationID)
            return try Response.json(try await store.pick(agentID: context.caller.id, conversationID: wanted, mode: "pick", actorID: context.caller.id))
        }

        authenticated.get("presence") { _, context in
            try context.require(.supervisor, .admin)
            var agents = try await store.agents()
            if context.caller.role == .supervisor {
                let mine = try await teamAgents(of: context.caller)
                agents = agents.filter { mine.contains($0["id"] ?? "") }
            }
            return try Response.json(agents.map(PresenceView.init))
        }

        authenticated.put("presence/me") { request, context in
            try context.require(.agent)
            let body = try await request.decodeJSON(StatusBody.self, context: context)
            guard body.status == "online" || body.status == "away" else { throw HelpDeskError(.validationFailed, "status must be online or away") }
            try await store.setStatus(agentID: context.caller.id, status: body.status)
            if body.status == "online" { router.trigger() }
            return try Response.json(["status": body.status])
        }
    }

    /// The conversation if the caller may read it: its customer, its agent, supervisors and admins.
    /// Anyone else gets 404, so ids cannot be probed.
    /// The ids of a supervisor's agents (its team), from the accounts, and its own (a conversation
    /// it took over has it as the assignee).
    func teamAgents(of supervisor: Caller) async throws -> Set<String> {
        guard let id = Int(supervisor.id) else { return [] }
        return Set(try await users.list(supervisorID: id).map { String($0.id) }).union([supervisor.id])
    }

    func readable(_ id: String, caller: Caller) async throws -> ConversationView {
        let live = try await store.conversation(id)
        var view = live
        if view == nil { view = try await archive.conversation(id) }
        guard let view else { throw HelpDeskError(.notFound, "no such conversation") }
        switch caller.role {
        case .admin: return view
        case .supervisor:
            // the own team's conversations and the queue's (#16)
            guard let agent = view.agent?.id, try await !teamAgents(of: caller).contains(agent) else { return view }
            throw HelpDeskError(.forbidden, "that conversation is in another supervisor's team")
        case .agent where view.agent?.id == caller.id: return view
        case .customer where caller.conversationID == id:
            var own = view
            own.escalationNote = nil  // staff's words about the customer
            own.escalatedAt = nil
            return own
        case .customer where caller.isAccount:
            // its own: started while signed in (the live customer id, or the archive's account_id)
            var owned = false
            if let live { owned = live.customer.id == caller.id } else { owned = try await archive.isOwned(id, account: caller.id) }
            guard owned else { throw HelpDeskError(.notFound, "no such conversation") }
            var own = view
            own.escalationNote = nil
            own.escalatedAt = nil
            return own
        default: throw HelpDeskError(.notFound, "no such conversation")
        }
    }

    /// Stores a rating once, after close: in the archive row if it is written, else in the Redis
    /// hash with the conversation queued again for the flusher (which carries the rating over), so
    /// a flush running at the same moment cannot lose it. The Redis check and write are one
    /// script (rate.lua): two ratings sent at once cannot both pass.
    private func rate(_ id: String, rating: Int, comment: String) async throws {
        let live = try await store.rate(conversationID: id, rating: rating, comment: comment)
        let updated = try await services.postgres.query(
            "UPDATE conversations SET rating = $2, rating_comment = $3, rated_at = now() WHERE id = $1::uuid AND rating IS NULL", [id, rating, comment])
        if updated.affectedRows == 0 {
            if case .live(let epoch) = live {
                // archived before the rating, or not yet: flush this close generation again
                try await services.redis.send("XADD", services.keys.outbox, "*", "conversation_id", id, "epoch", epoch)
            } else if try await archive.conversation(id) != nil {
                throw HelpDeskError(.conflict, "this conversation was already rated")
            } else {
                throw HelpDeskError(.notFound, "no such conversation")
            }
        }
    }

    /// "0" (no category) or the id of an existing category. If PostgreSQL cannot answer, a chat
    /// still starts: taking customers matters more than checking the category.
    private func validCategory(_ id: Int?) async throws -> String {
        guard let id else { return "0" }
        guard id > 0 else { throw HelpDeskError(.validationFailed, "category_id must be positive") }
        do {
            if try await services.postgres.query("SELECT 1 FROM categories WHERE id = $1 AND active", [id]).isEmpty {
                throw HelpDeskError(.validationFailed, "category \(id) does not exist")
            }
        } catch let error as PostgresError {
            services.logger.warning("category check skipped: PostgreSQL unavailable", metadata: ["error": "\(error)"])
        }
        return String(id)
    }
}

/// An agent's presence as supervisors see it.
struct PresenceView: Encodable {
    var agentId: String
    var name: String
    var status: String
    var active: Int
    var capacity: Int
    var nodeId: String
    var connected: Bool
    var since: Int64
    var lastSeen: Int64
    /// Offers waiting for its answer; the end of its wrap-up while in one.
    var offers: Int
    var wrapUpUntil: Int64?

    init(_ hash: [String: String]) {
        agentId = hash["id"] ?? ""
        name = hash["name"] ?? ""
        status = hash["status"] ?? "offline"
        active = Int(hash["active"] ?? "") ?? 0
        capacity = Int(hash["capacity"] ?? "") ?? 0
        nodeId = hash["node"] ?? ""
        connected = hash["connected"] == "1"
        since = Int64(hash["since"] ?? "") ?? 0
        lastSeen = Int64(hash["last_seen"] ?? "") ?? 0
        offers = Int(hash["offered"] ?? "") ?? 0
        wrapUpUntil = Int64(hash["wrap_up_until"] ?? "")
    }
}

/// Wraps any Encodable, for small mixed JSON objects.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

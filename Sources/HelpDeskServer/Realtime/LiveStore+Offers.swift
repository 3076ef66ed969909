import Foundation
import HelpDeskCore
import RedisClient

/// Offer routing, wrap-up and the category mirror (issue 11): lua/offer*.lua, wrap_up_end.lua and
/// categories_sync.lua keep the rules; this shapes arguments and replies. `OfferRouter` decides
/// when they run.
extension LiveStore {
    /// How long an agent that declined a customer (or let its offer run out) is passed over for
    /// that customer, while anyone else can take it.
    static let declineMemoryMs = 60_000

    /// The mirrored category tree as Redis has it now.
    func categoryTree() async throws -> CategoryTree {
        CategoryTree(hash: try await redis.send("HGETALL", keys.categories).fieldMap)
    }

    /// One category row for the mirror.
    struct CategoryRouting: Sendable, Equatable {
        var id: String
        var parent: String
        var routing: String
        var wrapUpS: Int
        var updatedMs: Int64
    }

    /// categories_sync.lua: writes rows into the mirror (a row never replaces a newer one);
    /// `complete` marks a full load. Returns the ids that changed.
    @discardableResult
    func syncCategories(_ rows: [CategoryRouting], complete: Bool) async throws -> [String] {
        let reply = try await scripts.run("categories_sync", keys: [keys.categories, keys.queueChannel],
                                          arguments: [nowOverride, complete ? "1" : "0"]
                                            + rows.flatMap { [$0.id, $0.parent, $0.routing, String($0.wrapUpS), String($0.updatedMs)] },
                                          on: redis)
        return (reply.array ?? []).compactMap(\.string)
    }

    /// Whether the mirror holds a complete load (it is gone after a Redis flush or restart without data).
    func categoriesLoaded() async throws -> Bool {
        try await redis.send("HEXISTS", keys.categories, "_").int == 1
    }

    enum OfferOutcome: Sendable, Equatable {
        /// An offer was made; it runs out `delayMs` from now (Redis's clock).
        case offered(conversationID: String, agentID: String, expiresAt: Int64, delayMs: Int64)
        /// No waiting customer of an offer-routed queue has an eligible agent.
        case none
    }

    /// offer.lua: at most one offer, the oldest customer that can be served to the longest-idle
    /// eligible agent. The node reads the offer-routed queues, each one's oldest customer not on
    /// offer and every available agent; the script checks all of it still holds.
    func offerNext(timeoutMs: Int) async throws -> OfferOutcome {
        for _ in 0..<Self.staleAttempts {
            let read = try await redis.pipeline([["HGETALL", keys.categories], ["SMEMBERS", keys.queues],
                                                 ["ZRANGE", keys.availableAgents, "0", "-1"], ["ZRANGE", keys.offers, "0", "-1"]])
            let tree = CategoryTree(hash: read[0].fieldMap)
            let queues = (read[1].array ?? []).compactMap(\.string).filter { tree.routing($0) == "offer" }.sorted()
            let agents = (read[2].array ?? []).compactMap(\.string)
            let offered = Set((read[3].array ?? []).compactMap(\.string))
            // Nothing to match: no script (whatever changes this is an event that routes again).
            if queues.isEmpty || agents.isEmpty { return .none }
            let heads = try await redis.pipeline(queues.map { ["ZRANGE", keys.queue($0), "0", String(offered.count)] })
            let candidates = heads.compactMap { head in (head.array ?? []).compactMap(\.string).first { !offered.contains($0) } }
            if candidates.isEmpty { return .none }
            let reply = try await scripts.run("offer",
                keys: [keys.availableAgents, keys.queues, keys.categories, keys.offers, keys.presenceChannel]
                    + queues.map(keys.queue)
                    + candidates.flatMap { [keys.conversation($0), keys.events($0)] }
                    + agents.flatMap { [keys.agent($0), keys.userChannel($0)] },
                arguments: [nowOverride, String(timeoutMs), String(Self.declineMemoryMs), String(queues.count)] + queues
                    + [String(candidates.count)] + candidates + [String(agents.count)] + agents,
                on: redis)
            let r = reply.array ?? []
            if r.count == 2, r[0].string == "err", r[1].string == "stale" { continue }
            guard r.first?.string == "offered", r.count == 5, let conversation = r[1].string, let agent = r[2].string,
                  let expires = r[3].string.flatMap({ Int64($0) }), let now = r[4].string.flatMap({ Int64($0) }) else { return .none }
            return .offered(conversationID: conversation, agentID: agent, expiresAt: expires, delayMs: max(0, expires - now))
        }
        throw HelpDeskError(.conflict, "the queue kept changing meanwhile; routing again later")
    }

    /// offer_accept.lua: the agent takes the conversation offered to it (pick semantics).
    func acceptOffer(conversationID: String, agentID: String) async throws -> ConversationView {
        let id = conversationID
        let reply = try await runFresh("offer_accept") {
            let category = try await redis.send("HGET", keys.conversation(id), "category_id").string ?? ""
            return ([keys.conversation(id), keys.events(id), keys.conversationChannel(id), keys.queue(category), keys.customersSeen,
                     keys.offers, keys.agent(agentID), keys.agentConversations(agentID), keys.availableAgents, keys.userChannel(agentID),
                     keys.queueChannel, keys.presenceChannel],
                    [nowOverride, id, agentID, category])
        }
        let r = reply.array ?? []
        guard r.first?.string == "ok", r.count >= 3 else { throw Self.scriptError(r.count > 1 ? r[1].string : nil) }
        guard let view = ConversationView(hash: r[2].fieldMap, now: now) else { throw HelpDeskError(.internalError, "offer_accept: unexpected reply") }
        return view
    }

    enum OfferEnd: Sendable, Equatable {
        /// Ended (`declined` or `expired`); `status` is the agent's new status when it changed (away).
        case ended(reason: String, status: String?)
        /// Not yet: it runs out at `deadline` (Redis ms; `now` is Redis's clock).
        case notDue(deadline: Int64, now: Int64)
        /// No such offer (any more).
        case gone
    }

    /// offer_end.lua, decline: the agent turns the offer down.
    func declineOffer(conversationID: String, agentID: String) async throws {
        let result = try await endOffer(conversationID: conversationID, mode: "decline", agentID: agentID)
        if result == .gone { throw Self.scriptError("no_offer") }
    }

    /// offer_end.lua, expire: ends the offer if its time is up by Redis's clock (safe on every node at once).
    func expireOffer(conversationID: String) async throws -> OfferEnd {
        try await endOffer(conversationID: conversationID, mode: "expire", agentID: nil)
    }

    private func endOffer(conversationID: String, mode: String, agentID: String?) async throws -> OfferEnd {
        let id = conversationID
        let reply = try await runFresh("offer_end") {
            var agent = agentID ?? ""
            if agentID == nil { agent = try await redis.send("HGET", keys.conversation(id), "offered_to").string ?? "" }
            return ([keys.conversation(id), keys.events(id), keys.offers, keys.agent(agent), keys.availableAgents, keys.userChannel(agent),
                     keys.presenceChannel],
                    [nowOverride, id, mode, agent])
        }
        let r = reply.array ?? []
        switch r.first?.string {
        case "ok":
            let status = r.count > 2 ? r[2].string ?? "" : ""
            return .ended(reason: r.count > 1 ? r[1].string ?? "" : "", status: status.isEmpty ? nil : status)
        case "not_due":
            return .notDue(deadline: r.count > 1 ? r[1].string.flatMap { Int64($0) } ?? 0 : 0,
                           now: r.count > 2 ? r[2].string.flatMap { Int64($0) } ?? 0 : 0)
        default:
            if r.count > 1, r[1].string == "no_offer" { return .gone }
            throw Self.scriptError(r.count > 1 ? r[1].string : nil)
        }
    }

    /// Offers past their deadline by Redis's clock, ended (candidates from the offers set;
    /// offer_end.lua decides each). Returns how many ended.
    @discardableResult
    func expireOffers() async throws -> Int {
        let read = try await redis.pipeline([["TIME"], ["ZRANGE", keys.offers, "0", "99", "WITHSCORES"]])
        var ended = 0
        for id in Self.dueMembers(read[1], atMost: redisNow(read[0])) {
            if case .ended = try await expireOffer(conversationID: id) { ended += 1 }
        }
        return ended
    }

    enum WrapUpEnd: Sendable, Equatable {
        case ended
        case notInWrapUp
        case notDue(until: Int64, now: Int64)
    }

    /// wrap_up_end.lua: `early` (END_WRAP_UP) or when its time is up by Redis's clock.
    func endWrapUp(agentID: String, early: Bool) async throws -> WrapUpEnd {
        let reply = try await scripts.run("wrap_up_end", keys: [keys.agent(agentID), keys.wrapUps, keys.availableAgents,
                                                                keys.userChannel(agentID), keys.presenceChannel],
                                          arguments: [nowOverride, agentID, early ? "early" : "due"], on: redis)
        if let r = reply.array, r.first?.string == "not_due" {
            return .notDue(until: r.count > 1 ? r[1].string.flatMap { Int64($0) } ?? 0 : 0,
                           now: r.count > 2 ? r[2].string.flatMap { Int64($0) } ?? 0 : 0)
        }
        return reply.int == 1 ? .ended : .notInWrapUp
    }

    /// Wrap-ups past their end by Redis's clock, ended. Returns how many ended.
    @discardableResult
    func expireWrapUps() async throws -> Int {
        let read = try await redis.pipeline([["TIME"], ["ZRANGE", keys.wrapUps, "0", "99", "WITHSCORES"]])
        var ended = 0
        for agent in Self.dueMembers(read[1], atMost: redisNow(read[0])) {
            if try await endWrapUp(agentID: agent, early: false) == .ended { ended += 1 }
        }
        return ended
    }

    /// What an agent's new socket needs to know about routing: its wrap-up end (if in wrap-up) and
    /// the offers waiting for its answer (conversation view without e-mail, expiry), by Redis's clock.
    func routingState(agentID: String) async throws -> (now: Int64, wrapUpUntil: Int64?, offers: [(ConversationView, Int64)]) {
        let read = try await redis.pipeline([["TIME"], ["HGET", keys.agent(agentID), "wrap_up_until"],
                                             ["ZRANGE", keys.offers, "0", "-1", "WITHSCORES"]])
        let now = redisNow(read[0])
        let wrapUp = read[1].string.flatMap { Int64($0) }.flatMap { $0 > now ? $0 : nil }
        var deadlines: [(String, Int64)] = []
        let items = read[2].array ?? []
        var i = 0
        while i + 1 < items.count {
            if let id = items[i].string, let score = items[i + 1].string.flatMap(Double.init), Int64(score) > now { deadlines.append((id, Int64(score))) }
            i += 2
        }
        guard !deadlines.isEmpty else { return (now, wrapUp, []) }
        let hashes = try await redis.pipeline(deadlines.map { ["HGETALL", keys.conversation($0.0)] })
        var offers: [(ConversationView, Int64)] = []
        for ((_, deadline), hash) in zip(deadlines, hashes) {
            let fields = hash.fieldMap
            guard fields["offered_to"] == agentID, var view = ConversationView(hash: fields, now: self.now) else { continue }
            view.customer.email = nil
            offers.append((view, deadline))
        }
        return (now, wrapUp, offers)
    }
}

/// `CONVERSATION_OFFERED` data as the node sends it again to a new socket (lua/offer.lua sends the first).
struct OfferedData: Encodable {
    var conversation: ConversationView
    var expiresAt: Int64
}

struct WrapUpStartedData: Encodable {
    var conversationId: String?
    var wrapUpUntil: Int64
}

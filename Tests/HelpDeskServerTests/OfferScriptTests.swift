import Foundation
import HelpDeskCore
import NIOConcurrencyHelpers
import RedisClient
import TestSupport
import Testing
@testable import HelpDeskServer

/// A script clock a test moves by hand (every script's `now` override).
final class MovableClock: Sendable {
    private let box = NIOLockedValueBox(Date())
    var now: Date { box.withLockedValue { $0 } }
    func advance(_ seconds: Double) { box.withLockedValue { $0 = $0.addingTimeInterval(seconds) } }
}

/// Offer routing, wrap-up and skills by subtree, script by script (lua/offer*.lua, wrap_up_end.lua,
/// categories_sync.lua, pick.lua), each behind the key guard, with time moved by hand. The
/// cluster-wide behaviour (two nodes, timers, a node killed) is in OfferRoutingTests.
@Suite("offer routing scripts", .serialized)
struct OfferScriptTests {
    /// Tree: 1 Billing (pick) > 2 Refunds (pick); 3 Technical (pick); 4 Sales (offer, 30 s wrap-up)
    /// > 5 Renewals (offer); the uncategorised queue 0 routes by `routing0`.
    static func tree(_ f: ScriptFixture, routing0: String = "pick") async throws {
        let rows: [LiveStore.CategoryRouting] = [
            .init(id: "1", parent: "", routing: "pick", wrapUpS: 0, updatedMs: 1),
            .init(id: "2", parent: "1", routing: "pick", wrapUpS: 0, updatedMs: 1),
            .init(id: "3", parent: "", routing: "pick", wrapUpS: 0, updatedMs: 1),
            .init(id: "4", parent: "", routing: "offer", wrapUpS: 30, updatedMs: 1),
            .init(id: "5", parent: "4", routing: "offer", wrapUpS: 0, updatedMs: 1),
            .init(id: "0", parent: "", routing: routing0, wrapUpS: 0, updatedMs: 1),
        ]
        try await f.store.syncCategories(rows, complete: true)
    }

    static func enqueue(_ f: ScriptFixture, _ name: String, category: String, priority: String = "normal") async throws -> String {
        try await f.store.enqueue(name: name, email: "\(name.lowercased())@example.com", categoryID: category, subject: "", priority: priority).conversationID
    }

    static func agentField(_ f: ScriptFixture, _ agent: String, _ field: String) async throws -> String? {
        try await f.redis.send("HGET", f.keys.agent(agent), field).string
    }

    @Test("the mirror: a row never replaces a newer one; CATEGORIES_UPDATED names what changed; the tree agrees in Swift and Lua")
    func categoryMirror() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        try await Self.tree(f)
        #expect(try await f.store.categoriesLoaded())
        let older = LiveStore.CategoryRouting(id: "4", parent: "", routing: "pick", wrapUpS: 0, updatedMs: 0)
        #expect(try await f.store.syncCategories([older], complete: false).isEmpty, "an older copy is ignored")
        let newer = LiveStore.CategoryRouting(id: "3", parent: "", routing: "offer", wrapUpS: 5, updatedMs: 2)
        #expect(try await f.store.syncCategories([newer], complete: false) == ["3"])
        let tree = try await f.store.categoryTree()
        #expect(tree.loaded && tree.routing("4") == "offer" && tree.routing("3") == "offer" && tree.entry("3").wrapUpS == 5)
        #expect(tree.serves(["1"], category: "2") && tree.serves(["1"], category: "0") && !tree.serves(["1"], category: "3"))
        #expect(tree.serves([], category: "5") && tree.serves(["4"], category: "5") && !tree.serves(["5"], category: "4"))
        #expect(tree.picks(["1"], category: "2") && !tree.picks(["4"], category: "5"))
        let published = try await f.published().map { try Published(channel: $0.channel, payload: $0.payload) }
        for p in published { try LuaGoldenTests.check(p) }
        #expect(published.filter { $0.event == "CATEGORIES_UPDATED" }.map { $0.data["category_ids"] as? [String] ?? [] } == [["1", "2", "3", "4", "5", "0"], ["3"]])
    }

    @Test("PICK by subtree: an agent of Billing takes Refunds and uncategorised customers, never Technical nor offer-routed ones")
    func pickBySubtree() async throws {
        // Redis's clock could give two customers the same ms (then their order is the ids'): each
        // enqueue gets a later ms of its own.
        let clock = MovableClock()
        let f = try await ScriptFixture(scriptClock: { clock.now })
        defer { Task { await f.finish() } }
        try await Self.tree(f)
        _ = try await f.store.agentConnected(agentID: "101", node: "n1", name: "Ann", capacity: "10", categories: "1", supervisorID: "-")
        var enqueued: [String] = []
        for (name, category) in [("Tess", "3"), ("Sam", "4"), ("Gina", "0"), ("Rita", "2"), ("Bill", "1")] {
            clock.advance(1)
            enqueued.append(try await Self.enqueue(f, name, category: category))
        }
        let (technical, sales, general, refunds, billing) = (enqueued[0], enqueued[1], enqueued[2], enqueued[3], enqueued[4])
        var order: [String] = []
        for _ in 0..<3 { order.append(try await f.store.pick(agentID: "101", conversationID: nil, mode: "pick", actorID: "101").id) }
        #expect(order == [general, refunds, billing], "oldest first over Billing, Refunds and the uncategorised queue")
        await #expect(throws: HelpDeskError(.notFound, "nobody is waiting")) {
            _ = try await f.store.pick(agentID: "101", conversationID: nil, mode: "pick", actorID: "101")
        }
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.pick(agentID: "101", conversationID: technical, mode: "pick", actorID: "101") }
        let offerOnly = await #expect(throws: HelpDeskError.self) {
            _ = try await f.store.pick(agentID: "101", conversationID: sales, mode: "pick", actorID: "101")
        }
        #expect(offerOnly?.message.contains("offered") == true)
        // a supervisor may still assign a customer of an offer-routed category
        #expect(try await f.store.pick(agentID: "101", conversationID: sales, mode: "assign", actorID: "900").agent?.id == "101")
    }

    @Test("offers: longest idle first, one agent at a time, capacity counts offers, decline and expiry move it on, the late one is away")
    func offerLifecycle() async throws {
        let clock = MovableClock()
        let f = try await ScriptFixture(scriptClock: { clock.now })
        defer { Task { await f.finish() } }
        try await Self.tree(f)
        _ = try await f.published()
        // Ann (all categories) became available first, then Bob (Sales: Renewals is under it), then Cid (Technical only).
        _ = try await f.store.agentConnected(agentID: "101", node: "n1", name: "Ann", capacity: "1", categories: "", supervisorID: "900")
        clock.advance(1)
        _ = try await f.store.agentConnected(agentID: "102", node: "n1", name: "Bob", capacity: "2", categories: "4", supervisorID: "900")
        clock.advance(1)
        _ = try await f.store.agentConnected(agentID: "103", node: "n1", name: "Cid", capacity: "2", categories: "3", supervisorID: "900")
        #expect(try await f.store.offerNext(timeoutMs: 20_000) == .none, "nobody waits")

        let first = try await Self.enqueue(f, "Rene", category: "5")
        clock.advance(1)
        let second = try await Self.enqueue(f, "Vip", category: "4", priority: "urgent")
        // the urgent customer first, to the longest-idle eligible agent
        guard case .offered(let c1, let a1, let expires1, let delay1) = try await f.store.offerNext(timeoutMs: 20_000) else {
            Issue.record("no offer"); return
        }
        #expect(c1 == second && a1 == "101" && delay1 == 20_000)
        #expect(try await Self.agentField(f, "101", "offered") == "1")
        #expect(try await f.redis.send("ZSCORE", f.keys.availableAgents, "101").isNull, "at capacity with its offer")
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.pick(agentID: "101", conversationID: nil, mode: "pick", actorID: "101") }
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.pick(agentID: "102", conversationID: second, mode: "assign", actorID: "900") }
        guard case .offered(let c2, let a2, _, _) = try await f.store.offerNext(timeoutMs: 20_000) else { Issue.record("no offer"); return }
        #expect(c2 == first && a2 == "102", "Renewals is under Sales: Bob serves it; Cid does not")
        #expect(try await f.store.offerNext(timeoutMs: 20_000) == .none, "each customer is offered to one agent at a time")
        #expect(try await f.redis.send("ZRANK", f.keys.queue("4"), second).int == 0, "an offered customer keeps its place")

        // Bob declines: the customer goes to someone else (Ann is full, Cid does not serve it): waits
        try await f.store.declineOffer(conversationID: first, agentID: "102")
        await #expect(throws: HelpDeskError.self) { try await f.store.declineOffer(conversationID: first, agentID: "102") }
        #expect(try await f.store.offerNext(timeoutMs: 20_000) == .none, "not offered back to the agent that declined it")
        // Ann's offer runs out, by Redis's clock: not before, then once, whoever asks
        #expect(try await f.store.expireOffer(conversationID: second) == .notDue(deadline: expires1, now: expires1 - 20_000))
        clock.advance(20)
        #expect(try await f.store.expireOffer(conversationID: second) == .ended(reason: "expired", status: "away"))
        #expect(try await f.store.expireOffer(conversationID: second) == .gone)
        #expect(try await Self.agentField(f, "101", "status") == "away")
        #expect(try await Self.agentField(f, "101", "offered") == "0")
        // the urgent customer goes to Bob now (Ann is away); Renewals waits: Bob declined it a moment ago
        guard case .offered(let c3, let a3, _, _) = try await f.store.offerNext(timeoutMs: 20_000) else { Issue.record("no offer"); return }
        #expect(c3 == second && a3 == "102")
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.acceptOffer(conversationID: second, agentID: "101") }
        let accepted = try await f.store.acceptOffer(conversationID: second, agentID: "102")
        #expect(accepted.status == "active" && accepted.agent?.id == "102")
        #expect(try await Self.agentField(f, "102", "active") == "1")
        #expect(try await Self.agentField(f, "102", "offered") == "0")
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.acceptOffer(conversationID: second, agentID: "102") }
        // a minute later Bob may be offered the customer it declined again
        clock.advance(61)
        guard case .offered(let c4, let a4, _, _) = try await f.store.offerNext(timeoutMs: 20_000) else { Issue.record("no offer"); return }
        #expect(c4 == first && a4 == "102")
        // closing a customer on offer ends the offer
        try await f.store.close(conversationID: first, actor: ScriptFixture.supervisor, resolution: "")
        #expect(try await Self.agentField(f, "102", "offered") == "0")
        #expect(try await f.redis.send("ZCARD", f.keys.offers).int == 0)

        let published = try await f.published().map { try Published(channel: $0.channel, payload: $0.payload) }
        for p in published { try LuaGoldenTests.check(p, supervisors: ["101": "900", "102": "900", "103": "900"]) }
        let offered = published.filter { $0.event == "CONVERSATION_OFFERED" }
        #expect(offered.map(\.channel) == ["ch:user:101", "ch:user:102", "ch:user:102", "ch:user:102"])
        #expect((offered.first?.data["expires_at"] as? Int).map(Int64.init) == expires1)
        let revoked = published.filter { $0.event == "OFFER_REVOKED" }.map { "\($0.channel) \($0.data["reason"] ?? "") \($0.data["status"] ?? "-")" }
        #expect(revoked == ["ch:user:102 declined -", "ch:user:101 expired away", "ch:user:102 closed -"])
        let presence = published.filter { $0.event == "PRESENCE_UPDATED" && $0.data["agent_id"] as? String == "101" }
        #expect(presence.contains { $0.data["offers"] as? Int == 1 })
        let events = try await f.redis.send("XRANGE", f.keys.events(second), "-", "+").array?.compactMap { $0.array?[1].fieldMap["type"] } ?? []
        #expect(events == ["created", "offered", "offer_expired", "offered", "assigned"])
    }

    @Test("wrap-up: a close starts the category's wrap-up; no offers until it ends (early or on time); the presence view shows it")
    func wrapUp() async throws {
        let clock = MovableClock()
        let f = try await ScriptFixture(scriptClock: { clock.now })
        defer { Task { await f.finish() } }
        try await Self.tree(f)
        _ = try await f.store.agentConnected(agentID: "101", node: "n1", name: "Ann", capacity: "3", categories: "", supervisorID: "900")
        let sale = try await Self.enqueue(f, "Sam", category: "4")
        guard case .offered(_, "101", _, _) = try await f.store.offerNext(timeoutMs: 20_000) else { Issue.record("no offer"); return }
        _ = try await f.store.acceptOffer(conversationID: sale, agentID: "101")
        let wrap = try await f.store.close(conversationID: sale, actor: ScriptFixture.agent("101"), resolution: "sold")
        let start = epochMillis(clock.now)
        #expect(wrap?.agentID == "101" && wrap?.wrapUpUntil == start + 30_000)
        _ = try await Self.enqueue(f, "Next", category: "5")
        #expect(try await f.store.offerNext(timeoutMs: 20_000) == .none, "in wrap-up")
        #expect(try await f.store.expireWrapUps() == 0)
        clock.advance(30)
        #expect(try await f.store.expireWrapUps() == 1)
        guard case .offered(let next, "101", _, _) = try await f.store.offerNext(timeoutMs: 20_000) else { Issue.record("no offer after wrap-up"); return }
        _ = try await f.store.acceptOffer(conversationID: next, agentID: "101")
        // Renewals has no wrap-up of its own: none
        #expect(try await f.store.close(conversationID: next, actor: ScriptFixture.agent("101"), resolution: "") == nil)
        // END_WRAP_UP ends one early
        let again = try await Self.enqueue(f, "Again", category: "4")
        guard case .offered = try await f.store.offerNext(timeoutMs: 20_000) else { Issue.record("no offer"); return }
        _ = try await f.store.acceptOffer(conversationID: again, agentID: "101")
        _ = try await f.store.close(conversationID: again, actor: ScriptFixture.supervisor, resolution: "")
        _ = try await Self.enqueue(f, "Last", category: "4")
        #expect(try await f.store.offerNext(timeoutMs: 20_000) == .none)
        #expect(try await f.store.routingState(agentID: "101").wrapUpUntil != nil)
        #expect(try await f.store.endWrapUp(agentID: "101", early: true) == .ended)
        #expect(try await f.store.endWrapUp(agentID: "101", early: true) == .notInWrapUp)
        guard case .offered = try await f.store.offerNext(timeoutMs: 20_000) else { Issue.record("no offer after END_WRAP_UP"); return }

        let published = try await f.published().map { try Published(channel: $0.channel, payload: $0.payload) }
        for p in published { try LuaGoldenTests.check(p, supervisors: ["101": "900"]) }
        #expect(published.filter { $0.event == "WRAP_UP_STARTED" }.count == 2)
        #expect(published.filter { $0.event == "WRAP_UP_ENDED" }.map { $0.data["reason"] as? String } == ["elapsed", "ready"])
        #expect(published.contains { $0.event == "PRESENCE_UPDATED" && ($0.data["wrap_up_until"] as? Int).map(Int64.init) == start + 30_000 })
    }

    @Test("the uncategorised queue is everyone's, by offer too; capacity counts offers across queues")
    func uncategorisedOffers() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        try await Self.tree(f, routing0: "offer")
        _ = try await f.store.agentConnected(agentID: "101", node: "n1", name: "Ann", capacity: "1", categories: "3", supervisorID: "-")
        let general = try await Self.enqueue(f, "Gina", category: "0")
        _ = try await Self.enqueue(f, "Tess", category: "3")
        guard case .offered(general, "101", _, _) = try await f.store.offerNext(timeoutMs: 20_000) else { Issue.record("no offer"); return }
        // at capacity with the offer: Technical's customer cannot be picked meanwhile
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.pick(agentID: "101", conversationID: nil, mode: "pick", actorID: "101") }
        try await f.store.declineOffer(conversationID: general, agentID: "101")
        #expect(try await f.store.pick(agentID: "101", conversationID: nil, mode: "pick", actorID: "101").categoryId == "3")
    }
}

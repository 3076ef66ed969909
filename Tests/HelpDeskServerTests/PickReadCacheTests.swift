import Foundation
import HelpDeskCore
import Testing
@testable import HelpDeskServer

/// A fairest pick reuses what earlier picks read about the queues (`PickReadCache`) only while it
/// still holds: every change that decides which queues an agent picks from is seen by the next pick.
@Suite("pick read cache", .serialized)
struct PickReadCacheTests {
    @Test("what the cache guesses: the queues an agent serves under the set and tree it saw; a changed set or tree forgets every agent")
    func guesses() {
        let cache = PickReadCache()
        #expect(cache.guess(agentID: "7") == nil)
        let tree = CategoryTree(hash: ["_": "1", "1": "|pick|0|0", "2": "|pick|0|0", "3": "1|pick|0|0", "4": "|offer|0|0"])
        cache.remember(agentID: "7", categories: "1", members: ["0", "1", "2", "3", "4"], tree: tree, offeredCount: 2)
        let guess = cache.guess(agentID: "7")
        // its category, the subcategory under it, the uncategorised queue; not 2 (not its), not 4 (offer-routed)
        #expect(guess?.queues == ["0", "1", "3"])
        #expect(guess?.categories == "1" && guess?.members == ["0", "1", "2", "3", "4"] && guess?.offeredCount == 2)
        #expect(cache.guess(agentID: "8") == nil)
        cache.remember(agentID: "8", categories: "", members: ["0", "1", "2", "3", "4"], tree: tree, offeredCount: 0)
        #expect(cache.guess(agentID: "8")?.queues == ["0", "1", "2", "3"])
        #expect(cache.guess(agentID: "7") != nil, "the same set and tree keep the other agents")
        // a new tree: what every agent serves may have changed
        let moved = CategoryTree(hash: ["_": "1", "1": "|pick|0|0", "2": "1|pick|0|0", "3": "1|pick|0|0", "4": "|offer|0|0"])
        cache.remember(agentID: "8", categories: "", members: ["0", "1", "2", "3", "4"], tree: moved, offeredCount: 0)
        #expect(cache.guess(agentID: "7") == nil)
        #expect(cache.guess(agentID: "8") != nil)
        // a new queue in the set: the same
        cache.remember(agentID: "7", categories: "1", members: ["0", "1", "2", "3", "4"], tree: moved, offeredCount: 0)
        cache.remember(agentID: "8", categories: "", members: ["0", "1", "2", "3", "4", "5"], tree: moved, offeredCount: 0)
        #expect(cache.guess(agentID: "7") == nil)
    }

    @Test("picks after a changed categories field, a new queue and a changed tree each pick from the queues the agent serves now")
    func changesAreSeen() async throws {
        let cluster = try await TestCluster(overrides: OfferRoutingTests.base)
        let a = try await cluster.startNode("node-a")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let billing = try await OfferRoutingTests.category(a, admin: admin.token, ["name": "Billing"])
        let technical = try await OfferRoutingTests.category(a, admin: admin.token, ["name": "Technical"])
        let agent = try await cluster.staff("cached@example.com", capacity: 10, on: a)
        func serve(_ categories: [Int]) async throws {
            #expect(try await AgentProfileTests.patchUser(a, admin: admin.token, agent.id, ["category_ids": categories]) == 200)
        }
        try await serve([billing])
        var socket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        func pick() async throws -> String? {
            let reply = try await socket.request("PICK")
            return reply.event == "ACK" ? OfferRoutingTests.conversationID(reply) : reply.code
        }

        let bill1 = try await cluster.startChat(on: a, categoryID: billing)
        let bill2 = try await cluster.startChat(on: a, categoryID: billing)
        #expect(try await pick() == bill1.id)
        #expect(try await pick() == bill2.id, "the second pick (from what the first read) finds the next head")
        // a new queue (Technical's first customer), which Billing's agent does not serve
        let tech1 = try await cluster.startChat(on: a, categoryID: technical)
        #expect(try await pick() == "not_found")
        // the agent's categories field changes: Technical now (Redis's copy is written when the
        // agent connects)
        try await serve([technical])
        await socket.close()
        socket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent again")
        #expect(try await pick() == tech1.id)
        // The tree changes under an unchanged field and set: Technical offer-routed, then pick-routed
        // again. Written to Redis's mirror of the tree directly, as categories_sync.lua does, so
        // that no offer is made meanwhile (the node's offer router hears of no change).
        let tech2 = try await cluster.startChat(on: a, categoryID: technical)
        let redis = cluster.redis()
        let mirror = cluster.prefix + "categories"
        let entry = try #require(try await redis.send("HGET", mirror, String(technical)).string)
        var fields = entry.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        fields[1] = "offer"
        _ = try await redis.send("HSET", mirror, String(technical), fields.joined(separator: "|"))
        #expect(try await pick() == "not_found", "an offer-routed queue is not picked from, whatever the last pick read")
        fields[1] = "pick"
        _ = try await redis.send("HSET", mirror, String(technical), fields.joined(separator: "|"))
        #expect(try await pick() == tech2.id, "a queue pick-routed again is picked from, whatever the last pick read")
        await socket.close()
    }
}

import Foundation
import HelpDeskCore
import Testing
@testable import HelpDeskServer

/// An admin's change to a connected agent's categories or capacity (`PATCH /users/{id}`) takes
/// effect at once, on every node: PICK, the available set and the queue changes its sockets get.
@Suite("agent profile changes", .serialized)
struct AgentProfileTests {
    /// `PATCH /users/{id}` as an admin; the status.
    static func patchUser(_ node: TestCluster.Node, admin: String, _ id: String, _ body: [String: Any]) async throws -> Int {
        try await HTTP.request("PATCH", node.url + "/api/v1/users/\(id)", token: admin, body: body).0
    }

    /// `DELETE /users/{id}` (deactivation) as an admin; the status.
    static func deleteUser(_ node: TestCluster.Node, admin: String, _ id: String) async throws -> Int {
        try await HTTP.request("DELETE", node.url + "/api/v1/users/\(id)", token: admin).0
    }

    @Test("new categories reach a connected agent on another node: PROFILE_UPDATED, its queue changes and its picks follow them, with no reconnect")
    func categoriesFollowAtOnce() async throws {
        let cluster = try await TestCluster(overrides: OfferRoutingTests.base)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let billing = try await OfferRoutingTests.category(a, admin: admin.token, ["name": "Billing"])
        let technical = try await OfferRoutingTests.category(a, admin: admin.token, ["name": "Technical"])
        let agent = try await cluster.staff("moved@example.com", capacity: 2, on: a)
        func patch(_ body: [String: Any]) async throws {
            #expect(try await Self.patchUser(a, admin: admin.token, agent.id, body) == 200)
        }
        try await patch(["category_ids": [billing]])
        // The agent's socket is on node B; the admin's change goes through node A.
        let socket = try await TestSocket.connect(b.wsURL, token: agent.token, label: "agent")
        let redis = cluster.redis()
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "categories").string == String(billing))

        try await patch(["category_ids": [technical], "capacity": 3])
        let profile = try await socket.next("PROFILE_UPDATED")
        #expect(profile.data["category_ids"] as? [String] == [String(technical)])
        #expect(profile.data["capacity"] as? Int == 3)
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "categories").string == String(technical))
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "capacity").string == "3")

        // Queue changes follow the new categories: Billing's (published first) is not sent, Technical's is.
        let bill = try await cluster.startChat(on: a, categoryID: billing)
        let tech = try await cluster.startChat(on: a, categoryID: technical)
        let change = try await socket.next("QUEUE_UPDATED") { frame in
            ((frame.data["conversation"] as? [String: Any])?["id"] as? String) == tech.id
        }
        #expect(change.data["op"] as? String == "added")
        #expect(socket.frames("QUEUE_UPDATED").allSatisfy { ($0.data["conversation"] as? [String: Any])?["id"] as? String != bill.id },
                "a queue the agent no longer serves")
        // ... and so does PICK: the fairest is Technical's, though Billing's customer waited longer.
        let picked = try await socket.request("PICK")
        #expect(picked.event == "ACK")
        #expect(OfferRoutingTests.conversationID(picked) == tech.id)
        await socket.close()
    }

    @Test("a change to an agent with no live state (never connected) writes PostgreSQL only; its next connect brings it")
    func agentNotConnected() async throws {
        let cluster = try await TestCluster(overrides: OfferRoutingTests.base)
        let a = try await cluster.startNode("node-a")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let billing = try await OfferRoutingTests.category(a, admin: admin.token, ["name": "Billing"])
        let agent = try await cluster.staff("later@example.com", on: a)
        #expect(try await Self.patchUser(a, admin: admin.token, agent.id, ["category_ids": [billing], "capacity": 4]) == 200)
        let redis = cluster.redis()
        #expect(try await redis.send("EXISTS", cluster.prefix + "agent:\(agent.id)").int == 0, "no half-made agent hash")
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "categories").string == String(billing))
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "capacity").string == "4")
        // No longer an agent: its routing state is not raised along with the account.
        #expect(try await Self.patchUser(a, admin: admin.token, agent.id, ["role": "supervisor", "capacity": 9]) == 200)
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "capacity").string == "4")
        await socket.close()
    }

    @Test("more room for a connected agent routes a waiting offer-routed customer to it at once, not at the next heartbeat")
    func moreCapacityMakesAnOffer() async throws {
        // A heartbeat far away: only the change itself can route the second customer in time.
        let cluster = try await TestCluster(overrides: OfferRoutingTests.base.merging(["HELPDESK_HEARTBEAT_INTERVAL": "60"]) { $1 })
        let a = try await cluster.startNode("node-a")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let sales = try await OfferRoutingTests.category(a, admin: admin.token, ["name": "Sales", "routing": "offer"])
        let agent = try await cluster.staff("busy@example.com", capacity: 1, on: a)
        #expect(try await Self.patchUser(a, admin: admin.token, agent.id, ["category_ids": [sales]]) == 200)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        let first = try await cluster.startChat(on: a, categoryID: sales)
        let offer = try await socket.next("CONVERSATION_OFFERED")
        #expect(OfferRoutingTests.conversationID(offer) == first.id)
        #expect(try await socket.request("ACCEPT_OFFER", ["conversation_id": first.id]).event == "ACK")
        // At capacity: the next customer waits.
        let second = try await cluster.startChat(on: a, categoryID: sales)
        #expect(try await Self.patchUser(a, admin: admin.token, agent.id, ["capacity": 2]) == 200)
        let next = try await socket.next("CONVERSATION_OFFERED", timeout: .seconds(5)) { OfferRoutingTests.conversationID($0) == second.id }
        #expect(OfferRoutingTests.conversationID(next) == second.id)
        await socket.close()
    }

    @Test("deactivating an account, or changing its role, ends its open sockets on every node (SESSION_ENDED, 1008), and its token opens no new one; a name change, or a save with the same role, ends nothing")
    func accountChangesEndSessions() async throws {
        let cluster = try await TestCluster(overrides: OfferRoutingTests.base)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let leaving = try await cluster.staff("leaving@example.com", on: a)
        let promoted = try await cluster.staff("promoted@example.com", on: a)
        let first = try await TestSocket.connect(b.wsURL, token: leaving.token, label: "leaving")
        let second = try await TestSocket.connect(a.wsURL, token: leaving.token, label: "leaving, second tab")
        let other = try await TestSocket.connect(b.wsURL, token: promoted.token, label: "promoted")

        // A name change: nothing ends (the capacity change after it is the marker).
        #expect(try await Self.patchUser(a, admin: admin.token, promoted.id, ["name": "Pro Moted"]) == 200)
        #expect(try await Self.patchUser(a, admin: admin.token, promoted.id, ["capacity": 4]) == 200)
        _ = try await other.next("PROFILE_UPDATED")
        #expect(other.count("SESSION_ENDED") == 0 && !other.isClosed)

        #expect(try await Self.deleteUser(a, admin: admin.token, leaving.id) == 200)
        for socket in [first, second] {
            let ended = try await socket.next("SESSION_ENDED")
            #expect(ended.data["reason"] as? String == "deactivated")
            try await socket.waitClosed()
            #expect(socket.closeCode == .policyViolation)
        }
        let refused = try await TestSocket.refusal(b.wsURL, token: leaving.token)
        #expect(refused.code == .policyViolation && refused.reason == "account deactivated", "\(refused)")

        #expect(try await Self.patchUser(a, admin: admin.token, promoted.id, ["role": "supervisor"]) == 200)
        let ended = try await other.next("SESSION_ENDED")
        #expect(ended.data["reason"] as? String == "role_changed")
        try await other.waitClosed()
        #expect(other.closeCode == .policyViolation)
        // The old token still says agent: it opens no socket with an agent's rights.
        let stale = try await TestSocket.refusal(a.wsURL, token: promoted.token)
        #expect(stale.code == .policyViolation && stale.reason == "role changed: sign in again", "\(stale)")
        // A save that sends the role unchanged (as the admin page does) ends nothing: a fresh token
        // of the new role opens a socket, and keeps it through such a save.
        let issued = Int(Date().timeIntervalSince1970)
        let fresh = a.services.tokens.sign(TokenClaims(sub: promoted.id, role: "supervisor", iat: issued, exp: issued + 3600, name: "Pro"))
        let board = try await TestSocket.connect(a.wsURL, token: fresh, label: "promoted, new token")
        #expect(try await Self.patchUser(a, admin: admin.token, promoted.id, ["role": "supervisor", "name": "Pro"]) == 200)
        // Marker on the same channel: the deactivation's SESSION_ENDED must be the first one.
        #expect(try await Self.deleteUser(a, admin: admin.token, promoted.id) == 200)
        let last = try await board.next("SESSION_ENDED")
        #expect(last.data["reason"] as? String == "deactivated")
        #expect(board.count("SESSION_ENDED") == 0, "the save with the same role ended nothing (`next` took the only one)")
        await board.close()
    }
}

import Foundation
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("presence and absence", .serialized)
struct PresenceTests {
    static let fastGrace = ["HELPDESK_AGENT_GRACE": "2", "HELPDESK_CUSTOMER_GRACE": "2", "HELPDESK_HEARTBEAT_INTERVAL": "0.2"]

    @Test("an agent gone past its grace goes offline and its conversation is back at the head of the queue with its original wait")
    func agentGonePastGrace() async throws {
        let cluster = try await TestCluster(overrides: Self.fastGrace)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let supervisor = try await cluster.staff("sue@example.com", role: .supervisor, on: b)
        let agent = try await cluster.staff("agent@example.com", supervisor: "sue@example.com", on: a)
        let stranger = try await cluster.staff("other-sup@example.com", role: .supervisor, on: b)
        let otherBoard = try await TestSocket.connect(a.wsURL, token: stranger.token, label: "other supervisor")
        let board = try await TestSocket.connect(b.wsURL, token: supervisor.token, label: "supervisor")
        let chat = try await cluster.startChat(on: b)
        let customer = try await TestSocket.connect(b.wsURL, token: chat.token, label: "customer")
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        _ = try await board.next("PRESENCE_UPDATED") { $0.data["agent_id"] as? String == agent.id && $0.data["status"] as? String == "online" }
        #expect(try await agentSocket.request("PICK", [:]).event == "ACK")
        // A customer who arrived later waits behind; the requeued chat must go ahead of it.
        let later = try await cluster.startChat(on: b)
        let laterSocket = try await TestSocket.connect(b.wsURL, token: later.token, label: "later")
        let redis = cluster.redis()
        let originalScore = try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "queue_score").string

        await agentSocket.close()
        let disconnected = try await board.next("PRESENCE_UPDATED", timeout: .seconds(5)) {
            $0.data["agent_id"] as? String == agent.id && $0.data["connected"] as? Bool == false
        }
        #expect(disconnected.data["status"] as? String == "online", "still online during the grace period")
        let offline = try await board.next("PRESENCE_UPDATED", timeout: .seconds(10)) {
            $0.data["agent_id"] as? String == agent.id && $0.data["status"] as? String == "offline"
        }
        #expect(offline.data["active"] as? Int == 0)
        _ = try await customer.next("CONVERSATION_REQUEUED")
        #expect(otherBoard.count("PRESENCE_UPDATED") == 0, "a supervisor sees only its own agents")
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "status").string == "waiting")
        let head = try await redis.send("ZRANGE", cluster.prefix + "queue:0", "0", "-1", "WITHSCORES").array?.compactMap(\.string) ?? []
        #expect(head.first == chat.id, "back at the head")
        #expect(head.count == 4 && head[1] == originalScore, "with its original score")
        // The customer is told its place again.
        let status = try await customer.next("QUEUE_STATUS") { $0.data["position"] as? Int == 1 }
        #expect(status.data["conversation_id"] as? String == chat.id)
        await board.close(); await customer.close(); await laterSocket.close(); await otherBoard.close()
    }

    @Test("an agent back within the grace keeps its conversation")
    func agentBackWithinGrace() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_AGENT_GRACE": "3", "HELPDESK_HEARTBEAT_INTERVAL": "0.2"])
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token)
        let first = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await first.request("PICK", [:]).event == "ACK")
        await first.close()
        try await Task.sleep(for: .seconds(1))
        let back = try await TestSocket.connect(b.wsURL, token: agent.token)
        #expect(back.helloStatus == "online")
        try await Task.sleep(for: .seconds(4))
        let redis = cluster.redis()
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "agent_id").string == agent.id)
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "status").string == "active")
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "status").string == "online")
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "node").string == "node-b")
        #expect(customer.count("CONVERSATION_REQUEUED") == 0)
        #expect(try await back.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        await back.close(); await customer.close()
    }

    @Test("a waiting customer gone past its grace leaves the queue as abandoned and is archived")
    func customerAbandons() async throws {
        let cluster = try await TestCluster(overrides: Self.fastGrace)
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token)
        try await Task.sleep(for: .seconds(2.5))
        let redis = cluster.redis()
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "status").string == "waiting", "connected customers stay")
        await customer.close()
        try await eventually("abandoned") {
            try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "status").string == "abandoned"
        }
        #expect(try await redis.send("ZCARD", cluster.prefix + "queue:0").int == 0)
        let pg = cluster.postgres()
        try await eventually("archived as abandoned") {
            try await pg.query("SELECT status FROM conversations WHERE id = $1::uuid", [chat.id]).first?.decode("status", as: String.self) == "abandoned"
        }
        await pg.shutdown()
    }

    @Test("status away takes an agent out of routing; pick needs online")
    func awayStatus() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        _ = try await cluster.startChat(on: a)
        #expect(try await socket.request("SET_STATUS", ["status": "away"]).event == "ACK")
        let refused = try await socket.request("PICK", [:])
        #expect(refused.code == "conflict")
        let redis = cluster.redis()
        #expect(try await redis.send("ZSCORE", cluster.prefix + "agents:available", agent.id).isNull)
        #expect(try await socket.request("SET_STATUS", ["status": "busy"]).code == "validation_failed")
        let (status, _) = try await HTTP.request("PUT", a.url + "/api/v1/presence/me", token: agent.token, body: ["status": "online"])
        #expect(status == 200)
        #expect(try await socket.request("PICK", [:]).event == "ACK")
        await socket.close()
    }
    @Test("a node follows the presence channel only while a supervisor or admin socket is open on it, from before their HELLO")
    func presenceChannelOnDemand() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode("node-a")
        defer { Task { await cluster.shutdown() } }
        let hub = a.services.parts.hub
        let redis = cluster.redis()
        let channel = cluster.prefix + "ch:presence"
        @Sendable func subscribers() async throws -> Int {
            try await redis.send("PUBSUB", "NUMSUB", channel).array?.last?.int ?? -1
        }
        let supervisor = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        let agent = try await cluster.staff("agent@example.com", supervisor: "sue@example.com", on: a)
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        #expect(!hub.followsPresence, "an agent's socket does not need the presence channel")
        #expect(try await subscribers() == 0)

        // TestSocket.connect returns at HELLO: the subscription is confirmed by then.
        let board = try await TestSocket.connect(a.wsURL, token: supervisor.token, label: "supervisor")
        #expect(try await subscribers() == 1)
        #expect(try await agentSocket.request("SET_STATUS", ["status": "away"]).event == "ACK")
        _ = try await board.next("PRESENCE_UPDATED") { $0.data["agent_id"] as? String == agent.id && $0.data["status"] as? String == "away" }

        // Two watchers, one channel; it stays until the last one goes.
        let adminSocket = try await TestSocket.connect(a.wsURL, token: admin.token, label: "admin")
        #expect(try await subscribers() == 1)
        await board.close()
        try await waitUntil("the supervisor's socket is gone") { hub.sessions(ofUser: supervisor.id).isEmpty }
        #expect(hub.followsPresence)
        #expect(try await agentSocket.request("SET_STATUS", ["status": "online"]).event == "ACK")
        _ = try await adminSocket.next("PRESENCE_UPDATED") { $0.data["agent_id"] as? String == agent.id && $0.data["status"] as? String == "online" }
        await adminSocket.close()
        try await waitUntil("the node no longer follows the presence channel") {
            try await subscribers() == 0 && !hub.followsPresence
        }

        // A supervisor back later follows it again, from its HELLO.
        let again = try await TestSocket.connect(a.wsURL, token: supervisor.token, label: "supervisor again")
        #expect(try await subscribers() == 1)
        #expect(try await agentSocket.request("SET_STATUS", ["status": "away"]).event == "ACK")
        _ = try await again.next("PRESENCE_UPDATED") { $0.data["agent_id"] as? String == agent.id && $0.data["status"] as? String == "away" }
        await again.close(); await agentSocket.close()
    }
}

import Foundation
import NIOConcurrencyHelpers
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("call signaling", .serialized)
struct CallTests {
    /// Customer on node A, agent on node B, an active conversation both joined.
    func activeChat(_ cluster: TestCluster) async throws -> (String, TestSocket, TestSocket, (id: String, token: String)) {
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        let agent = try await cluster.staff("agent@example.com", on: b)
        let chat = try await cluster.startChat(on: a)
        let agentSocket = try await TestSocket.connect(b.wsURL, token: agent.token, label: "agent")
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token, label: "customer")
        _ = try await agentSocket.request("PICK", [:])
        _ = try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        return (chat.id, customer, agentSocket, agent)
    }

    @Test("invite, accept, signals in order to the other side only, end with duration; events archived")
    func wholeCall() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let (id, customer, agent, _) = try await activeChat(cluster)
        // an admin: it may monitor any team's conversation (a supervisor only its own team's)
        let supervisor = try await cluster.staff("sue@example.com", role: .admin, on: try await cluster.startNode("node-c"))
        let board = try await TestSocket.connect("ws://127.0.0.1:\((try await cluster.startNode("node-d")).port)/ws", token: supervisor.token)
        _ = try await board.request("JOIN_CONVERSATION", ["conversation_id": id])

        #expect(try await customer.request("CALL_INVITE", ["conversation_id": id, "call_id": "call-1", "media": "audio"]).event == "ACK")
        let invite = try await agent.next("CALL_INVITE")
        #expect(invite.data["media"] as? String == "audio")
        #expect((invite.data["from"] as? [String: Any])?["role"] as? String == "customer")
        #expect(try await agent.request("CALL_INVITE", ["conversation_id": id, "call_id": "call-2", "media": "video"]).code == "busy")
        #expect(try await customer.request("CALL_ACCEPT", ["conversation_id": id, "call_id": "call-1"]).code == "forbidden", "the caller cannot answer its own call")
        #expect(try await agent.request("CALL_ACCEPT", ["conversation_id": id, "call_id": "call-1"]).event == "ACK")
        _ = try await customer.next("CALL_ACCEPT")

        for i in 0..<50 {
            try await customer.send("RTC_SIGNAL", ["conversation_id": id, "call_id": "call-1",
                                                   "signal": ["type": "ice-candidate", "candidate": ["candidate": "c\(i)", "sdpMLineIndex": 0]]])
        }
        try await agent.send("RTC_SIGNAL", ["conversation_id": id, "call_id": "call-1", "signal": ["type": "answer", "sdp": "v=0"]])
        try await eventually("signals relayed") { agent.count("RTC_SIGNAL") == 50 }
        let candidates = agent.drain("RTC_SIGNAL").compactMap { (($0.data["signal"] as? [String: Any])?["candidate"] as? [String: Any])?["candidate"] as? String }
        #expect(candidates == (0..<50).map { "c\($0)" }, "in order")
        let answer = try await customer.next("RTC_SIGNAL")
        #expect((answer.data["signal"] as? [String: Any])?["sdp"] as? String == "v=0")
        try await Task.sleep(for: .milliseconds(200))
        #expect(customer.count("RTC_SIGNAL") == 0, "nobody gets their own signals")
        #expect(board.count("RTC_SIGNAL") + board.count("CALL_INVITE") == 0, "a monitoring supervisor gets no signaling")
        #expect(try await customer.request("RTC_SIGNAL", ["conversation_id": id, "call_id": "call-1", "signal": ["type": "bogus"]]).code == "validation_failed")
        #expect(try await board.request("RTC_SIGNAL", ["conversation_id": id, "call_id": "call-1", "signal": ["type": "offer", "sdp": "x"]]).code == "forbidden")

        try await Task.sleep(for: .seconds(1.1))
        #expect(try await agent.request("CALL_END", ["conversation_id": id, "call_id": "call-1"]).event == "ACK")
        let ended = try await customer.next("CALL_END")
        #expect(ended.data["reason"] as? String == "ended")
        #expect((ended.data["duration_s"] as? Int ?? 0) >= 1)
        _ = try await agent.next("CALL_END")

        #expect(try await agent.request("CLOSE_CONVERSATION", ["conversation_id": id]).event == "ACK")
        let pg = cluster.postgres()
        defer { Task { await pg.shutdown() } }
        try await eventually("call events archived") {
            let types = try await pg.query("SELECT type FROM conversation_events WHERE conversation_id = $1::uuid ORDER BY at, id", [id]).rows.map { try $0.decode("type", as: String.self) }
            return types.contains("call_started") && types.contains("call_answered") && types.contains("call_ended")
        }
        let data: String = try await pg.query("SELECT data FROM conversation_events WHERE conversation_id = $1::uuid AND type = 'call_ended'", [id]).first!.decode("data")
        let duration = (try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])?["duration_s"] as? Int ?? 0
        #expect(duration >= 1, "the call lasted over a second: \(data)")
        await customer.close(); await agent.close(); await board.close()
    }

    @Test("a rejected call ends on both sides; calls need an active conversation and its participants")
    func rejectAndRules() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let (id, customer, agent, _) = try await activeChat(cluster)
        #expect(try await agent.request("CALL_INVITE", ["conversation_id": id, "call_id": "c1", "media": "video"]).event == "ACK")
        _ = try await customer.next("CALL_INVITE")
        #expect(try await customer.request("CALL_REJECT", ["conversation_id": id, "call_id": "c1"]).event == "ACK")
        #expect((try await agent.next("CALL_REJECT").data["from"] as? [String: Any])?["role"] as? String == "customer")
        #expect(try await agent.next("CALL_END").data["reason"] as? String == "rejected")
        #expect(try await customer.next("CALL_END").data["reason"] as? String == "rejected")
        #expect(try await customer.request("CALL_END", ["conversation_id": id, "call_id": "c1"]).code == "not_found")
        #expect(try await customer.request("CALL_INVITE", ["conversation_id": id, "call_id": "bad id!", "media": "audio"]).code == "validation_failed")
        #expect(try await customer.request("CALL_INVITE", ["conversation_id": id, "call_id": "c2", "media": "hologram"]).code == "validation_failed")
        // issue 10 #17: another customer's token (bound to its own conversation) cannot call into this one
        let node = try await cluster.startNode("node-c")
        let stranger = try await cluster.startChat(on: node)
        let strangerSocket = try await TestSocket.connect(node.wsURL, token: stranger.token, label: "stranger")
        for event in ["CALL_INVITE", "CALL_ACCEPT", "CALL_END", "RTC_SIGNAL"] {
            let reply = try await strangerSocket.request(event, ["conversation_id": id, "call_id": "c2", "media": "audio", "signal": ["type": "offer"]])
            #expect(reply.code == "forbidden", "\(event)")
        }
        await strangerSocket.close()
        // Closing the conversation ends a running call.
        #expect(try await customer.request("CALL_INVITE", ["conversation_id": id, "call_id": "c3", "media": "audio"]).event == "ACK")
        _ = try await agent.request("CALL_ACCEPT", ["conversation_id": id, "call_id": "c3"])
        _ = try await agent.request("CLOSE_CONVERSATION", ["conversation_id": id])
        _ = try await customer.next("CALL_END") { $0.data["call_id"] as? String == "c3" }
        #expect(try await customer.request("CALL_INVITE", ["conversation_id": id, "call_id": "c4", "media": "audio"]).code == "conversation_closed")
        await customer.close(); await agent.close()
    }

    @Test("the invite timeout ends an unanswered call as missed (injected clock)")
    func inviteTimeout() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let (id, customer, agent, agentAccount) = try await activeChat(cluster)
        // A store whose clock the test moves, on the cluster's Redis and prefix. Scripts take
        // Redis's clock unless given the override (ARGV[1]) this store passes.
        let now = NIOLockedValueBox(Date())
        let store = LiveStore(redis: cluster.redis(), scripts: try RedisScripts(directory: TestEnvironment.repositoryRoot + "/lua"),
                              keys: RedisKeys(prefix: cluster.prefix), clock: { now.withLockedValue { $0 } },
                              scriptClock: { now.withLockedValue { $0 } })
        let caller = HelpDeskCore.Caller(id: agentAccount.id, role: .agent, name: "agent")
        try await store.call("invite", conversationID: id, callID: "ring", caller: caller, extra: ["audio", "45000"])
        _ = try await customer.next("CALL_INVITE")
        now.withLockedValue { $0 = $0.addingTimeInterval(44) }
        try await store.expireCalls()
        try await Task.sleep(for: .milliseconds(200))
        #expect(customer.count("CALL_END") == 0, "still ringing at 44 s")
        now.withLockedValue { $0 = $0.addingTimeInterval(2) }
        try await store.expireCalls()
        #expect(try await customer.next("CALL_END").data["reason"] as? String == "missed")
        #expect(try await agent.next("CALL_END").data["reason"] as? String == "missed")
        let events = try await cluster.redis().send("XRANGE", cluster.prefix + "conv:\(id):events", "-", "+").array ?? []
        #expect(events.contains { $0.array?[1].fieldMap["type"] == "call_missed" })
        await customer.close(); await agent.close()
    }

    @Test("ICE servers: STUN as configured, TURN with coturn REST credentials")
    func iceServers() async throws {
        let cluster = try await TestCluster(overrides: [
            "HELPDESK_STUN_URLS": "stun:stun.example.com:3478", "HELPDESK_TURN_URLS": "turn:turn.example.com:3478?transport=udp",
            "HELPDESK_TURN_SECRET": "north-pole-secret", "HELPDESK_TURN_TTL": "600",
        ])
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode()
        let chat = try await cluster.startChat(on: a)
        // credentials go to participants of an active conversation only (issue 10 #15)
        let agent = try await cluster.staff("agent@example.com", on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await agentSocket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        defer { Task { await agentSocket.close() } }
        let (status, body) = try await HTTP.request("GET", a.url + "/api/v1/rtc/ice-servers", token: chat.token)
        #expect(status == 200)
        let servers = try #require(body["ice_servers"] as? [[String: Any]])
        #expect(servers.count == 2)
        #expect(servers[0]["urls"] as? [String] == ["stun:stun.example.com:3478"])
        let username = try #require(servers[1]["username"] as? String)
        let expiry = try #require(Int(username.split(separator: ":")[0]))
        #expect(abs(expiry - Int(Date().timeIntervalSince1970) - 600) < 5)
        #expect(username.hasSuffix(":" + (try #require(chat.token.split(separator: ".").count == 3 ? username.split(separator: ":").last.map(String.init) : nil))))
        #expect((servers[1]["credential"] as? String) == HelpDeskCore.TurnCredentials(secret: "north-pole-secret", userID: String(username.split(separator: ":")[1]), expiresAt: expiry).credential)
        #expect(try await HTTP.request("GET", a.url + "/api/v1/rtc/ice-servers").0 == 401)
    }
}

import HelpDeskCore

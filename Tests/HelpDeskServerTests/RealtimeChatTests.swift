import Foundation
import Testing
import TestSupport
@testable import HelpDeskServer

/// Polls `condition` until it holds or `timeout` passes.
func eventually(_ what: String, timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        if ContinuousClock.now > deadline { throw TestSocketError.failed("timed out waiting for: \(what)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}

@Suite("realtime chat across nodes", .serialized)
struct RealtimeChatTests {
    /// These tests send as fast as they can to check order and loss; the per-socket message limit
    /// has its own tests (HostileClientTests).
    static let unlimited = ["HELPDESK_SOCKET_MESSAGE_RATE": "100000", "HELPDESK_SOCKET_MESSAGE_BURST": "100000"]

    @Test("customer on node A, agent on node B: queue, pick, 200 messages each way in order, close, same rows in PostgreSQL")
    func wholeChatAcrossNodes() async throws {
        let cluster = try await TestCluster(overrides: Self.unlimited)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: b)
        let chat = try await cluster.startChat(on: a, name: "Casey")
        #expect(chat.position == 1)

        let customerSocket = try await TestSocket.connect(a.wsURL, token: chat.token, label: "customer")
        let status = try await customerSocket.next("QUEUE_STATUS")
        #expect(status.data["position"] as? Int == 1)
        #expect((status.data["estimated_wait_s"] as? Int ?? 0) > 0)

        let agentSocket = try await TestSocket.connect(b.wsURL, token: agent.token, label: "agent")
        let queued = try await HTTP.requestArray("GET", b.url + "/api/v1/queue", token: agent.token)
        #expect(queued.1.compactMap { $0["id"] as? String } == [chat.id])

        let picked = try await agentSocket.request("PICK", [:])
        #expect(picked.event == "ACK", "\(picked)")
        #expect((picked.data["conversation"] as? [String: Any])?["id"] as? String == chat.id)
        let assigned = try await customerSocket.next("CONVERSATION_ASSIGNED")
        #expect((assigned.data["agent"] as? [String: Any])?["id"] as? String == agent.id)

        #expect(try await customerSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event != "ERROR")
        _ = try await agentSocket.send("JOIN_CONVERSATION", ["conversation_id": chat.id], ref: "join")
        _ = try await agentSocket.next("HISTORY")
        _ = customerSocket.drain("HISTORY")

        for i in 0..<200 {
            try await customerSocket.send("SEND_MESSAGE", ["conversation_id": chat.id, "text": "c\(i)", "client_msg_id": "c\(i)"], ref: "c\(i)")
            try await agentSocket.send("SEND_MESSAGE", ["conversation_id": chat.id, "text": "a\(i)", "client_msg_id": "a\(i)"], ref: "a\(i)")
        }
        try await eventually("400 messages on both sides") {
            customerSocket.count("NEW_MESSAGE") >= 400 && agentSocket.count("NEW_MESSAGE") >= 400
        }
        let seenByAgent = agentSocket.drain("NEW_MESSAGE").compactMap { $0.message?["text"] as? String }
        let seenByCustomer = customerSocket.drain("NEW_MESSAGE").compactMap { $0.message?["text"] as? String }
        #expect(seenByAgent.filter { $0.hasPrefix("c") } == (0..<200).map { "c\($0)" })
        #expect(seenByCustomer.filter { $0.hasPrefix("a") } == (0..<200).map { "a\($0)" })
        #expect(seenByAgent == seenByCustomer, "both sides see one order")
        #expect(agentSocket.drain("ACK").filter { $0.ref?.hasPrefix("a") == true }.count == 200)

        #expect(try await agentSocket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id, "resolution": "solved"]).event == "ACK")
        let closed = try await customerSocket.next("CONVERSATION_CLOSED")
        #expect(closed.data["resolution"] as? String == "solved")

        let pg = cluster.postgres()
        defer { Task { await pg.shutdown() } }
        try await eventually("archived") {
            (try await pg.query("SELECT count(*) AS n FROM messages WHERE conversation_id = $1::uuid", [chat.id]).first?.decode("n", as: Int.self)) == 400
        }
        let rows = try await pg.query("SELECT body, sender_role FROM messages WHERE conversation_id = $1::uuid ORDER BY ms, seq", [chat.id])
        #expect(try rows.rows.map { try $0.decode("body", as: String.self) } == seenByAgent)
        let conversation = try #require(try await pg.query("SELECT status, resolution, agent_id FROM conversations WHERE id = $1::uuid", [chat.id]).first)
        #expect(try conversation.decode("status", as: String.self) == "closed")
        #expect(try conversation.decode("resolution", as: String.self) == "solved")
        #expect(try conversation.decode("agent_id", as: Int.self) == Int(agent.id))

        // The same route answers for the archived conversation as it did for the live one.
        let (code, archived) = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(chat.id)/messages", token: agent.token)
        #expect(code == 200)
        #expect((archived["messages"] as? [[String: Any]])?.count == 400)
        await customerSocket.close()
        await agentSocket.close()
    }

    @Test("1,000 messages with a reconnect in the middle: none lost, none duplicated, order kept")
    func reconnectMidStream() async throws {
        let cluster = try await TestCluster(overrides: Self.unlimited)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        #expect(try await agentSocket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token, label: "customer")
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])

        // The agent keeps sending while the customer drops off after ~500 and comes back on the other node.
        let sender = Task {
            for i in 0..<1000 {
                try await agentSocket.send("SEND_MESSAGE", ["conversation_id": chat.id, "text": "m\(i)", "client_msg_id": "m\(i)"])
                if i % 100 == 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
        }
        try await eventually("first half") { customer.count("NEW_MESSAGE") >= 500 }
        let before = customer.drain("NEW_MESSAGE").compactMap { $0.message }
        await customer.close()
        let lastID = try #require(before.last?["id"] as? String)

        let again = try await TestSocket.connect(b.wsURL, token: chat.token, label: "customer-again")
        try await again.send("JOIN_CONVERSATION", ["conversation_id": chat.id, "last_message_id": lastID])
        try await sender.value
        let history = try await again.next("HISTORY")
        try await eventually("the rest") {
            before.count + ((history.data["messages"] as? [Any])?.count ?? 0) + again.count("NEW_MESSAGE") >= 1000
        }
        try await Task.sleep(for: .milliseconds(200))
        let after = (history.data["messages"] as? [[String: Any]] ?? []) + again.drain("NEW_MESSAGE").compactMap { $0.message }
        let texts = (before + after).compactMap { $0["text"] as? String }
        #expect(texts.count == 1000)
        #expect(Set(texts).count == texts.count, "no duplicates")
        #expect(texts == (0..<1000).map { "m\($0)" }, "in order")
        await again.close()
        await agentSocket.close()
    }

    @Test("a repeated client_msg_id stores and delivers the message once")
    func dedupe() async throws {
        let cluster = try await TestCluster(overrides: Self.unlimited)
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token)
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        let first = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "once", "client_msg_id": "same"])
        let second = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "once", "client_msg_id": "same"])
        #expect(first.data["message_id"] as? String == second.data["message_id"] as? String)
        #expect(second.data["duplicate"] as? Bool == true)
        try await Task.sleep(for: .milliseconds(300))
        #expect(customer.drain("NEW_MESSAGE").count == 1)
        let redis = cluster.redis()
        #expect(try await redis.send("XLEN", cluster.prefix + "conv:\(chat.id):msgs").int == 1)
        await customer.close()
    }

    @Test("typing is relayed to the other side and not stored")
    func typing() async throws {
        let cluster = try await TestCluster(overrides: Self.unlimited)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token)
        _ = try await agentSocket.request("PICK", [:])
        _ = try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        let customer = try await TestSocket.connect(b.wsURL, token: chat.token)
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        try await customer.send("TYPING", ["conversation_id": chat.id, "typing": true])
        let typing = try await agentSocket.next("TYPING")
        #expect(typing.data["typing"] as? Bool == true)
        #expect(typing.data["user_id"] as? String != agent.id)
        #expect(try await cluster.redis().send("XLEN", cluster.prefix + "conv:\(chat.id):msgs").int == 0)
        await customer.close()
        await agentSocket.close()
    }
}

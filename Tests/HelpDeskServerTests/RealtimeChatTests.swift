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
        // A marker sent after the retry: once it is here, a second copy would have come before it.
        _ = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "marker", "client_msg_id": "marker"])
        _ = try await customer.next("NEW_MESSAGE") { $0.message?["text"] as? String == "marker" }
        #expect(customer.drain("NEW_MESSAGE").compactMap { $0.message?["text"] as? String } == ["once"])
        let redis = cluster.redis()
        #expect(try await redis.send("XLEN", cluster.prefix + "conv:\(chat.id):msgs").int == 2)
        await customer.close()
    }

    @Test("echo: false — the ACK carries the message; the sending socket does not get it again, the user's other socket and the agent on another node do; a retry gets it back")
    func noEcho() async throws {
        let cluster = try await TestCluster(overrides: Self.unlimited)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent-ne\(TestEnvironment.uniqueID())@example.com", on: b)
        let admin = try await cluster.staff("admin-ne\(TestEnvironment.uniqueID())@example.com", role: .admin, on: b)
        let chat = try await cluster.startChat(on: a)
        let sender = try await TestSocket.connect(a.wsURL, token: chat.token, label: "customer")
        let otherTab = try await TestSocket.connect(a.wsURL, token: chat.token, label: "customer's other tab")
        let agentSocket = try await TestSocket.connect(b.wsURL, token: agent.token, label: "agent")
        let adminSocket = try await TestSocket.connect(b.wsURL, token: admin.token, label: "admin")
        #expect(try await agentSocket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        for socket in [sender, otherTab, agentSocket] {
            #expect(try await socket.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        }

        let ack = try await sender.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "no echo", "client_msg_id": "k1", "echo": false])
        #expect(ack.event == "ACK", "\(ack)")
        let message = try #require(ack.message, "the ACK carries the message: \(ack)")
        #expect(message["id"] as? String == ack.data["message_id"] as? String)
        #expect(message["text"] as? String == "no echo" && message["client_msg_id"] as? String == "k1" && message["internal"] as? Bool == false)
        #expect((message["sender"] as? [String: Any])?["role"] as? String == "customer")
        #expect((message["sent_at"] as? Int ?? 0) > 0)
        // Everyone else gets NEW_MESSAGE with the same message.
        for socket in [otherTab, agentSocket] {
            let delivered = try await socket.next("NEW_MESSAGE") { $0.message?["text"] as? String == "no echo" }
            #expect(delivered.message?["id"] as? String == message["id"] as? String)
            #expect(delivered.message?["sent_at"] as? Int == message["sent_at"] as? Int)
        }
        // The agent's reply is the marker: the sender gets it (`next` takes it), and nothing of its
        // own came before it.
        _ = try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "reply", "client_msg_id": "r1"])
        _ = try await sender.next("NEW_MESSAGE") { $0.message?["text"] as? String == "reply" }
        #expect(sender.drain("NEW_MESSAGE").compactMap { $0.message?["text"] as? String } == [])

        // A retry (the ACK was lost) gets the stored message back, not a second copy.
        let retry = try await sender.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "no echo", "client_msg_id": "k1", "echo": false])
        #expect(retry.data["duplicate"] as? Bool == true)
        #expect(retry.message?["id"] as? String == message["id"] as? String && retry.message?["text"] as? String == "no echo")
        #expect(retry.message?["sent_at"] as? Int == message["sent_at"] as? Int)

        // The task path (an admin's internal note) does the same; staff get the note, the customer does not.
        let note = try await adminSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "note", "client_msg_id": "n1",
                                                                   "internal": true, "echo": false])
        #expect(note.message?["internal"] as? Bool == true && note.message?["text"] as? String == "note", "\(note)")
        _ = try await agentSocket.next("NEW_MESSAGE") { $0.message?["text"] as? String == "note" }
        _ = try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "second marker", "client_msg_id": "r2"])
        _ = try await otherTab.next("NEW_MESSAGE") { $0.message?["text"] as? String == "second marker" }
        #expect(!otherTab.drain("NEW_MESSAGE").contains { $0.message?["text"] as? String == "note" })
        // With echo (the default) nothing changes: no message in the ACK, the echo comes.
        let echoed = try await sender.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "echoed", "client_msg_id": "k2"])
        #expect(echoed.event == "ACK" && echoed.message == nil)
        _ = try await sender.next("NEW_MESSAGE") { $0.message?["text"] as? String == "echoed" }
        // The sender alone on its node (the other tab left): nothing is copied or sent to it there,
        // the agent gets the message, and the agent's next one still reaches the sender.
        #expect(try await otherTab.request("LEAVE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        #expect(sender.drain("NEW_MESSAGE").compactMap { $0.message?["text"] as? String } == ["second marker"])
        let alone = try await sender.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "alone", "client_msg_id": "k4", "echo": false])
        #expect(alone.message?["text"] as? String == "alone")
        _ = try await agentSocket.next("NEW_MESSAGE") { $0.message?["text"] as? String == "alone" }
        _ = try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "third marker", "client_msg_id": "r3"])
        _ = try await sender.next("NEW_MESSAGE") { $0.message?["text"] as? String == "third marker" }
        #expect(sender.drain("NEW_MESSAGE").compactMap { $0.message?["text"] as? String } == [])
        // echo must be a boolean.
        let bad = try await sender.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "x", "client_msg_id": "k3", "echo": "no"])
        #expect(bad.event == "ERROR" && bad.code == "validation_failed", "\(bad)")
        for socket in [sender, otherTab, agentSocket, adminSocket] { await socket.close() }
    }

    @Test("a customer's history pages past a page of internal notes only: next_after, over the socket and over REST")
    func pagesOfInternalNotes() async throws {
        let cluster = try await TestCluster(overrides: Self.unlimited)
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent-notes\(TestEnvironment.uniqueID())@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        #expect(try await agentSocket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        // More notes than a HISTORY page holds (200), then one message the customer may see.
        for i in 0..<(ConnectionHub.historyPageSize + 5) {
            try await agentSocket.send("SEND_MESSAGE", ["conversation_id": chat.id, "text": "note \(i)", "client_msg_id": "n\(i)", "internal": true], ref: "n\(i)")
        }
        _ = try await agentSocket.reply("n\(ConnectionHub.historyPageSize + 4)")
        #expect(try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "visible", "client_msg_id": "v"]).event == "ACK")

        let customer = try await TestSocket.connect(a.wsURL, token: chat.token, label: "customer")
        try await customer.send("JOIN_CONVERSATION", ["conversation_id": chat.id], ref: "j1")
        let first = try await customer.next("HISTORY")
        #expect((first.data["messages"] as? [Any])?.isEmpty == true && first.data["has_more"] as? Bool == true)
        let nextAfter = try #require(first.data["next_after"] as? String, "\(first)")
        try await customer.send("JOIN_CONVERSATION", ["conversation_id": chat.id, "last_message_id": nextAfter], ref: "j2")
        let second = try await customer.next("HISTORY")
        #expect((second.data["messages"] as? [[String: Any]])?.compactMap { $0["text"] as? String } == ["visible"])
        #expect(second.data["has_more"] as? Bool == false && second.data["next_after"] == nil)

        // REST: the same, a page at a time.
        var after = "", texts: [String] = [], pages = 0
        while pages < 50 {
            pages += 1
            let (status, page) = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(chat.id)/messages?limit=50" + (after.isEmpty ? "" : "&after=" + after), token: chat.token)
            #expect(status == 200)
            texts += (page["messages"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
            guard page["has_more"] as? Bool == true, let next = page["next_after"] as? String else { break }
            after = next
        }
        #expect(texts == ["visible"] && pages == 5, "\(texts), \(pages) pages")
        await customer.close(); await agentSocket.close()
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

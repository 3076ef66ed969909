import Foundation
import HelpDeskCore
import Testing
import TestSupport
@testable import HelpDeskServer

/// One client sending the worst it can must not hurt anyone else (issue: hostile input).
@Suite("hostile clients", .serialized)
struct HostileClientTests {
    /// Writes `count` messages straight into a conversation's stream (no rate limit in the way).
    func fill(_ cluster: TestCluster, node: TestCluster.Node, conversation: String, count: Int, text: (Int) -> String) async throws {
        let redis = cluster.redis()
        let key = node.services.keys.messages(conversation)
        var commands: [[String]] = []
        for i in 0..<count {
            commands.append(["XADD", key, "*", "sender_id", "c", "sender_role", "customer", "sender_name", "C", "text", text(i),
                             "client_msg_id", "f\(i)", "internal", "0", "sent_at", "1"])
            if commands.count == 200 {
                _ = try await redis.pipeline(commands)
                commands = []
            }
        }
        if !commands.isEmpty { _ = try await redis.pipeline(commands) }
    }

    @Test("HISTORY comes in bounded pages; the client reads every message once, in order")
    func pagedHistory() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        try await fill(cluster, node: a, conversation: chat.id, count: 450) { "m\($0)" }
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token)
        var texts: [String] = []
        var last: String?
        var pages = 0
        while true {
            var data: [String: Any] = ["conversation_id": chat.id]
            if let last { data["last_message_id"] = last }
            #expect(try await customer.request("JOIN_CONVERSATION", data).event == "ACK")
            let history = try await customer.next("HISTORY")
            let messages = history.data["messages"] as? [[String: Any]] ?? []
            #expect(messages.count <= ConnectionHub.historyPageSize)
            texts += messages.compactMap { $0["text"] as? String }
            last = messages.last?["id"] as? String ?? last
            pages += 1
            if history.data["has_more"] as? Bool != true { break }
            #expect(pages < 10)
        }
        #expect(pages == 3)
        #expect(texts == (0..<450).map { "m\($0)" })

        // REST history is paged the same way: a bounded page, `has_more`, the next from `after`.
        var restTexts: [String] = []
        var after = ""
        var restPages = 0
        while true {
            let (status, page) = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(chat.id)/messages?limit=200" + after, token: chat.token)
            #expect(status == 200)
            let messages = page["messages"] as? [[String: Any]] ?? []
            #expect(messages.count <= 200)
            restTexts += messages.compactMap { $0["text"] as? String }
            restPages += 1
            guard page["has_more"] as? Bool == true, let last = messages.last?["id"] as? String, restPages < 10 else { break }
            after = "&after=" + last
        }
        #expect(restPages == 3 && restTexts == texts)
        let (tooMany, refused) = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(chat.id)/messages?limit=100000", token: chat.token)
        #expect(tooMany == 400 && (refused["error"] as? [String: Any])?["code"] as? String == "validation_failed")

        // Large messages: a page is cut by bytes too, so it always fits the socket's outbound bound.
        let big = try await cluster.startChat(on: a)
        try await fill(cluster, node: a, conversation: big.id, count: 100) { String(repeating: "x", count: 10_000) + "\($0)" }
        let reader = try await TestSocket.connect(a.wsURL, token: big.token)
        _ = try await reader.request("JOIN_CONVERSATION", ["conversation_id": big.id])
        let first = try await reader.next("HISTORY")
        #expect(first.raw.utf8.count < ConnectionHub.historyPageBytes + 20_000)
        #expect(first.data["has_more"] as? Bool == true)
        await customer.close()
        await reader.close()
    }

    @Test("a client that stops reading is closed with 4008 while its neighbour gets everything")
    func slowReaderIsClosed() async throws {
        // A bound a reading client never reaches on a busy box, which the slow one passes at once.
        let cluster = try await TestCluster(overrides: ["HELPDESK_SOCKET_OUTBOUND_BYTES": "262144"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await agentSocket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        #expect(try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        let slow = try RawWebSocket(port: a.port, token: chat.token, receiveBuffer: 4096)
        #expect(slow.sendEvent("JOIN_CONVERSATION", ["conversation_id": chat.id]))
        let hub = a.services.parts.hub
        try await waitUntil("the slow socket joined") { hub.allSessions().contains { $0.caller.role == .customer && hub.isJoined($0, conversationID: chat.id) } }

        // 400 frames of 16 KB on the conversation's channel, 20 at a time, each batch once the
        // reading neighbour has the previous one (it is never far behind): far more than the
        // kernel's buffers and the 256 KB outbound bound hold for the client that reads nothing.
        let redis = cluster.redis()
        let filler = String(repeating: "y", count: 16_000)
        let channel = a.services.keys.conversationChannel(chat.id)
        for batch in 0..<20 {
            for i in (batch * 20)..<(batch * 20 + 20) {
                _ = try await redis.send("PUBLISH", channel, "event|a|-\n{\"event\":\"FILLER\",\"data\":{\"n\":\(i),\"x\":\"\(filler)\"}}")
            }
            try await waitUntil("the neighbour has batch \(batch)", within: .seconds(20)) { agentSocket.count("FILLER") >= batch * 20 + 20 }
        }
        try await waitUntil("the slow socket is closed", within: .seconds(15)) {
            !hub.allSessions().contains { $0.caller.role == .customer }
        }
        // The reading neighbour got every frame, in order, up to a marker sent after the flood.
        _ = try await redis.send("PUBLISH", channel, "event|a|-\n{\"event\":\"MARKER\",\"data\":{}}")
        _ = try await agentSocket.next("MARKER", timeout: .seconds(20))
        let fillers = agentSocket.drain("FILLER").compactMap { $0.data["n"] as? Int }
        #expect(fillers == Array(0..<400))
        let (_, closed) = slow.readUntilClosed(timeout: .seconds(10))
        #expect(closed, "the server dropped the connection")
        await agentSocket.close()
    }

    @Test("a flood of events is refused with rate_limited, then the socket is closed (1008)")
    func floodIsRateLimited() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let flooder = try await TestSocket.connect(a.wsURL, token: chat.token)
        #expect(try await flooder.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        for _ in 0..<200 {
            try? await flooder.send("TYPING", ["conversation_id": chat.id, "typing": true])
        }
        try await flooder.waitClosed(timeout: .seconds(10))
        #expect(flooder.drain("ERROR").contains { $0.code == "rate_limited" })
        #expect(flooder.closeCode == .policyViolation)
        // A neighbour on the same node is unaffected.
        let other = try await cluster.startChat(on: a)
        let neighbour = try await TestSocket.connect(a.wsURL, token: other.token)
        #expect(try await neighbour.request("JOIN_CONVERSATION", ["conversation_id": other.id]).event == "ACK")
        await neighbour.close()
    }

    @Test("sockets per user are capped with a clear refusal")
    func socketCaps() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_MAX_SOCKETS_PER_USER": "2"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("capped@example.com", on: a)
        let first = try await TestSocket.connect(a.wsURL, token: agent.token)
        let second = try await TestSocket.connect(a.wsURL, token: agent.token)
        await #expect(throws: (any Error).self) { _ = try await TestSocket.connect(a.wsURL, token: agent.token) }
        #expect(throws: TestSocketError.self) { _ = try RawWebSocket(port: a.port, token: agent.token) }
        await first.close()
        let hub = a.services.parts.hub
        try await waitUntil("the first socket is gone") { hub.sessions(ofUser: agent.id).count == 1 }
        let third = try await TestSocket.connect(a.wsURL, token: agent.token)
        await second.close()
        await third.close()
    }

    @Test("a socket whose token expired acts no more, even if its client ignores the close")
    func expiredSocketStopsActing() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("expiring@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        let picker = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await picker.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        await picker.close()
        let expiresAt = Int(Date().timeIntervalSince1970) + 2
        let token = a.services.tokens.sign(TokenClaims(sub: agent.id, role: "agent", iat: expiresAt - 10, exp: expiresAt, name: "expiring"))
        let raw = try RawWebSocket(port: a.port, token: token)
        // Sends for 4 s: the first 2 s may be stored, nothing after the expiry.
        var n = 0
        let deadline = ContinuousClock.now + .seconds(4)
        while ContinuousClock.now < deadline {
            n += 1
            guard raw.sendEvent("SEND_MESSAGE", ["conversation_id": chat.id, "text": "t\(n)", "client_msg_id": "c\(n)"]) else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let redis = cluster.redis()
        let entries = try await redis.send("XRANGE", a.services.keys.messages(chat.id), "-", "+").array ?? []
        for entry in entries {
            let sentAt = Int(MessageView(streamEntry: entry)?.sentAt ?? 0)
            #expect(sentAt <= expiresAt * 1000 + 500, "a message stored after the token expired")
        }
        #expect(raw.readUntilClosed(timeout: .seconds(10)).closed, "the server dropped the connection")
    }

    @Test("a user's sockets on a node share one message budget: more sockets do not send more")
    func messageBudgetPerUser() async throws {
        // Five messages and (practically) no refill, per socket and per user.
        let cluster = try await TestCluster(overrides: ["HELPDESK_SOCKET_MESSAGE_RATE": "0.001", "HELPDESK_SOCKET_MESSAGE_BURST": "5"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let first = try await TestSocket.connect(a.wsURL, token: chat.token)
        let second = try await TestSocket.connect(a.wsURL, token: chat.token)
        for n in 0..<5 {
            #expect(try await first.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "m\(n)", "client_msg_id": "a\(n)"]).event == "ACK")
        }
        // The second socket's own bucket is full, the user's is empty.
        #expect(try await second.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "more", "client_msg_id": "b0"]).code == "rate_limited")
        #expect(try await cluster.redis().send("XLEN", a.services.keys.messages(chat.id)).int == 5)
        await first.close()
        await second.close()
    }
}

extension HostileClientTests {
    @Test("HELPDESK_SOCKET_EVENT_RATE / _BURST bound the other events a socket sends (PICK, LEAVE, ...); SEND_MESSAGE keeps its own budget")
    func eventBudget() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_SOCKET_EVENT_RATE": "0.001", "HELPDESK_SOCKET_EVENT_BURST": "3"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: chat.token)
        for _ in 0..<3 {
            #expect(try await socket.request("LEAVE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        }
        #expect(try await socket.request("LEAVE_CONVERSATION", ["conversation_id": chat.id]).code == "rate_limited")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "still", "client_msg_id": "e0"]).event == "ACK")
        await socket.close()
    }

    @Test("a socket bucket's burst must be a whole token at least, or no event would ever pass: the node refuses to start")
    func burstAtLeastOne() throws {
        let env = ["HELPDESK_JWT_SECRET": "0123456789abcdef0123"]
        let configuration = try ServerConfiguration.fromEnvironment(env)
        #expect(configuration.socketEventRate == 20 && configuration.socketEventBurst == 40)
        for name in ["HELPDESK_SOCKET_EVENT_BURST", "HELPDESK_SOCKET_MESSAGE_BURST"] {
            #expect { try ServerConfiguration.fromEnvironment(env.merging([name: "0.5"]) { $1 }) } throws: { "\($0)".contains("\(name) must be at least 1") }
            _ = try ServerConfiguration.fromEnvironment(env.merging([name: "1"]) { $1 })
        }
    }

    @Test("a sender's budget holds across nodes and over REST: spreading sockets over nodes sends no more")
    func messageBudgetAcrossNodes() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_SOCKET_MESSAGE_RATE": "0.001", "HELPDESK_SOCKET_MESSAGE_BURST": "5"])
        let a = try await cluster.startNode()
        let b = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let onA = try await TestSocket.connect(a.wsURL, token: chat.token)
        for n in 0..<4 {
            #expect(try await onA.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "m\(n)", "client_msg_id": "a\(n)"]).event == "ACK")
        }
        // Node B's buckets are full, but the conversation's budget for this sender has one message left.
        let (created, _) = try await HTTP.request("POST", "\(b.url)/api/v1/conversations/\(chat.id)/messages", token: chat.token,
                                                         body: ["text": "rest", "client_msg_id": "r0"])
        #expect(created == 201)
        let onB = try await TestSocket.connect(b.wsURL, token: chat.token)
        #expect(try await onB.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "more", "client_msg_id": "b0"]).code == "rate_limited")
        let (status, body) = try await HTTP.request("POST", "\(b.url)/api/v1/conversations/\(chat.id)/messages", token: chat.token,
                                                           body: ["text": "rest", "client_msg_id": "r1"])
        #expect(status == 429)
        #expect((body["error"] as? [String: Any])?["code"] as? String == "rate_limited")
        // a retry of a stored message is not a new message: it gets its id back
        let (again, _) = try await HTTP.request("POST", "\(b.url)/api/v1/conversations/\(chat.id)/messages", token: chat.token,
                                                       body: ["text": "rest", "client_msg_id": "r0"])
        #expect(again == 200)
        #expect(try await cluster.redis().send("XLEN", a.services.keys.messages(chat.id)).int == 5)
        await onA.close()
        await onB.close()
    }
}

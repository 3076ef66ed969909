import Foundation
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("realtime bad input", .serialized)
struct RealtimeBadInputTests {
    @Test("forbidden actions get ERROR forbidden or conversation_closed, and nothing is stored or relayed")
    func forbiddenActions() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let supervisor = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        let owner = try await cluster.staff("owner@example.com", supervisor: "sue@example.com", on: a)
        let other = try await cluster.staff("other@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        let stranger = try await cluster.startChat(on: a)
        let ownerSocket = try await TestSocket.connect(a.wsURL, token: owner.token, label: "owner")
        let otherSocket = try await TestSocket.connect(a.wsURL, token: other.token, label: "other")
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token, label: "customer")
        let strangerSocket = try await TestSocket.connect(a.wsURL, token: stranger.token, label: "stranger")
        #expect(try await ownerSocket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        _ = try await ownerSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        let redis = cluster.redis()
        let streamKey = cluster.prefix + "conv:\(chat.id):msgs"

        // A customer picking, an agent writing into someone else's conversation, strangers joining.
        #expect(try await customer.request("PICK", [:]).code == "forbidden")
        #expect(try await otherSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "hi", "client_msg_id": "x1"]).code == "forbidden")
        #expect(try await otherSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).code == "forbidden")
        #expect(try await strangerSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).code == "forbidden")
        #expect(try await strangerSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "hi", "client_msg_id": "x2"]).code == "forbidden")
        #expect(try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "psst", "client_msg_id": "x3", "internal": true]).code == "forbidden")
        #expect(try await customer.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).code == "forbidden")
        #expect(try await otherSocket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).code == "forbidden")
        #expect(try await otherSocket.request("TYPING", ["conversation_id": chat.id, "typing": true]).code == "forbidden")
        let (restStatus, _) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/messages", token: stranger.token,
                                                     body: ["text": "hi", "client_msg_id": "x5"])
        #expect(restStatus == 403, "a customer token grants only its own conversation")
        #expect(try await redis.send("XLEN", streamKey).int == 0)
        try await Task.sleep(for: .milliseconds(200))
        #expect(ownerSocket.count("NEW_MESSAGE") + customer.count("NEW_MESSAGE") == 0, "nothing relayed")

        // Closed: sending gets conversation_closed.
        #expect(try await ownerSocket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        #expect(try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "late", "client_msg_id": "x4"]).code == "conversation_closed")
        #expect(try await ownerSocket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).code == "conversation_closed")
        #expect(try await redis.send("XLEN", streamKey).int == 0)

        // A supervisor may monitor its team's conversations and write internal notes the customer never sees.
        let second = try await cluster.startChat(on: a)
        let secondCustomer = try await TestSocket.connect(a.wsURL, token: second.token)
        #expect(try await ownerSocket.request("PICK", ["conversation_id": second.id]).event == "ACK")
        _ = try await secondCustomer.request("JOIN_CONVERSATION", ["conversation_id": second.id])
        let board = try await TestSocket.connect(a.wsURL, token: supervisor.token)
        #expect(try await board.request("JOIN_CONVERSATION", ["conversation_id": second.id]).event == "ACK")
        #expect(try await board.request("SEND_MESSAGE", ["conversation_id": second.id, "text": "note", "client_msg_id": "n1", "internal": true]).event == "ACK")
        _ = try await board.next("NEW_MESSAGE")
        try await Task.sleep(for: .milliseconds(200))
        #expect(secondCustomer.count("NEW_MESSAGE") == 0, "internal notes never reach the customer")
        let (_, history) = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(second.id)/messages", token: second.token)
        #expect((history["messages"] as? [Any])?.isEmpty == true)
        for socket in [ownerSocket, otherSocket, customer, strangerSocket, secondCustomer, board] { await socket.close() }
    }

    @Test("malformed JSON, unknown events, oversized frames and long messages get ERROR and the connection stays")
    func malformedFrames() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: chat.token)
        try await socket.sendRaw("{not json")
        #expect(try await socket.next("ERROR").code == "invalid_json")
        try await socket.sendRaw("[1,2,3]")
        #expect(try await socket.next("ERROR").code == "invalid_json")
        #expect(try await socket.request("FLY_TO_MOON", [:]).code == "unknown_event")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": 5, "client_msg_id": "a"]).code == "validation_failed")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "client_msg_id": "a"]).code == "validation_failed")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": "not-a-uuid", "text": "x", "client_msg_id": "a"]).code == "validation_failed")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": String(repeating: "x", count: 4001), "client_msg_id": "a"]).code == "validation_failed")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "   ", "client_msg_id": "a"]).code == "validation_failed")
        try await socket.sendRaw(#"{"event":"PING","data":{},"ref":"big","pad":""# + "\"" + String(repeating: "y", count: 70_000) + "\"}")
        #expect(try await socket.next("ERROR").code == "payload_too_large")
        try await socket.send("PING", [:], ref: "alive")
        #expect(try await socket.next("PONG").ref == "alive", "the connection is still usable")
        #expect(!socket.isClosed)
        #expect(try await cluster.redis().send("XLEN", cluster.prefix + "conv:\(chat.id):msgs").int == 0)
        await socket.close()
    }

    @Test("a client that keeps abusing the socket is closed with policy violation")
    func abuseClosesSocket() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: chat.token)
        for _ in 0..<30 { try? await socket.sendRaw("garbage") }
        try await socket.waitClosed()
        #expect(socket.closeCode == .policyViolation)
    }

    @Test("sockets without a valid ticket or token are refused; tickets work once")
    func socketAuth() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        await #expect(throws: (any Error).self) { try await TestSocket.connect(a.wsURL, token: "forged.token.here") }
        let (_, ticketJSON) = try await HTTP.request("POST", a.url + "/api/v1/ws-tickets", token: agent.token)
        let ticket = try #require(ticketJSON["ticket"] as? String)
        let first = try await TestSocket.connect(a.wsURL + "?ticket=\(ticket)", token: "")
        await #expect(throws: (any Error).self) { try await TestSocket.connect(a.wsURL + "?ticket=\(ticket)", token: "") }
        await first.close()
    }

    @Test("chat-start floods from one IP are rate limited; bad start bodies get 400 and queue nothing")
    func startFlood() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_START_LIMIT_PER_IP": "3"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        for (body, code) in [
            (["name": "", "email": "a@b.io"], "validation_failed"),
            (["name": "A", "email": "nope"], "validation_failed"),
            (["name": "A", "email": "a@b.io", "priority": "asap"], "validation_failed"),
            (["name": "A", "email": "a@b.io", "category_id": 999], "validation_failed"),
            (["email": "a@b.io"], "validation_failed"),
        ] as [([String: Any], String)] {
            let (status, json) = try await HTTP.request("POST", a.url + "/api/v1/conversations", body: body)
            #expect(status == 400, "\(body)")
            #expect((json["error"] as? [String: Any])?["code"] as? String == code, "\(body)")
        }
        let redis = cluster.redis()
        #expect(try await redis.send("ZCARD", cluster.prefix + "convs:live").int == 0)
        var statuses: [Int] = []
        for i in 0..<5 {
            statuses.append(try await HTTP.request("POST", a.url + "/api/v1/conversations", body: ["name": "F", "email": "f\(i)@example.com"]).0)
        }
        #expect(statuses == [201, 201, 201, 429, 429])
        #expect(try await redis.send("ZCARD", cluster.prefix + "convs:live").int == 3)
    }

    @Test("the same e-mail starting again gets its open conversation back")
    func noDuplicateConversation() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let first = try await cluster.startChat(on: a, email: "same@example.com")
        // Its holder gets it back (a reload that kept the token)...
        let (status, again) = try await HTTP.request("POST", a.url + "/api/v1/conversations", token: first.token, body: ["name": "C", "email": "Same@Example.com"])
        #expect(status == 200)
        #expect(again["conversation_id"] as? String == first.id)
        #expect(again["customer_token"] is String)
        // ...but knowing the e-mail alone gets a chat of one's own, never someone else's (issue 10 #11).
        let (separate, other) = try await HTTP.request("POST", a.url + "/api/v1/conversations", body: ["name": "Mallory", "email": "same@example.com"])
        #expect(separate == 201)
        #expect(other["conversation_id"] as? String != first.id)
        #expect(try await cluster.redis().send("ZCARD", cluster.prefix + "queue:0").int == 2)
    }
}

import Foundation
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("transfer, escalate, reopen")
struct TransferTests {
    @Test("an agent transfers to another agent; loads move; the new agent is told; capacity holds")
    func transferToAgent() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        let first = try await cluster.staff("first@example.com", on: a)
        let second = try await cluster.staff("second@example.com", capacity: 1, on: b)
        let chat = try await cluster.startChat(on: a)
        let other = try await cluster.startChat(on: a)
        let firstSocket = try await TestSocket.connect(a.wsURL, token: first.token)
        let secondSocket = try await TestSocket.connect(b.wsURL, token: second.token)
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token)
        _ = try await firstSocket.request("PICK", ["conversation_id": chat.id])
        _ = try await firstSocket.request("PICK", ["conversation_id": other.id])
        _ = try await firstSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        let (status, body) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/transfer", token: first.token,
                                                    body: ["agent_id": Int(second.id)!, "note": "billing expert"])
        #expect(status == 200)
        #expect((body["agent"] as? [String: Any])?["id"] as? String == second.id)
        let assigned = try await secondSocket.next("CONVERSATION_ASSIGNED")
        #expect(assigned.data["note"] as? String == "billing expert")
        _ = try await customer.next("CONVERSATION_TRANSFERRED")
        let redis = cluster.redis()
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(first.id)", "active").int == 1)
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(second.id)", "active").int == 1)
        // The second agent is full now: another transfer to it is refused and changes nothing.
        let (full, error) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(other.id)/transfer", token: first.token, body: ["agent_id": Int(second.id)!])
        #expect(full == 409)
        #expect((error["error"] as? [String: Any])?["code"] as? String == "at_capacity")
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(other.id)", "agent_id").string == first.id)
        // The old agent may no longer act on the transferred chat.
        #expect(try await firstSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "x", "client_msg_id": "x"]).code == "forbidden")
        // ...nor keeps reading it: its socket stopped following the conversation.
        _ = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "for the new agent", "client_msg_id": "n"])
        try await Task.sleep(for: .milliseconds(300))
        #expect(firstSocket.drain("NEW_MESSAGE").isEmpty)
        await firstSocket.close(); await secondSocket.close(); await customer.close()
    }

    @Test("a transfer back to the queue keeps the customer's place; escalation reaches the supervisor")
    func transferToQueueAndEscalate() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode()
        let supervisor = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        let agent = try await cluster.staff("agent@example.com", supervisor: "sue@example.com", on: a)
        let board = try await TestSocket.connect(a.wsURL, token: supervisor.token)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        let chat = try await cluster.startChat(on: a)
        let later = try await cluster.startChat(on: a)
        _ = try await socket.request("PICK", ["conversation_id": chat.id])
        let (escalated, _) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/escalate", token: agent.token, body: ["note": "angry customer"])
        #expect(escalated == 200)
        let notice = try await board.next("CONVERSATION_ESCALATED")
        #expect(notice.data["note"] as? String == "angry customer")
        let (back, _) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/transfer", token: agent.token, body: ["note": "wrong team"])
        #expect(back == 200)
        let (_, queue) = try await HTTP.requestArray("GET", a.url + "/api/v1/queue", token: agent.token)
        #expect(queue.compactMap { $0["id"] as? String } == [chat.id, later.id], "ahead of the customer who came later")
        #expect(try await cluster.redis().send("HGET", cluster.prefix + "agent:\(agent.id)", "active").int == 0)
        await board.close(); await socket.close()
    }

    @Test("a closed conversation is reopened by its customer; strangers cannot")
    func reopen() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode()
        let agent = try await cluster.staff("agent@example.com", on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        let chat = try await cluster.startChat(on: a)
        let stranger = try await cluster.startChat(on: a)
        _ = try await socket.request("PICK", ["conversation_id": chat.id])
        #expect(try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/reopen", token: chat.token).0 == 409, "still open")
        _ = try await socket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id])
        #expect(try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/reopen", token: stranger.token).0 == 403)
        let (status, body) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/reopen", token: chat.token)
        #expect(status == 200)
        #expect(body["status"] as? String == "waiting")
        #expect(try await cluster.redis().send("HGET", cluster.prefix + "conv:\(chat.id)", "status").string == "waiting")
        await socket.close()
    }
}

import Foundation
import RedisClient
import TestSupport
import Testing
@testable import HelpDeskServer

/// Take over, leave the queue, transfer targets, the escalation note and reopen's scope, on real
/// nodes (issue 11).
@Suite("workflows: take over, cancel, transfer targets")
struct WorkflowTests {
    /// A frame published straight to a user's channel: it reaches that user's sockets after
    /// everything published before it, so "nothing else arrived before it" is checkable.
    static func marker(_ cluster: TestCluster, user: String, _ text: String) async throws {
        let redis = cluster.redis()
        defer { Task { await redis.close() } }
        try await redis.send("PUBLISH", cluster.prefix + "ch:user:\(user)", "user|a|-\n{\"event\":\"PONG\",\"data\":{\"marker\":\"\(text)\"}}")
    }

    static func errorCode(_ body: [String: Any]) -> String? { (body["error"] as? [String: Any])?["code"] as? String }

    @Test("a supervisor takes over its agent's chat: it becomes the assignee, the agent's capacity is freed and the agent is told and let go")
    func takeOver() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        let sue = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        let agent = try await cluster.staff("ann@example.com", capacity: 2, supervisor: "sue@example.com", on: b)
        let chat = try await cluster.startChat(on: a, name: "Cleo")
        let agentSocket = try await TestSocket.connect(b.wsURL, token: agent.token, label: "agent")
        let board = try await TestSocket.connect(a.wsURL, token: sue.token, label: "supervisor")
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token, label: "customer")
        #expect(try await agentSocket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        _ = try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await board.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        let redis = cluster.redis()
        defer { Task { await redis.close() } }
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "active").int == 1)

        let (status, body) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/takeover", token: sue.token)
        #expect(status == 200)
        #expect((body["agent"] as? [String: Any])?["id"] as? String == sue.id)
        #expect((body["agent"] as? [String: Any])?["name"] as? String == "sue")
        #expect(body["status"] as? String == "active")

        // the former agent is told (once per route: its user channel and the conversation's)
        let told = try await agentSocket.next("CONVERSATION_TRANSFERRED")
        #expect(told.data["taken_over"] as? Bool == true && told.data["from_agent_id"] as? String == agent.id)
        #expect((told.data["agent"] as? [String: Any])?["id"] as? String == sue.id)
        // the customer learns the new name; the supervisor's own sockets get the assignment
        let seen = try await customer.next("CONVERSATION_TRANSFERRED")
        #expect((seen.data["agent"] as? [String: Any])?["name"] as? String == "sue")
        #expect(seen.data["at"] as? Int != nil)
        let assigned = try await board.next("CONVERSATION_ASSIGNED")
        #expect((assigned.data["conversation"] as? [String: Any])?["id"] as? String == chat.id)

        // capacity freed, the conversation is no longer the agent's
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "active").int == 0)
        #expect(try await redis.send("SCARD", cluster.prefix + "agent:\(agent.id):convs").int == 0)
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "agent_id").string == sue.id)
        #expect(try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "x", "client_msg_id": "x"]).code == "forbidden")

        // the customer writes: the supervisor reads it, the former agent's socket no longer follows
        _ = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "are you there?", "client_msg_id": "c1"])
        let got = try await board.next("NEW_MESSAGE")
        #expect(got.message?["text"] as? String == "are you there?")
        try await Self.marker(cluster, user: agent.id, "after-message")
        _ = try await agentSocket.next("PONG") { $0.data["marker"] as? String == "after-message" }
        #expect(agentSocket.drain("NEW_MESSAGE").isEmpty)

        // the supervisor writes to the customer (visible, not a note), then closes: its own chat is in its scope
        let sent = try await board.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "Sue here, I'll help", "client_msg_id": "s1"])
        #expect(sent.event == "ACK")
        let reply = try await customer.next("NEW_MESSAGE") { $0.message?["client_msg_id"] as? String == "s1" }
        #expect(reply.message?["text"] as? String == "Sue here, I'll help" && reply.message?["internal"] as? Bool == false)
        #expect((reply.message?["sender"] as? [String: Any])?["role"] as? String == "supervisor")
        #expect(try await board.request("CLOSE_CONVERSATION", ["conversation_id": chat.id, "resolution": "handled"]).event == "ACK")
        _ = try await customer.next("CONVERSATION_CLOSED")
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "active").int == 0)
        await agentSocket.close(); await board.close(); await customer.close()
    }

    @Test("take over: supervisors only within their team, admins anywhere; bad input is refused and changes nothing")
    func takeOverScope() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode()
        let sue = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        let tom = try await cluster.staff("tom@example.com", role: .supervisor, on: a)
        let admin = try await cluster.staff("ada@example.com", role: .admin, on: a)
        let agent = try await cluster.staff("ann@example.com", supervisor: "sue@example.com", on: a)
        let other = try await cluster.staff("bob@example.com", supervisor: "sue@example.com", on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token)
        let otherSocket = try await TestSocket.connect(a.wsURL, token: other.token)
        let tomSocket = try await TestSocket.connect(a.wsURL, token: tom.token)
        let sueSocket = try await TestSocket.connect(a.wsURL, token: sue.token)
        let chat = try await cluster.startChat(on: a)
        let second = try await cluster.startChat(on: a)
        let waiting = try await cluster.startChat(on: a)
        _ = try await agentSocket.request("PICK", ["conversation_id": chat.id])
        _ = try await agentSocket.request("PICK", ["conversation_id": second.id])
        let redis = cluster.redis()
        defer { Task { await redis.close() } }
        /// (the conversation's agent, the agent's load)
        func state(_ id: String) async throws -> [String] {
            [try await redis.send("HGET", cluster.prefix + "conv:\(id)", "agent_id").string ?? "-",
             String(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "active").int ?? -1)]
        }
        let url = { (id: String) in a.url + "/api/v1/conversations/\(id)/takeover" }

        // another team's supervisor, an agent, the customer: refused, nothing changes
        let (foreign, foreignBody) = try await HTTP.request("POST", url(chat.id), token: tom.token)
        #expect(foreign == 403 && Self.errorCode(foreignBody) == "forbidden")
        #expect(try await HTTP.request("POST", url(chat.id), token: other.token).0 == 403)
        #expect(try await HTTP.request("POST", url(chat.id), token: chat.token).0 == 403)
        #expect(try await state(chat.id) == [agent.id, "2"])
        // bad input
        let (bad, badBody) = try await HTTP.request("POST", url("not-a-conversation"), token: sue.token)
        #expect(bad == 400 && Self.errorCode(badBody) == "validation_failed")
        #expect(try await HTTP.request("POST", url("00000000-0000-4000-8000-000000000000"), token: sue.token).0 == 404)
        let (queued, queuedBody) = try await HTTP.request("POST", url(waiting.id), token: sue.token)
        #expect(queued == 409 && Self.errorCode(queuedBody) == "conflict")
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(waiting.id)", "status").string == "waiting")
        // on the socket too
        #expect(try await tomSocket.request("TAKE_OVER", ["conversation_id": chat.id]).code == "forbidden")
        #expect(try await tomSocket.request("TAKE_OVER", ["conversation_id": 42]).code == "validation_failed")
        #expect(try await otherSocket.request("TAKE_OVER", ["conversation_id": chat.id]).code == "forbidden")
        #expect(try await state(chat.id) == [agent.id, "2"])

        // an admin takes over anywhere; then the team's supervisor cannot take it from the admin
        #expect(try await HTTP.request("POST", url(chat.id), token: admin.token).0 == 200)
        #expect(try await state(chat.id) == [admin.id, "1"])
        #expect(try await HTTP.request("POST", url(chat.id), token: sue.token).0 == 403)
        let (again, againBody) = try await HTTP.request("POST", url(chat.id), token: admin.token)
        #expect(again == 409 && Self.errorCode(againBody) == "conflict")
        // the team's supervisor over the socket
        let ack = try await sueSocket.request("TAKE_OVER", ["conversation_id": second.id])
        #expect(ack.event == "ACK" && ack.data["from_agent_id"] as? String == agent.id)
        #expect(try await state(second.id) == [sue.id, "0"])
        // closed conversations are not taken over
        #expect(try await sueSocket.request("CLOSE_CONVERSATION", ["conversation_id": second.id]).event == "ACK")
        #expect(try await HTTP.request("POST", url(second.id), token: admin.token).0 == 409)
        await agentSocket.close(); await otherSocket.close(); await tomSocket.close(); await sueSocket.close()
    }

    @Test("a waiting customer leaves the queue (REST and CANCEL): abandoned at once; others and other states are refused")
    func cancel() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode()
        let agent = try await cluster.staff("ann@example.com", on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token)
        let chat = try await cluster.startChat(on: a, email: "cleo@example.com")
        let stranger = try await cluster.startChat(on: a)
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token)
        let url = { (id: String) in a.url + "/api/v1/conversations/\(id)/cancel" }
        let redis = cluster.redis()
        defer { Task { await redis.close() } }

        // not for anyone else
        #expect(try await HTTP.request("POST", url(chat.id), token: stranger.token).0 == 403)
        #expect(try await HTTP.request("POST", url(chat.id), token: agent.token).0 == 403)
        #expect(try await HTTP.request("POST", url("nope"), token: chat.token).0 == 400)
        #expect(try await agentSocket.request("CANCEL", ["conversation_id": chat.id]).code == "forbidden")
        #expect(try await customer.request("CANCEL", ["conversation_id": stranger.id]).code == "forbidden")
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "status").string == "waiting")

        let (status, body) = try await HTTP.request("POST", url(chat.id), token: chat.token)
        #expect(status == 200 && body["status"] as? String == "abandoned" && body["resolution"] as? String == "abandoned")
        let closed = try await customer.next("CONVERSATION_CLOSED")
        #expect(closed.data["resolution"] as? String == "abandoned")
        #expect((closed.data["closed_by"] as? [String: Any])?["role"] as? String == "customer")
        _ = try await agentSocket.next("QUEUE_UPDATED") {
            ($0.data["conversation"] as? [String: Any])?["id"] as? String == chat.id && $0.data["op"] as? String == "removed"
        }
        #expect(try await redis.send("ZSCORE", cluster.prefix + "queue:0", chat.id).string == nil)
        #expect(try await redis.send("ZSCORE", cluster.prefix + "convs:live", chat.id).string == nil)
        // queued for the archive: its outbox entry carries close epoch 1 (the node's flusher may have
        // archived and removed the entry already, so the outbox's length says nothing by now)
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "close_epoch").string == "1")
        // twice: already ended
        let (twice, twiceBody) = try await HTTP.request("POST", url(chat.id), token: chat.token)
        #expect(twice == 409 && Self.errorCode(twiceBody) == "conversation_closed")
        // the same e-mail may start again: a new conversation
        let fresh = try await cluster.startChat(on: a, email: "cleo@example.com")
        #expect(fresh.id != chat.id)

        // once an agent has it, only the agent closes it
        _ = try await agentSocket.request("PICK", ["conversation_id": stranger.id])
        let (active, activeBody) = try await HTTP.request("POST", url(stranger.id), token: stranger.token)
        #expect(active == 409 && Self.errorCode(activeBody) == "conflict")
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(stranger.id)", "status").string == "active")

        // over the socket
        let freshSocket = try await TestSocket.connect(a.wsURL, token: fresh.token)
        #expect(try await freshSocket.request("CANCEL", ["conversation_id": "x"]).code == "validation_failed")
        #expect(try await freshSocket.request("CANCEL", ["conversation_id": fresh.id]).event == "ACK")
        _ = try await freshSocket.next("CONVERSATION_CLOSED")
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(fresh.id)", "status").string == "abandoned")
        await agentSocket.close(); await customer.close(); await freshSocket.close()
    }

    @Test("transfer targets: present agents with free capacity, never the caller; a supervisor sees its team; customers may not ask")
    func transferTargets() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode()
        let sue = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        let ann = try await cluster.staff("ann@example.com", supervisor: "sue@example.com", on: a)
        let bob = try await cluster.staff("bob@example.com", capacity: 1, supervisor: "sue@example.com", on: a)
        let cy = try await cluster.staff("cy@example.com", on: a)
        _ = try await cluster.staff("dee@example.com", on: a)  // never connected: not present
        let sockets = [try await TestSocket.connect(a.wsURL, token: ann.token), try await TestSocket.connect(a.wsURL, token: bob.token),
                       try await TestSocket.connect(a.wsURL, token: cy.token)]
        let url = a.url + "/api/v1/agents/available"
        let (status, list) = try await HTTP.requestArray("GET", url, token: ann.token)
        #expect(status == 200)
        #expect(list.compactMap { $0["name"] as? String } == ["bob", "cy"])
        #expect(list.allSatisfy { $0["email"] == nil && $0["capacity"] != nil && $0["active"] != nil })
        // bob is full once it has a chat
        let chat = try await cluster.startChat(on: a)
        _ = try await sockets[1].request("PICK", ["conversation_id": chat.id])
        #expect(try await HTTP.requestArray("GET", url, token: ann.token).1.compactMap { $0["name"] as? String } == ["cy"])
        // the supervisor: its own team only
        #expect(try await HTTP.requestArray("GET", url, token: sue.token).1.compactMap { $0["name"] as? String } == ["ann"])
        #expect(try await HTTP.request("GET", url, token: chat.token).0 == 403)
        #expect(try await HTTP.request("GET", url).0 == 401)
        for s in sockets { await s.close() }
    }

    @Test("the escalation note is in staff's REST view, never in the customer's; staff reopen only what was theirs")
    func escalationNoteAndReopenScope() async throws {
        let cluster = try await TestCluster()
        defer { Task { await cluster.shutdown() } }
        let a = try await cluster.startNode()
        let sue = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        let tom = try await cluster.staff("tom@example.com", role: .supervisor, on: a)
        let ann = try await cluster.staff("ann@example.com", supervisor: "sue@example.com", on: a)
        let bob = try await cluster.staff("bob@example.com", on: a)
        let annSocket = try await TestSocket.connect(a.wsURL, token: ann.token)
        let bobSocket = try await TestSocket.connect(a.wsURL, token: bob.token)
        let chat = try await cluster.startChat(on: a)
        _ = try await annSocket.request("PICK", ["conversation_id": chat.id])
        #expect(try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/escalate", token: ann.token, body: ["note": "wants a refund"]).0 == 200)
        let (_, staffView) = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(chat.id)", token: sue.token)
        #expect(staffView["escalated"] as? Bool == true && staffView["escalation_note"] as? String == "wants a refund")
        #expect(staffView["escalated_at"] as? Int != nil)
        let (_, own) = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(chat.id)", token: chat.token)
        #expect(own["id"] as? String == chat.id && own["escalation_note"] == nil && own["escalated_at"] == nil)

        _ = try await annSocket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id])
        let reopen = a.url + "/api/v1/conversations/\(chat.id)/reopen"
        #expect(try await HTTP.request("POST", reopen, token: bob.token).0 == 403, "another agent's chat")
        #expect(try await HTTP.request("POST", reopen, token: tom.token).0 == 403, "another team's chat")
        #expect(try await cluster.redis().send("HGET", cluster.prefix + "conv:\(chat.id)", "status").string == "closed")
        let (status, body) = try await HTTP.request("POST", reopen, token: ann.token)
        #expect(status == 200 && body["status"] as? String == "waiting")
        await annSocket.close(); await bobSocket.close()
    }
}

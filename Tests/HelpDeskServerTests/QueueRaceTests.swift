import Foundation
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("fair pick under races", .serialized)
struct QueueRaceTests {
    @Test("40 agents on two nodes race for 15 customers: each assigned once, nobody above capacity", arguments: [1, 3])
    func race(capacity: Int) async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        var agents: [(id: String, socket: TestSocket)] = []
        for i in 0..<40 {
            let node = i % 2 == 0 ? a : b
            let agent = try await cluster.staff("agent\(i)@example.com", capacity: capacity, on: node)
            agents.append((agent.id, try await TestSocket.connect(node.wsURL, token: agent.token, label: "agent\(i)")))
        }
        var conversations: [String] = []
        for i in 0..<15 { conversations.append(try await cluster.startChat(on: i % 2 == 0 ? a : b).id) }

        // Every agent tries to pick the fairest conversation four times, all at once.
        let results = try await withThrowingTaskGroup(of: (String, [Frame]).self) { group in
            for agent in agents {
                group.addTask {
                    var replies: [Frame] = []
                    for _ in 0..<4 { replies.append(try await agent.socket.request("PICK", [:], timeout: .seconds(30))) }
                    return (agent.id, replies)
                }
            }
            return try await group.reduce(into: [(String, [Frame])]()) { $0.append($1) }
        }
        var assignedTo: [String: String] = [:]
        var perAgent: [String: Int] = [:]
        for (agentID, replies) in results {
            for reply in replies {
                if reply.event == "ACK" {
                    let id = try #require((reply.data["conversation"] as? [String: Any])?["id"] as? String)
                    #expect(assignedTo[id] == nil, "conversation \(id) assigned twice")
                    assignedTo[id] = agentID
                    perAgent[agentID, default: 0] += 1
                } else {
                    #expect(["not_found", "at_capacity"].contains(reply.code ?? ""), "\(reply)")
                }
            }
        }
        #expect(Set(assignedTo.keys) == Set(conversations), "every customer assigned")
        #expect(perAgent.values.allSatisfy { $0 <= capacity })
        // Redis agrees: each conversation's agent is the winner, no agent's load is above capacity.
        let redis = cluster.redis()
        for id in conversations {
            #expect(try await redis.send("HGET", cluster.prefix + "conv:\(id)", "agent_id").string == assignedTo[id])
        }
        for agent in agents {
            let active = try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "active").int ?? 0
            #expect(active <= capacity)
            #expect(active == perAgent[agent.id, default: 0])
        }
        #expect(try await redis.send("ZCARD", cluster.prefix + "queue:0").int == 0)
        for agent in agents { await agent.socket.close() }
    }

    @Test("pick takes the oldest waiting customer first; a higher priority goes ahead")
    func fairness() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let first = try await cluster.startChat(on: a)
        let second = try await cluster.startChat(on: a)
        let (_, urgentJSON) = try await HTTP.request("POST", a.url + "/api/v1/conversations",
                                                    body: ["name": "U", "email": "urgent@example.com", "priority": "urgent"])
        let urgent = try #require(urgentJSON["conversation_id"] as? String)
        let agent = try await cluster.staff("agent@example.com", capacity: 5, on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        var order: [String] = []
        for _ in 0..<3 {
            let reply = try await socket.request("PICK", [:])
            order.append(try #require((reply.data["conversation"] as? [String: Any])?["id"] as? String))
        }
        #expect(order == [urgent, first.id, second.id])
        await socket.close()
    }

    @Test("a supervisor assigns a waiting customer to an agent; a second assign gets already_picked")
    func supervisorAssign() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let supervisor = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        let agent = try await cluster.staff("agent@example.com", supervisor: "sue@example.com", on: a)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token)
        let chat = try await cluster.startChat(on: a)
        let customer = try await TestSocket.connect(a.wsURL, token: chat.token)
        let (status, body) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/assign", token: supervisor.token, body: ["agent_id": Int(agent.id)!])
        #expect(status == 200)
        #expect((body["agent"] as? [String: Any])?["id"] as? String == agent.id)
        _ = try await customer.next("CONVERSATION_ASSIGNED")
        _ = try await agentSocket.next("CONVERSATION_ASSIGNED")
        let (again, error) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/assign", token: supervisor.token, body: ["agent_id": Int(agent.id)!])
        #expect(again == 409)
        #expect((error["error"] as? [String: Any])?["code"] as? String == "already_picked")
        let (forbidden, _) = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/assign", token: agent.token, body: ["agent_id": Int(agent.id)!])
        #expect(forbidden == 403)
        await customer.close()
        await agentSocket.close()
    }
}

import Foundation
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("graceful drain")
struct DrainTests {
    @Test("a draining node closes its sockets with 1012, leaves presence, and clients resume on another node with nothing lost")
    func drainMovesClients() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: b)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent on a")
        let customer = try await TestSocket.connect(b.wsURL, token: chat.token, label: "customer on b")
        _ = try await agentSocket.request("PICK", [:])
        _ = try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        let first = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "one", "client_msg_id": "1"])
        _ = try await agentSocket.next("NEW_MESSAGE")
        let lastSeen = try #require(first.data["message_id"] as? String)

        let stopping = Task { await cluster.stop(a) }
        try await agentSocket.waitClosed()
        #expect(agentSocket.closeCode == .unknown(1012))
        #expect(a.services.drain.isDraining)
        // While the agent is away the customer keeps writing; the message waits in the stream.
        _ = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "two", "client_msg_id": "2"])
        await stopping.value
        let redis = cluster.redis()
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(agent.id)", "connected").string == "0", "left presence")
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(chat.id)", "agent_id").string == agent.id, "keeps its chat within the grace")

        let again = try await TestSocket.connect(b.wsURL, token: agent.token, label: "agent on b")
        #expect(try await again.request("JOIN_CONVERSATION", ["conversation_id": chat.id, "last_message_id": lastSeen]).event == "ACK")
        let history = try await again.next("HISTORY")
        #expect((history.data["messages"] as? [[String: Any]])?.compactMap { $0["text"] as? String } == ["two"])
        await again.close(); await customer.close()
    }
}

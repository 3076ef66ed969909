import Foundation
import HelpDeskCore
import Testing
@testable import HelpDeskServer

/// `/ws?queue_changes=batched`: a window's queue changes in one QUEUE_CHANGES frame, the same
/// changes in the same order as the QUEUE_UPDATEDs another socket gets one by one.
@Suite("queue changes, batched", .serialized)
struct QueueChangesTests {
    typealias Change = (op: String, id: String)

    /// The (op, conversation id) of one QUEUE_UPDATED data object.
    static func change(_ data: [String: Any]) -> Change? {
        guard let op = data["op"] as? String, let id = (data["conversation"] as? [String: Any])?["id"] as? String else { return nil }
        return (op, id)
    }

    static func singles(_ socket: TestSocket) -> [Change] {
        socket.frames("QUEUE_UPDATED").compactMap { change($0.data) }
    }

    static func batched(_ socket: TestSocket) -> [Change] {
        socket.frames("QUEUE_CHANGES").flatMap { ($0.data["changes"] as? [[String: Any]] ?? []).compactMap(change) }
    }

    @Test("a batching socket gets every queue change, in order, in QUEUE_CHANGES frames; the others one QUEUE_UPDATED each")
    func batchedMatchesSingle() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("batcher@example.com", capacity: 5, on: a)
        let supervisor = try await cluster.staff("watcher@example.com", role: .supervisor, on: a)
        let single = try await TestSocket.connect(b.wsURL, token: agent.token, label: "single")
        let batched = try await TestSocket.connect(a.wsURL + "?queue_changes=batched", token: agent.token, label: "batched")
        let watching = try await TestSocket.connect(b.wsURL + "?queue_changes=batched", token: supervisor.token, label: "supervisor")
        let explicitSingle = try await TestSocket.connect(a.wsURL + "?queue_changes=single", token: supervisor.token, label: "explicit single")

        // Three customers in a burst (one window, or a few), then a pick and a cancel.
        var chats: [(id: String, token: String, position: Int)] = []
        for node in [a, b, a] { chats.append(try await cluster.startChat(on: node)) }
        #expect(try await single.request("PICK").event == "ACK")
        let (cancelled, _) = try await HTTP.request("POST", b.url + "/api/v1/conversations/\(chats[2].id)/cancel", token: chats[2].token)
        #expect(cancelled == 200)

        let expected: [String] = chats.map { "added \($0.id)" } + ["removed \(chats[0].id)", "removed \(chats[2].id)"]
        func text(_ changes: [Change]) -> [String] { changes.map { "\($0.op) \($0.id)" } }
        try await eventually("every socket has all five changes") {
            text(Self.singles(single)).count >= 5 && text(Self.batched(batched)).count >= 5
                && text(Self.batched(watching)).count >= 5 && text(Self.singles(explicitSingle)).count >= 5
        }
        #expect(text(Self.singles(single)) == expected)
        #expect(text(Self.singles(explicitSingle)) == expected)
        #expect(text(Self.batched(batched)) == expected)
        #expect(text(Self.batched(watching)) == expected)
        // each form only where it was asked for
        #expect(batched.count("QUEUE_UPDATED") == 0 && watching.count("QUEUE_UPDATED") == 0)
        #expect(single.count("QUEUE_CHANGES") == 0 && explicitSingle.count("QUEUE_CHANGES") == 0)
        // fewer frames than changes: the burst of three went out together at least once
        #expect(batched.count("QUEUE_CHANGES") < 5 || watching.count("QUEUE_CHANGES") < 5)
        for socket in [single, batched, watching, explicitSingle] { await socket.close() }
    }

    @Test("an unknown queue_changes value refuses the upgrade with a clear error, opens nothing and leaves the ticket unspent")
    func unknownValueRefused() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("picky@example.com", on: a)
        let refused = try RawWebSocket.refusedUpgrade(port: a.port, path: "/ws?queue_changes=sometimes",
                                                      headers: ["Authorization": "Bearer \(agent.token)"])
        #expect(refused.status == 400)
        #expect((refused.body["error"] as? [String: Any])?["code"] as? String == "validation_failed")
        #expect(a.services.parts.hub.sessions(ofUser: agent.id).isEmpty)
        // with a ticket: refused the same way, and the ticket still opens a socket afterwards
        let (status, body) = try await HTTP.request("POST", a.url + "/api/v1/ws-tickets", token: agent.token)
        let ticket = try #require(body["ticket"] as? String, "\(status) \(body)")
        let withTicket = try RawWebSocket.refusedUpgrade(port: a.port, path: "/ws?ticket=\(ticket)&queue_changes=", headers: [:])
        #expect(withTicket.status == 400)
        #expect((withTicket.body["error"] as? [String: Any])?["code"] as? String == "validation_failed")
        let socket = try await TestSocket.connect(a.wsURL + "?ticket=\(ticket)&queue_changes=batched", token: "not-a-token")
        #expect(a.services.parts.hub.sessions(ofUser: agent.id).count == 1)
        await socket.close()
    }
}

import Foundation
import HelpDeskCore
import Testing
import TestSupport
@testable import HelpDeskServer

/// Chat messages on the hot path (`SocketConnection.sendWithoutTask`): sent to Redis from the
/// event loop, several in flight at once, answered from the reply's callback. What must hold:
/// order, the task path waiting for them, and a Redis that lost the function library.
@Suite("chat messages without a task", .serialized)
struct SendWithoutTaskTests {
    static let fastLimits = ["HELPDESK_SOCKET_MESSAGE_RATE": "100000", "HELPDESK_SOCKET_MESSAGE_BURST": "100000"]

    /// Reads frames until `count` ACK/ERROR frames came; returns them (event, ref, data) in order.
    static func answers(_ raw: RawWebSocket, count: Int) throws -> [(event: String, ref: String, data: [String: Any])] {
        var answers: [(String, String, [String: Any])] = []
        while answers.count < count {
            let frame = try #require(raw.readFrame(), "frame \(answers.count + 1) of \(count) came")
            guard frame.opcode == 0x1,
                  let object = try JSONSerialization.jsonObject(with: Data(frame.payload)) as? [String: Any],
                  let event = object["event"] as? String, event == "ACK" || event == "ERROR" else { continue }
            answers.append((event, object["ref"] as? String ?? "", object["data"] as? [String: Any] ?? [:]))
        }
        return answers
    }

    static func send(_ raw: RawWebSocket, _ conversation: String, _ n: Int) -> Bool {
        raw.sendEvent("SEND_MESSAGE", ["conversation_id": conversation, "text": "m\(n)", "client_msg_id": "k\(n)"], ref: "r\(n)")
    }

    @Test("a burst of messages goes out without a task, several in flight: acknowledged and stored in the order sent")
    func burstInOrder() async throws {
        let cluster = try await TestCluster(overrides: Self.fastLimits)
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let raw = try RawWebSocket(port: a.port, token: chat.token)
        _ = raw.readFrame()  // HELLO
        // A first message through the task path makes sure the pool's connections are up.
        #expect(Self.send(raw, chat.id, 0))
        _ = try Self.answers(raw, count: 1)
        let before = SocketConnection.sentWithoutTask.withLockedValue { $0 }
        var burst: [UInt8] = []
        for n in 1...100 {
            let text = #"{"event":"SEND_MESSAGE","ref":"r\#(n)","data":{"conversation_id":"\#(chat.id)","text":"m\#(n)","client_msg_id":"k\#(n)"}}"#
            burst += RawWebSocket.frame(opcode: 0x1, payload: Array(text.utf8))
        }
        #expect(raw.sendBytes(burst))
        let answers = try Self.answers(raw, count: 100)
        #expect(answers.map(\.event) == Array(repeating: "ACK", count: 100))
        #expect(answers.map(\.ref) == (1...100).map { "r\($0)" })
        let ids = answers.compactMap { $0.data["message_id"] as? String }.compactMap { StreamID($0) }
        #expect(ids.count == 100 && zip(ids, ids.dropFirst()).allSatisfy { $0 < $1 }, "message ids grow in the order sent")
        #expect(SocketConnection.sentWithoutTask.withLockedValue { $0 } - before > 0, "the hot path was taken")
        let entries = try await cluster.redis().send("XRANGE", a.services.keys.messages(chat.id), "-", "+").array ?? []
        #expect(entries.compactMap { MessageView(streamEntry: $0)?.text } == (0...100).map { "m\($0)" })
    }

    @Test("a frame for the task path after messages in flight acts after them (leaving the queue does not overtake them)")
    func taskWaitsForMessagesInFlight() async throws {
        let cluster = try await TestCluster(overrides: Self.fastLimits)
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let raw = try RawWebSocket(port: a.port, token: chat.token)
        _ = raw.readFrame()  // HELLO
        #expect(Self.send(raw, chat.id, 0))
        _ = try Self.answers(raw, count: 1)
        var burst: [UInt8] = []
        for n in 1...20 {
            let text = #"{"event":"SEND_MESSAGE","ref":"r\#(n)","data":{"conversation_id":"\#(chat.id)","text":"m\#(n)","client_msg_id":"k\#(n)"}}"#
            burst += RawWebSocket.frame(opcode: 0x1, payload: Array(text.utf8))
        }
        // CANCEL ends the chat: a message it overtook would be refused as conversation_closed.
        let cancel = #"{"event":"CANCEL","ref":"cancel","data":{"conversation_id":"\#(chat.id)"}}"#
        burst += RawWebSocket.frame(opcode: 0x1, payload: Array(cancel.utf8))
        #expect(raw.sendBytes(burst))
        let answers = try Self.answers(raw, count: 21)
        #expect(answers.map(\.ref) == (1...20).map { "r\($0)" } + ["cancel"])
        #expect(answers.allSatisfy { $0.event == "ACK" }, "no message met a closed conversation: \(answers.filter { $0.event == "ERROR" }.map(\.data))")
        #expect(try await cluster.redis().send("XLEN", a.services.keys.messages(chat.id)).int == 21)
    }

    @Test("Redis lost the function library (restart without persistence): messages in flight are sent again, in order, and none is lost")
    func libraryGone() async throws {
        let cluster = try await TestCluster(overrides: Self.fastLimits)
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let raw = try RawWebSocket(port: a.port, token: chat.token)
        _ = raw.readFrame()  // HELLO
        #expect(Self.send(raw, chat.id, 0))
        _ = try Self.answers(raw, count: 1)
        let redis = cluster.redis()
        // Every test's library goes; the registry of each loads it again on its next call.
        #expect(try await redis.send("FUNCTION", "FLUSH") == .simpleString("OK"))
        let resentBefore = SocketConnection.resentAfterMissingLibrary.withLockedValue { $0 }
        var burst: [UInt8] = []
        for n in 1...30 {
            let text = #"{"event":"SEND_MESSAGE","ref":"r\#(n)","data":{"conversation_id":"\#(chat.id)","text":"m\#(n)","client_msg_id":"k\#(n)"}}"#
            burst += RawWebSocket.frame(opcode: 0x1, payload: Array(text.utf8))
        }
        #expect(raw.sendBytes(burst))
        let answers = try Self.answers(raw, count: 30)
        #expect(answers.map(\.ref) == (1...30).map { "r\($0)" })
        #expect(answers.allSatisfy { $0.event == "ACK" }, "\(answers.filter { $0.event == "ERROR" }.map(\.data))")
        #expect(SocketConnection.resentAfterMissingLibrary.withLockedValue { $0 } - resentBefore > 0, "the hot path met the missing library")
        let entries = try await redis.send("XRANGE", a.services.keys.messages(chat.id), "-", "+").array ?? []
        #expect(entries.compactMap { MessageView(streamEntry: $0)?.text } == (0...30).map { "m\($0)" })
    }

    @Test("messages Redis refuses count against the error budget: a client that keeps sending into a closed chat is closed (1008)")
    func refusalsCountAgainstTheBudget() async throws {
        let cluster = try await TestCluster(overrides: Self.fastLimits)
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let raw = try RawWebSocket(port: a.port, token: chat.token)
        _ = raw.readFrame()  // HELLO
        #expect(raw.sendEvent("CANCEL", ["conversation_id": chat.id], ref: "cancel"))
        _ = try Self.answers(raw, count: 1)
        let before = SocketConnection.sentWithoutTask.withLockedValue { $0 }
        // Each passes the node's own checks; send.lua refuses it (conversation_closed).
        var burst: [UInt8] = []
        for n in 1...(WebSocketController.errorBudgetPerMinute + 10) {
            let text = #"{"event":"SEND_MESSAGE","ref":"r\#(n)","data":{"conversation_id":"\#(chat.id)","text":"m\#(n)","client_msg_id":"k\#(n)"}}"#
            burst += RawWebSocket.frame(opcode: 0x1, payload: Array(text.utf8))
        }
        #expect(raw.sendBytes(burst))
        let close = try #require(raw.readClose(), "the server closed the socket")
        #expect(close.count >= 2 && Int(close[0]) << 8 | Int(close[1]) == 1008)
        #expect(SocketConnection.sentWithoutTask.withLockedValue { $0 } - before > 0, "the refusals came back to the hot path")
    }
}

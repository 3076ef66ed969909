import Foundation
import HelpDeskCore
import RedisClient
import Synchronization
import Testing
import TestSupport
@testable import HelpDeskServer

/// Chat messages on the hot path (`SocketConnection.sendWithoutTask`): sent to Redis from the
/// event loop, several in flight at once, answered from the reply's callback. What must hold:
/// order, the task path waiting for them, and a Redis that lost the function library.
@Suite("chat messages without a task", .serialized)
struct SendWithoutTaskTests {
    static let fastLimits = ["HELPDESK_SOCKET_MESSAGE_RATE": "100000", "HELPDESK_SOCKET_MESSAGE_BURST": "100000"]

    /// One node, one waiting customer's raw socket past its HELLO and a first message (which
    /// makes sure the pool's connections are up, so the hot path can be taken).
    struct Chat {
        let cluster: TestCluster
        let node: TestCluster.Node
        let id: String
        let raw: RawWebSocket
        let redis: RedisClient

        static func open() async throws -> Chat {
            let cluster = try await TestCluster(overrides: SendWithoutTaskTests.fastLimits)
            let node = try await cluster.startNode()
            let chat = try await cluster.startChat(on: node)
            let raw = try RawWebSocket(port: node.port, token: chat.token)
            _ = raw.readFrame()  // HELLO
            let opened = Chat(cluster: cluster, node: node, id: chat.id, raw: raw, redis: cluster.redis())
            #expect(raw.sendBytes(opened.messages(0...0)))
            _ = try opened.answers(1)
            return opened
        }

        /// SEND_MESSAGE frames n (ref `r<n>`, text `m<n>`, client_msg_id `k<n>`), as one write.
        func messages(_ range: ClosedRange<Int>) -> [UInt8] {
            var burst: [UInt8] = []
            for n in range {
                let text = #"{"event":"SEND_MESSAGE","ref":"r\#(n)","data":{"conversation_id":"\#(id)","text":"m\#(n)","client_msg_id":"k\#(n)"}}"#
                burst += RawWebSocket.frame(opcode: 0x1, payload: Array(text.utf8))
            }
            return burst
        }

        /// Reads frames until `count` ACK/ERROR frames came; returns them (event, ref, data) in order.
        func answers(_ count: Int) throws -> [(event: String, ref: String, data: [String: Any])] {
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

        /// The texts stored in the conversation's stream, in its order.
        func stored() async throws -> [String] {
            let entries = try await redis.send("XRANGE", node.services.keys.messages(id), "-", "+").array ?? []
            return entries.compactMap { MessageView(streamEntry: $0)?.text }
        }

        func close() async {
            await redis.close()
            await cluster.shutdown()
        }
    }

    @Test("a burst of messages goes out without a task, several in flight: acknowledged and stored in the order sent")
    func burstInOrder() async throws {
        let chat = try await Chat.open()
        defer { Task { await chat.close() } }
        let before = SocketConnection.sentWithoutTask.load(ordering: .relaxed)
        #expect(chat.raw.sendBytes(chat.messages(1...100)))
        let answers = try chat.answers(100)
        #expect(answers.map(\.event) == Array(repeating: "ACK", count: 100))
        #expect(answers.map(\.ref) == (1...100).map { "r\($0)" })
        let ids = answers.compactMap { $0.data["message_id"] as? String }.compactMap { StreamID($0) }
        #expect(ids.count == 100 && zip(ids, ids.dropFirst()).allSatisfy { $0 < $1 }, "message ids grow in the order sent")
        #expect(SocketConnection.sentWithoutTask.load(ordering: .relaxed) - before > 0, "the hot path was taken")
        #expect(try await chat.stored() == (0...100).map { "m\($0)" })
    }

    @Test("a burst that reaches the node in one write goes to Redis in shared calls; a client_msg_id repeated within one call is stored once")
    func burstInSharedCalls() async throws {
        let chat = try await Chat.open()
        defer { Task { await chat.close() } }
        let before = (CallBatch.written.load(ordering: .relaxed), CallBatch.callsWritten.load(ordering: .relaxed))
        let again = #"{"event":"SEND_MESSAGE","ref":"again","data":{"conversation_id":"\#(chat.id)","text":"m5","client_msg_id":"k5"}}"#
        #expect(chat.raw.sendBytes(chat.messages(1...20) + RawWebSocket.frame(opcode: 0x1, payload: Array(again.utf8))))
        let answers = try chat.answers(21)
        #expect(answers.map(\.ref) == (1...20).map { "r\($0)" } + ["again"])
        #expect(answers.allSatisfy { $0.event == "ACK" }, "\(answers.filter { $0.event == "ERROR" }.map(\.data))")
        #expect(answers[20].data["duplicate"] as? Bool == true)
        #expect(answers[20].data["message_id"] as? String == answers[4].data["message_id"] as? String)
        #expect(try await chat.stored() == (0...20).map { "m\($0)" })
        let calls = CallBatch.written.load(ordering: .relaxed) - before.0, messages = CallBatch.callsWritten.load(ordering: .relaxed) - before.1
        #expect(messages == 21, "every message went out batched")
        #expect(calls < messages, "messages shared an FCALL: \(calls) calls for \(messages) messages")
    }

    /// Holds Redis's writes (FCALL send among them) for a moment, so that the messages sent meanwhile
    /// stay unanswered and the socket reaches `maxSendsInFlight` whatever the timing.
    static func pauseRedisWrites(_ chat: Chat) async throws {
        #expect(try await chat.redis.send("CLIENT", "PAUSE", "300", "WRITE") == .simpleString("OK"))
    }

    @Test("more messages in one write than may be in flight: the rest wait on the event loop for replies, the task handles none, all in order")
    func pastTheInFlightLimit() async throws {
        let chat = try await Chat.open()
        defer { Task { await chat.close() } }
        let count = SocketConnection.maxSendsInFlight * 4
        let before = (SocketConnection.sentWithoutTask.load(ordering: .relaxed), SocketConnection.handledByTask.load(ordering: .relaxed),
                      SocketConnection.sentAfterWaitingForRoom.load(ordering: .relaxed))
        try await Self.pauseRedisWrites(chat)
        #expect(chat.raw.sendBytes(chat.messages(1...count)))
        let answers = try chat.answers(count)
        #expect(answers.map(\.ref) == (1...count).map { "r\($0)" })
        #expect(answers.allSatisfy { $0.event == "ACK" }, "\(answers.filter { $0.event == "ERROR" }.map(\.data))")
        #expect(SocketConnection.sentWithoutTask.load(ordering: .relaxed) - before.0 == count, "every message went out without awaiting another's reply")
        #expect(SocketConnection.sentAfterWaitingForRoom.load(ordering: .relaxed) - before.2 > 0,
                "the messages past the limit waited, and the event loop sent them as replies came")
        #expect(SocketConnection.handledByTask.load(ordering: .relaxed) - before.1 == 0, "the task handled none")
        #expect(try await chat.stored() == (0...count).map { "m\($0)" })
    }

    @Test("messages that queued behind another event go out without awaiting each reply once the task reaches them, in order")
    func messagesBehindAnotherEvent() async throws {
        let chat = try await Chat.open()
        defer { Task { await chat.close() } }
        let before = (SocketConnection.sentWithoutTask.load(ordering: .relaxed), SocketConnection.handledByTask.load(ordering: .relaxed),
                      SocketConnection.sentAfterWaitingForRoom.load(ordering: .relaxed))
        // More than may be in flight while Redis holds the replies: the task (or the event loop, once
        // the task found the queue empty) sends until the limit, the event loop the rest.
        let count = SocketConnection.maxSendsInFlight * 3
        let ping = #"{"event":"PING","ref":"ping","data":{}}"#
        try await Self.pauseRedisWrites(chat)
        #expect(chat.raw.sendBytes(RawWebSocket.frame(opcode: 0x1, payload: Array(ping.utf8)) + chat.messages(1...count)))
        let answers = try chat.answers(count)
        #expect(answers.map(\.ref) == (1...count).map { "r\($0)" })
        #expect(answers.allSatisfy { $0.event == "ACK" }, "\(answers.filter { $0.event == "ERROR" }.map(\.data))")
        #expect(SocketConnection.handledByTask.load(ordering: .relaxed) - before.1 == 1, "the task handled the PING alone")
        #expect(SocketConnection.sentWithoutTask.load(ordering: .relaxed) - before.0 == count)
        #expect(SocketConnection.sentAfterWaitingForRoom.load(ordering: .relaxed) - before.2 > 0,
                "the messages past the limit waited, and the event loop sent them as replies came")
        #expect(try await chat.stored() == (0...count).map { "m\($0)" })
    }

    @Test("HELPDESK_REDIS_MAX_BATCH sets the messages one FCALL may carry: 32 unless set, 1 to 1,000")
    func maxBatchSetting() throws {
        let env = ["HELPDESK_JWT_SECRET": "0123456789abcdef0123"]
        #expect(try ServerConfiguration.fromEnvironment(env).redisMaxBatch == 32)
        #expect(try ServerConfiguration.fromEnvironment(env.merging(["HELPDESK_REDIS_MAX_BATCH": "1"]) { $1 }).redisMaxBatch == 1)
        #expect(throws: HelpDeskError.self) { try ServerConfiguration.fromEnvironment(env.merging(["HELPDESK_REDIS_MAX_BATCH": "0"]) { $1 }) }
        #expect(throws: HelpDeskError.self) { try ServerConfiguration.fromEnvironment(env.merging(["HELPDESK_REDIS_MAX_BATCH": "1001"]) { $1 }) }
    }

    @Test("HELPDESK_REDIS_BATCHES_IN_FLIGHT sets the batches a connection may have unanswered: 1 unless set, 0 (never wait) to 1,000")
    func batchesInFlightSetting() throws {
        let env = ["HELPDESK_JWT_SECRET": "0123456789abcdef0123"]
        func with(_ value: String) throws -> Int {
            try ServerConfiguration.fromEnvironment(env.merging(["HELPDESK_REDIS_BATCHES_IN_FLIGHT": value]) { $1 }).redisBatchesInFlight
        }
        #expect(try ServerConfiguration.fromEnvironment(env).redisBatchesInFlight == 1)
        #expect(try with("0") == 0)
        #expect(try with("4") == 4)
        for bad in ["-1", "1001", "two"] {
            #expect(throws: HelpDeskError.self) { try with(bad) }
        }
    }

    @Test("a frame for the task path after messages in flight acts after them (leaving the queue does not overtake them)")
    func taskWaitsForMessagesInFlight() async throws {
        let chat = try await Chat.open()
        defer { Task { await chat.close() } }
        // With the library gone the messages take long (each is sent again through the registry,
        // one after another), so a CANCEL that did not wait for them would end the chat first.
        #expect(try await chat.redis.send("FUNCTION", "FLUSH") == .simpleString("OK"))
        // CANCEL ends the chat: a message it overtook would be refused as conversation_closed.
        let cancel = #"{"event":"CANCEL","ref":"cancel","data":{"conversation_id":"\#(chat.id)"}}"#
        #expect(chat.raw.sendBytes(chat.messages(1...20) + RawWebSocket.frame(opcode: 0x1, payload: Array(cancel.utf8))))
        let answers = try chat.answers(21)
        #expect(answers.map(\.ref) == (1...20).map { "r\($0)" } + ["cancel"])
        #expect(answers.allSatisfy { $0.event == "ACK" }, "no message met a closed conversation: \(answers.filter { $0.event == "ERROR" }.map(\.data))")
        #expect(try await chat.stored().count == 21)
    }

    @Test("Redis lost the function library (restart without persistence): messages in flight are sent again, in order, and none is lost")
    func libraryGone() async throws {
        let chat = try await Chat.open()
        defer { Task { await chat.close() } }
        let resentBefore = SocketConnection.resentAfterMissingLibrary.load(ordering: .relaxed)
        // Every test's library goes; the registry of each loads it again on its next call. Another
        // node's background call (a heartbeat, the previous test's node shutting down) can load it
        // again before the burst reaches Redis: then the burst goes through as usual and the next
        // round tries again.
        var sent = 0
        for _ in 1...5 where SocketConnection.resentAfterMissingLibrary.load(ordering: .relaxed) == resentBefore {
            #expect(try await chat.redis.send("FUNCTION", "FLUSH") == .simpleString("OK"))
            let burst = (sent + 1)...(sent + 30)
            #expect(chat.raw.sendBytes(chat.messages(burst)))
            let answers = try chat.answers(30)
            #expect(answers.map(\.ref) == burst.map { "r\($0)" })
            #expect(answers.allSatisfy { $0.event == "ACK" }, "\(answers.filter { $0.event == "ERROR" }.map(\.data))")
            sent += 30
        }
        #expect(SocketConnection.resentAfterMissingLibrary.load(ordering: .relaxed) - resentBefore > 0, "the hot path met the missing library")
        #expect(try await chat.stored() == (0...sent).map { "m\($0)" })
    }

    @Test("the server's own failures (a script that failed on a message) do not count against the socket's error budget")
    func serverFailuresDoNotCount() async throws {
        let chat = try await Chat.open()
        defer { Task { await chat.close() } }
        // The conversation's dedupe key is no longer a hash: send.lua fails on every message.
        let dedupe = chat.node.services.keys.dedupe(chat.id)
        _ = try await chat.redis.send("DEL", dedupe)
        _ = try await chat.redis.send("SET", dedupe, "not a hash")
        let count = WebSocketController.errorBudgetPerMinute + 10
        #expect(chat.raw.sendBytes(chat.messages(1...count)))
        let answers = try chat.answers(count)
        #expect(answers.allSatisfy { $0.event == "ERROR" && $0.data["code"] as? String == "internal_error" }, "\(answers.prefix(3).map(\.data))")
        // still open: a PING after them is answered (a socket past its budget would be closed with 1008)
        #expect(chat.raw.sendEvent("PING", [:], ref: "marker"))
        var pong = false
        while let frame = chat.raw.readFrame(), frame.opcode == 0x1 {
            if String(decoding: frame.payload, as: UTF8.self).contains(#""event":"PONG""#) { pong = true; break }
        }
        #expect(pong, "the socket answered the PING after \(count) failures")
    }

    @Test("messages Redis refuses count against the error budget: a client that keeps sending into a closed chat is closed (1008)")
    func refusalsCountAgainstTheBudget() async throws {
        let chat = try await Chat.open()
        defer { Task { await chat.close() } }
        #expect(chat.raw.sendEvent("CANCEL", ["conversation_id": chat.id], ref: "cancel"))
        _ = try chat.answers(1)
        let before = SocketConnection.sentWithoutTask.load(ordering: .relaxed)
        // Each passes the node's own checks; send.lua refuses it (conversation_closed).
        #expect(chat.raw.sendBytes(chat.messages(1...(WebSocketController.errorBudgetPerMinute + 10))))
        let close = try #require(chat.raw.readClose(), "the server closed the socket")
        #expect(close.count >= 2 && Int(close[0]) << 8 | Int(close[1]) == 1008)
        #expect(SocketConnection.sentWithoutTask.load(ordering: .relaxed) - before > 0, "the refusals came back to the hot path")
    }
}

import Foundation
import HelpDeskCore
import PostgresClient
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("archive and outages", .serialized)
struct ResilienceTests {
    @Test("a flusher killed mid-flush: another node finishes it, with no duplicate rows")
    func flusherTakeover() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_OUTBOX_CLAIM_IDLE": "1"])
        let a = try await cluster.startNode("node-a")
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        _ = try await socket.request("PICK", [:])
        for i in 0..<10 {
            _ = try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "m\(i)", "client_msg_id": "m\(i)"])
        }
        await socket.close()
        await cluster.stop(a)

        // No node runs: the conversation closes, and a flusher "dead-node" takes its outbox entry,
        // writes the archive (the commit happened) and dies before XACK.
        let redis = cluster.redis()
        let scripts = try RedisScripts(directory: TestEnvironment.repositoryRoot + "/lua")
        let keys = RedisKeys(prefix: cluster.prefix)
        let store = LiveStore(redis: redis, scripts: scripts, keys: keys, clock: { Date() })
        try await store.close(conversationID: chat.id, actor: .init(id: agent.id, role: .agent, name: "agent"), resolution: "done")
        _ = try? await redis.send("XGROUP", "CREATE", keys.outbox, "flushers", "0", "MKSTREAM")
        let taken = try await redis.send("XREADGROUP", "GROUP", "flushers", "dead-node", "COUNT", "10", "STREAMS", keys.outbox, ">")
        #expect(OutboxFlusher.entries(taken.array?.first?.array?[1] ?? .null).count == 1)
        let pg = cluster.postgres()
        defer { Task { await pg.shutdown() } }
        let hash = try await redis.send("HGETALL", keys.conversation(chat.id)).fieldMap
        let messages = try await store.messages(chat.id, after: nil)
        try await ArchiveStore(pool: pg).write(conversation: hash, messages: messages, events: [])

        // Another node starts, finds the entry idle, takes it over and flushes it again.
        _ = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        try await eventually("entry acknowledged") {
            (try await redis.send("XPENDING", keys.outbox, "flushers").array?.first?.int ?? 1) == 0
        }
        #expect(try await pg.query("SELECT count(*) AS n FROM messages WHERE conversation_id = $1::uuid", [chat.id]).first?.decode("n", as: Int.self) == 10)
        #expect(try await pg.query("SELECT count(*) AS n FROM conversations WHERE id = $1::uuid", [chat.id]).first?.decode("n", as: Int.self) == 1)
        #expect(try await pg.query("SELECT count(*) AS n FROM conversation_events WHERE conversation_id = $1::uuid", [chat.id]).first?.decode("n", as: Int.self) ?? 0 >= 3,
                "the second flush added the events the first left out")
        // The Redis keys now expire instead of living forever.
        #expect(try await redis.send("TTL", keys.messages(chat.id)).int ?? -1 > 0)
    }

    @Test("PostgreSQL stopped while 20 conversations close: all 20 archived after it returns")
    func postgresOutage() async throws {
        let postgres = try await offPool { try PrivatePostgres() }
        try await offPool { try postgres.start() }
        defer { Task.detached { _ = try? await offPool { postgres.destroy() } } }
        let cluster = try await TestCluster(databaseURL: postgres.url)
        let a = try await cluster.startNode("node-a")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", capacity: 20, on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        var ids: [String] = []
        for _ in 0..<20 {
            let chat = try await cluster.startChat(on: a)
            #expect(try await socket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
            #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "hello", "client_msg_id": "h"]).event == "ACK")
            ids.append(chat.id)
        }
        try await offPool { try postgres.stop() }
        for id in ids {
            // Closing touches only Redis: it works while PostgreSQL is down.
            #expect(try await socket.request("CLOSE_CONVERSATION", ["conversation_id": id]).event == "ACK")
        }
        try await Task.sleep(for: .seconds(1))
        let redis = cluster.redis()
        #expect(try await redis.send("XLEN", cluster.prefix + "outbox").int == 20, "waiting in the outbox")
        try await offPool { try postgres.start() }
        let pg = PostgresPool(url: postgres.url, size: 1)
        defer { Task { await pg.shutdown() } }
        try await eventually("all 20 archived", timeout: .seconds(40)) {
            (try? await pg.query("SELECT count(*) AS n FROM conversations").first?.decode("n", as: Int.self)) == 20
        }
        #expect(try await pg.query("SELECT count(*) AS n FROM messages").first?.decode("n", as: Int.self) == 20)
        await socket.close()
    }

    @Test("pub/sub connections dropped: a message published in the gap reaches a client that re-joins on RESYNC from the last message it has, though messages came after the reconnect")
    func pubSubGap() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.activeChat(customerOn: a, agentOn: b)
        let (customer, agentSocket) = (chat.customer, chat.agentSocket)
        _ = try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "before", "client_msg_id": "m0"])
        let before = try await customer.next("NEW_MESSAGE") { $0.message?["text"] as? String == "before" }
        let beforeID = try #require((before.message?["id"] as? String).flatMap { StreamID($0) })
        let redis = cluster.redis()
        defer { Task { await redis.close() } }

        // Every node's pub/sub connection goes (only this test's nodes run now); the agent writes
        // at once, while node A has no subscription (it reconnects after its backoff, 50 ms).
        _ = try await redis.send("CLIENT", "KILL", "TYPE", "pubsub")
        _ = try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "in the gap", "client_msg_id": "m1"])
        _ = try await customer.next("RESYNC", timeout: .seconds(15))
        // After the reconnect, before the client re-joins: without holding back, this one would
        // reach it live and move its resume point past the gap.
        _ = try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "after", "client_msg_id": "m2"])
        try await Task.sleep(for: .milliseconds(300))
        // The client re-joins from the newest message it has, as the pages do.
        let seen = customer.drain().filter { $0.event == "NEW_MESSAGE" || $0.event == "HISTORY" }
        let ids = seen.flatMap { f in f.event == "HISTORY" ? (f.data["messages"] as? [[String: Any]] ?? []) : [f.message ?? [:]] }
            .compactMap { $0["id"] as? String }
        let resumeFrom = (ids.compactMap { StreamID($0) } + [beforeID]).max()!.text
        #expect(try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id, "last_message_id": resumeFrom]).event == "ACK")
        var texts: [String] = []
        try await eventually("the gap's message and the one after it") {
            for frame in customer.drain() where frame.event == "HISTORY" || frame.event == "NEW_MESSAGE" {
                let messages = frame.event == "HISTORY" ? frame.data["messages"] as? [[String: Any]] ?? [] : [frame.message ?? [:]]
                texts += messages.compactMap { $0["text"] as? String }
            }
            return texts.contains("in the gap") && texts.contains("after")
        }
        #expect(texts.filter { $0 == "in the gap" }.count == 1 && texts.filter { $0 == "after" }.count == 1, "\(texts)")
        await customer.close(); await agentSocket.close()
    }

    @Test("a JOIN that ends while a pub/sub loss is not resynced yet stays held; the re-join after RESYNC goes live")
    func joinDuringLoss() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode("node-a")
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.activeChat(customerOn: a, agentOn: a)
        let (customer, agentSocket) = (chat.customer, chat.agentSocket)
        let hub = a.services.parts.hub
        let session = try #require(hub.allSessions().first { $0.caller.role == .customer && $0.caller.conversationID == chat.id })
        #expect(!hub.holdsFrames(of: session, conversationID: chat.id))

        hub.holdLiveMessages()  // what the subscriber's loss handler does
        #expect(hub.holdsFrames(of: session, conversationID: chat.id))
        // A JOIN before the RESYNC: its history may end before the gap, so it must not go live.
        #expect(try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        #expect(hub.holdsFrames(of: session, conversationID: chat.id))

        hub.resyncAll()  // what the reconnect does once every subscription is confirmed
        _ = try await customer.next("RESYNC")
        #expect(try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        #expect(!hub.holdsFrames(of: session, conversationID: chat.id))
        #expect(try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "live again", "client_msg_id": "l"]).event == "ACK")
        _ = try await customer.next("NEW_MESSAGE") { $0.message?["text"] as? String == "live again" }
        await customer.close(); await agentSocket.close()
    }

    @Test("Redis restarted during a chat: nodes resubscribe, clients are told to resync, the chat goes on")
    func redisRestart() async throws {
        let redisServer = PrivateRedis(persistent: true)
        try await redisServer.start()
        defer { redisServer.kill() }
        let cluster = try await TestCluster(redisURL: redisServer.url)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: b)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        let customer = try await TestSocket.connect(b.wsURL, token: chat.token, label: "customer")
        _ = try await agentSocket.request("PICK", [:])
        _ = try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "before", "client_msg_id": "b"])
        let before = try await agentSocket.next("NEW_MESSAGE")
        let lastSeen = try #require(before.message?["id"] as? String)

        await redisServer.stop()
        try await redisServer.start()
        _ = try await agentSocket.next("RESYNC", timeout: .seconds(15))
        _ = try await customer.next("RESYNC", timeout: .seconds(15))
        // Clients re-join from the last message they saw; the chat carries on both ways.
        #expect(try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id, "last_message_id": lastSeen]).event == "ACK")
        #expect(try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id, "last_message_id": lastSeen]).event == "ACK")
        #expect(try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "after", "client_msg_id": "a"]).event == "ACK")
        #expect(try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "reply", "client_msg_id": "r"]).event == "ACK")
        let got = try await agentSocket.next("NEW_MESSAGE") { $0.message?["text"] as? String == "after" }
        #expect(got.message?["sender"] != nil)
        _ = try await customer.next("NEW_MESSAGE") { $0.message?["text"] as? String == "reply" }
        await agentSocket.close(); await customer.close()
    }
}

import Foundation
import HelpDeskCore
import Logging
import PostgresClient
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer

/// A node's stores and a flusher that the test drives by hand (no background flusher runs, so
/// the test decides when a flush happens: "holding" the flusher is simply not calling it).
private struct FlushRig {
    let node: TestNode
    let store: LiveStore
    let redis: RedisClient
    let keys: RedisKeys
    let pg: PostgresPool
    var flusher: OutboxFlusher

    static func make(_ overrides: [String: String] = [:], consumer: String = "test-flusher") async throws -> FlushRig {
        let node = try await TestNode.make(overrides)
        let s = node.services
        try await s.scripts.loadAll(on: s.redis)
        var flusher = OutboxFlusher(services: s)
        flusher = OutboxFlusher(redis: s.redis, scripts: s.scripts, archive: s.parts.archive, keys: s.keys, consumer: consumer,
                                claimIdle: flusher.claimIdle, retention: flusher.retention, logger: s.logger)
        let rig = FlushRig(node: node, store: s.parts.store, redis: s.redis, keys: s.keys, pg: s.postgres, flusher: flusher)
        _ = try? await s.redis.send("XGROUP", "CREATE", s.keys.outbox, OutboxFlusher.group, "0", "MKSTREAM")
        return rig
    }

    /// A waiting chat with `texts` sent by its customer.
    func chat(_ texts: [String], email: String = "c\(TestEnvironment.uniqueID())@example.com") async throws -> String {
        let chat = try await store.enqueue(name: "Zoë \"Q\" O'Neil", email: email, categoryID: "0", subject: "s", priority: "normal")
        let customer = Caller(id: chat.customerID, role: .customer, name: "Zoë", conversationID: chat.conversationID)
        for (n, text) in texts.enumerated() {
            _ = try await store.send(conversationID: chat.conversationID, sender: customer, text: text, clientMsgID: "m\(n)", isInternal: false)
        }
        return chat.conversationID
    }

    /// Closes through close.lua, then makes the close look as the epoch-writing close.lua leaves
    /// it (`close_epoch` incremented, outbox entry with `epoch`), whichever close.lua is installed.
    @discardableResult
    func closeWithEpoch(_ id: String) async throws -> String {
        try await store.close(conversationID: id, actor: Caller(id: "1", role: .admin, name: "admin"), resolution: "done")
        let hash = try await redis.send("HGETALL", keys.conversation(id)).fieldMap
        let entries = OutboxEntry.parse(try await redis.send("XRANGE", keys.outbox, "-", "+"))
        if let written = entries.last(where: { $0.conversationID == id && $0.epoch != nil }), written.epoch == hash["close_epoch"] {
            return written.epoch!
        }
        // The close.lua of this branch writes no epoch yet: simulate the new one.
        for e in entries where e.conversationID == id { _ = try await redis.send("XDEL", keys.outbox, e.id) }
        let epoch = String(try await redis.send("HINCRBY", keys.conversation(id), "close_epoch", "1").int ?? 0)
        _ = try await redis.send("XADD", keys.outbox, "*", "conversation_id", id, "epoch", epoch)
        return epoch
    }

    /// Reads every new outbox entry as this flusher and flushes it once.
    func flushOnce(failures: inout [String: Int]) async throws {
        let reply = try await redis.send("XREADGROUP", "GROUP", OutboxFlusher.group, flusher.consumer, "COUNT", "1000", "STREAMS", keys.outbox, ">")
        var entries = OutboxEntry.parse(reply.array?.first?.array?[1] ?? .null)
        // plus what is still pending for this consumer (a failed try)
        let pending = try await redis.send("XREADGROUP", "GROUP", OutboxFlusher.group, flusher.consumer, "COUNT", "1000", "STREAMS", keys.outbox, "0")
        let old = OutboxEntry.parse(pending.array?.first?.array?[1] ?? .null)
        entries = old + entries.filter { e in !old.contains(e) }
        try await flusher.flushPage(entries, failures: &failures)
    }

    func flushOnce() async throws {
        var failures: [String: Int] = [:]
        try await flushOnce(failures: &failures)
    }

    func count(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> Int {
        try await pg.query(sql, parameters).first!.decode("n")
    }

    func ttl(_ key: String) async throws -> Int { try await redis.send("PTTL", key).int ?? -3 }
    func pendingCount() async throws -> Int { try await redis.send("XPENDING", keys.outbox, OutboxFlusher.group).array?.first?.int ?? -1 }
}

@Suite("archive flush", .serialized)
struct ArchiveFlushTests {
    /// Texts that break naive array literals, C strings or trimming.
    static let awkward = [
        "plain", "a,b", "{braces}", "\"quoted\"", "back\\slash", "\\\"", "NULL", "", "  spaced  ", "line\nbreak\r\n\ttab",
        "emoji 👨‍👩‍👧‍👦 and ß", "x" + String(repeating: "é", count: 3000), "'single'", "semi;colon", "\u{7F}\u{1B}[31m",
    ]

    @Test("several conversations in one page: every message archived byte for byte, once; a second flush duplicates nothing")
    func batchedRoundTrip() async throws {
        let rig = try await FlushRig.make()
        var ids: [String] = []
        for i in 0..<5 { ids.append(try await rig.chat(Self.awkward.map { "\(i):\($0)" })) }
        // two chats of the same customer in one page: one customer row, both conversations
        let shared = "same\(TestEnvironment.uniqueID())@example.com"
        let first = try await rig.chat(["first"], email: shared)
        try await rig.closeWithEpoch(first)
        ids.append(try await rig.chat(["second"], email: shared))
        for id in ids { try await rig.closeWithEpoch(id) }
        ids.append(first)
        try await rig.flushOnce()

        #expect(try await rig.count("SELECT count(*) AS n FROM conversations") == 7)
        #expect(try await rig.count("SELECT count(*) AS n FROM customers") == 6)
        #expect(try await rig.count("SELECT count(*) AS n FROM messages") == 5 * Self.awkward.count + 2)
        for (i, id) in ids.prefix(5).enumerated() {
            let rows = try await rig.pg.query("SELECT body, sender_name, (extract(epoch FROM sent_at) * 1000)::bigint AS sent FROM messages WHERE conversation_id = $1::uuid ORDER BY ms, seq", [id]).rows
            #expect(try rows.map { try $0.decode("body", as: String.self) } == Self.awkward.map { "\(i):\($0)" })
            #expect(try rows.first?.decode("sender_name", as: String.self) == "Zoë")
            let live = try await rig.store.messages(id, after: nil)
            #expect(try rows.map { try $0.decode("sent", as: Int64.self) } == live.map(\.sentAt), "timestamps to the millisecond")
        }
        let closedAt: Int64 = try await rig.pg.query("SELECT (extract(epoch FROM closed_at) * 1000)::bigint AS t FROM conversations WHERE id = $1::uuid", [ids[0]]).first!.decode("t")
        #expect(String(closedAt) == (try await rig.redis.send("HGET", rig.keys.conversation(ids[0]), "closed_at").string))
        #expect(try await rig.pendingCount() == 0)
        #expect(try await rig.redis.send("XLEN", rig.keys.outbox).int == 0)

        // Flushing the same conversations again (a flusher that died before XACK) changes nothing.
        for id in ids { _ = try await rig.redis.send("XADD", rig.keys.outbox, "*", "conversation_id", id) }
        try await rig.flushOnce()
        #expect(try await rig.count("SELECT count(*) AS n FROM messages") == 5 * Self.awkward.count + 2)
        #expect(try await rig.count("SELECT count(*) AS n FROM conversations") == 7)
    }

    @Test("a conversation longer than one stream page is archived whole")
    func pagedStreams() async throws {
        let rig = try await FlushRig.make()
        let id = try await rig.chat([])
        var commands: [[String]] = []
        for n in 0..<2_345 {
            commands.append(["XADD", rig.keys.messages(id), "*", "sender_id", "c", "sender_role", "customer", "sender_name", "C",
                             "text", "m\(n)", "client_msg_id", "m\(n)", "internal", "0", "sent_at", "1700000000000"])
        }
        _ = try await rig.redis.pipeline(commands)
        try await rig.closeWithEpoch(id)
        try await rig.flushOnce()
        #expect(try await rig.count("SELECT count(*) AS n FROM messages WHERE conversation_id = $1::uuid", [id]) == 2_345)
    }

    @Test("flush racing a reopen: the reopened chat is neither archived nor expired; its next close is")
    func reopenRace() async throws {
        let rig = try await FlushRig.make()
        let id = try await rig.chat(["hello"])
        try await rig.closeWithEpoch(id)
        // The flusher is held (PostgreSQL down, or just slow) while the customer comes back.
        _ = try await rig.store.reopen(conversationID: id, actor: Caller(id: "1", role: .admin, name: "admin"))
        #expect(try await rig.redis.send("HGET", rig.keys.conversation(id), "status").string == "waiting")
        try await rig.flushOnce()
        #expect(try await rig.count("SELECT count(*) AS n FROM conversations") == 0, "a live chat is not archived")
        for key in [rig.keys.conversation(id), rig.keys.messages(id), rig.keys.events(id), rig.keys.dedupe(id)] {
            #expect(try await rig.ttl(key) == -1, "\(key) must not expire while the chat is live")
        }
        #expect(try await rig.pendingCount() == 0, "the stale entry is acknowledged")

        // Its next close archives it, and only now do the keys expire.
        _ = try await rig.redis.send("HSET", rig.keys.conversation(id), "status", "waiting")
        try await rig.closeWithEpoch(id)
        try await rig.flushOnce()
        #expect(try await rig.count("SELECT count(*) AS n FROM conversations WHERE id = $1::uuid", [id]) == 1)
        #expect(try await rig.ttl(rig.keys.messages(id)) > 0)
    }

    @Test("archived.lua: a reopen between the archive write and the expiry keeps the keys")
    func expiryChecksEpoch() async throws {
        let rig = try await FlushRig.make()
        let id = try await rig.chat(["hello"])
        let epoch = try await rig.closeWithEpoch(id)
        let keys = [rig.keys.conversation(id), rig.keys.messages(id), rig.keys.events(id), rig.keys.dedupe(id), rig.keys.callOfConversation(id)]
        let scripts = rig.node.services.scripts
        _ = try await rig.redis.send("HSET", keys[4], "call_id", "x")
        // Reopened after the flusher read it: status waiting.
        _ = try await rig.redis.send("HSET", keys[0], "status", "waiting")
        #expect(try await scripts.run("archived", keys: keys, arguments: [epoch, "60000"], on: rig.redis).int == 0)
        #expect(try await rig.ttl(keys[1]) == -1)
        // Closed again (a newer epoch): the old entry's expiry still does nothing.
        _ = try await rig.redis.send("HSET", keys[0], "status", "closed", "close_epoch", String(Int(epoch)! + 1))
        #expect(try await scripts.run("archived", keys: keys, arguments: [epoch, "60000"], on: rig.redis).int == 0)
        #expect(try await rig.ttl(keys[0]) == -1)
        // The current close expires every key, the call's too.
        #expect(try await scripts.run("archived", keys: keys, arguments: [String(Int(epoch)! + 1), "60000"], on: rig.redis).int == 1)
        for key in keys { #expect(try await rig.ttl(key) > 0, "\(key)") }
    }

    @Test("data errors are dead-lettered after a few tries without holding back the rest; replay brings them back")
    func deadLetterAndReplay() async throws {
        let rig = try await FlushRig.make()
        let good = try await rig.chat(["fine"])
        let poison = try await rig.chat(["bad"])
        try await rig.closeWithEpoch(good)
        let epoch = try await rig.closeWithEpoch(poison)
        _ = try await rig.redis.send("HSET", rig.keys.conversation(poison), "rating", "9") // CHECK (rating BETWEEN 1 AND 5): 23514
        var failures: [String: Int] = [:]
        await #expect(throws: OutboxFlusher.RetryLater.self) { try await rig.flushOnce(failures: &failures) }
        #expect(try await rig.count("SELECT count(*) AS n FROM conversations WHERE id = $1::uuid", [good]) == 1, "the good one went through at once")
        #expect(try await rig.pendingCount() == 1, "the poison one waits for another try")
        await #expect(throws: OutboxFlusher.RetryLater.self) { try await rig.flushOnce(failures: &failures) }
        try await rig.flushOnce(failures: &failures) // third refusal: dead-lettered
        #expect(try await rig.pendingCount() == 0)
        let admin = OutboxAdmin(redis: rig.redis, keys: rig.keys)
        let dead = try await admin.dead()
        #expect(dead.count == 1)
        #expect(dead.first?.conversationID == poison)
        #expect(dead.first?.sqlState == "23514")
        #expect(dead.first?.epoch == epoch)

        // Unknown ids move nothing.
        await #expect(throws: RedisError.self) { _ = try await admin.replay(["1-1"]) }
        #expect(try await admin.dead().count == 1)
        // The operator fixes the data and replays.
        _ = try await rig.redis.send("HSET", rig.keys.conversation(poison), "rating", "5")
        #expect(try await admin.replay([dead[0].id]) == [dead[0].id])
        #expect(try await admin.dead().isEmpty)
        try await rig.flushOnce()
        #expect(try await rig.count("SELECT count(*) AS n FROM conversations WHERE id = $1::uuid AND rating = 5", [poison]) == 1)
    }

    @Test("a transient SQLSTATE (lock timeout) is retried, never dead-lettered")
    func transientIsRetried() async throws {
        let (schema, url) = try await TestEnvironment.makeSchema()
        // lock_timeout makes a blocked write fail with 55P03 instead of waiting.
        let rig = try await FlushRig.make(["HELPDESK_DATABASE_URL": url + "%20-clock_timeout%3D200"])
        _ = schema
        let id = try await rig.chat(["hello"])
        try await rig.closeWithEpoch(id)
        let locker = PostgresPool(url: url, size: 1)
        defer { Task { await locker.shutdown() } }
        let hold = Task {
            try await locker.transaction { c in
                try c.query("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
                Thread.sleep(forTimeInterval: 1.5)
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        var failures: [String: Int] = [:]
        for _ in 0..<4 {
            let error = await #expect(throws: PostgresError.self) { try await rig.flushOnce(failures: &failures) }
            #expect(error?.sqlState == "55P03")
            #expect(error?.kind == .transient)
        }
        #expect(failures.isEmpty, "outages do not count toward the dead letter")
        #expect(try await OutboxAdmin(redis: rig.redis, keys: rig.keys).dead().isEmpty)
        try await hold.value
        try await rig.flushOnce(failures: &failures)
        #expect(try await rig.count("SELECT count(*) AS n FROM conversations") == 1)
    }

    @Test("a flush longer than the claim idle time is not taken over by another flusher")
    func longFlushKeepsItsClaim() async throws {
        let (_, url) = try await TestEnvironment.makeSchema()
        let rigA = try await FlushRig.make(["HELPDESK_DATABASE_URL": url, "HELPDESK_OUTBOX_CLAIM_IDLE": "0.6"], consumer: "node-a")
        let id = try await rigA.chat(["slow"])
        try await rigA.closeWithEpoch(id)
        let locker = PostgresPool(url: url, size: 1)
        defer { Task { await locker.shutdown() } }
        let hold = Task {
            try await locker.transaction { c in
                try c.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
                Thread.sleep(forTimeInterval: 2.5)
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        let flushA = Task { try await rigA.flushOnce() }
        try await Task.sleep(for: .milliseconds(100))
        let deliveries = try await rigA.redis.send("XPENDING", rigA.keys.outbox, OutboxFlusher.group, "-", "+", "10").array?.first?.array?[3].int
        #expect(deliveries != nil)
        // node-b's flusher runs XAUTOCLAIM (min idle 0.6 s) while node-a is stuck in PostgreSQL.
        var b = rigA.flusher
        b = OutboxFlusher(redis: rigA.redis, scripts: rigA.node.services.scripts, archive: rigA.node.services.parts.archive, keys: rigA.keys,
                          consumer: "node-b", claimIdle: .milliseconds(600), retention: b.retention, logger: b.logger)
        for _ in 0..<4 {
            try await Task.sleep(for: .milliseconds(500))
            var failures: [String: Int] = [:]
            try await b.claimAll(failures: &failures)
            let pending = try await rigA.redis.send("XPENDING", rigA.keys.outbox, OutboxFlusher.group, "-", "+", "10")
            let first = pending.array?.first?.array
            #expect(first?[1].string == "node-a", "still node-a's")
            #expect(first?[3].int == deliveries, "never delivered to node-b")
        }
        try await hold.value
        try await flushA.value
        #expect(try await rigA.count("SELECT count(*) AS n FROM messages") == 1)
        #expect(try await rigA.pendingCount() == 0)
    }

    @Test("consumers of restarted nodes with nothing pending are removed; live ones and ones with pending entries stay")
    func idleConsumersRemoved() async throws {
        var rig = try await FlushRig.make()
        rig.flusher.consumerIdleLimit = .milliseconds(300)
        for _ in 0..<3 { try await rig.closeWithEpoch(try await rig.chat(["x"])) }
        /// Redis creates a consumer at its first delivery.
        func take(_ consumer: String, ack: Bool) async throws {
            let reply = try await rig.redis.send("XREADGROUP", "GROUP", OutboxFlusher.group, consumer, "COUNT", "1", "STREAMS", rig.keys.outbox, ">")
            let entries = OutboxEntry.parse(reply.array?.first?.array?[1] ?? .null)
            if ack { _ = try await rig.redis.send(["XACK", rig.keys.outbox, OutboxFlusher.group] + entries.map(\.id)) }
        }
        // "old-1" finished its work before its node restarted; "old-2" died holding an entry.
        try await take("old-1", ack: true)
        try await take("old-2", ack: false)
        try await Task.sleep(for: .milliseconds(400))
        try await take("fresh", ack: true)
        await rig.flusher.removeIdleConsumers()
        let names = Set((try await rig.redis.send("XINFO", "CONSUMERS", rig.keys.outbox, OutboxFlusher.group).array ?? []).compactMap { $0.array?[1].string })
        #expect(names == ["old-2", "fresh"])
    }

    @Test("HELPDESK_FLUSH_ENABLED=0 holds archiving off; bad values are refused")
    func flushDisabled() async throws {
        var env = ["HELPDESK_JWT_SECRET": "0123456789abcdef0123", "HELPDESK_FLUSH_ENABLED": "0"]
        #expect(try ServerConfiguration.fromEnvironment(env).flushEnabled == false)
        env["HELPDESK_FLUSH_ENABLED"] = "maybe"
        #expect(throws: HelpDeskError.self) { try ServerConfiguration.fromEnvironment(env) }
        #expect(try ServerConfiguration.fromEnvironment(["HELPDESK_JWT_SECRET": "0123456789abcdef0123"]).flushEnabled)
    }
}

import Foundation
import HelpDeskCore
import Logging
import PostgresClient
import RedisClient

/// `helpdesk-bench flush`: closed conversations prepared in a real Redis through the server's own
/// scripts (enqueue, send, close) while no flusher runs, then one flusher archives them and is timed.
public struct FlushBenchmark: Sendable {
    public struct Result: Sendable {
        public var conversations: Int
        public var messages: Int
        public var elapsed: Duration
        public var stats: FlushStats.Snapshot
        /// Rows found in PostgreSQL afterwards (to show nothing was lost or doubled).
        public var archivedMessages: Int
    }

    let services: NodeServices

    /// - Parameter configuration: its key prefix and database should be the benchmark's own.
    public init(configuration: ServerConfiguration, logger: Logger) throws {
        services = try NodeServices(configuration: configuration, logger: logger)
    }

    /// Migrates and loads the scripts.
    public func setUp() async throws {
        try await Migrator(pool: services.postgres, directory: services.configuration.migrationsDirectory, logger: services.logger).migrate()
        try await services.scripts.loadAll(on: services.redis)
    }

    /// `conversations` chats, each with `messages` customer messages of `textBytes` bytes, closed by
    /// an admin: each ends as an outbox entry. Runs `parallel` chats at a time.
    public func prepare(conversations: Int, messages: Int, textBytes: Int, parallel: Int = 16) async throws {
        let store = services.parts.store
        let text = String(repeating: "x", count: max(1, textBytes))
        let admin = Caller(id: "1", role: .admin, name: "bench admin")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<parallel {
                group.addTask {
                    var i = worker
                    while i < conversations {
                        let chat = try await store.enqueue(name: "Bench \(i)", email: "bench-\(i)@example.com", categoryID: "0",
                                                           subject: "flush bench", priority: "normal")
                        let customer = Caller(id: chat.customerID, role: .customer, name: "Bench \(i)", conversationID: chat.conversationID)
                        for n in 0..<messages {
                            _ = try await store.send(conversationID: chat.conversationID, sender: customer, text: text, clientMsgID: "m\(n)", isInternal: false)
                        }
                        try await store.close(conversationID: chat.conversationID, actor: admin, resolution: "bench")
                        i += parallel
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Outbox entries waiting.
    public func outboxLength() async throws -> Int {
        try await services.redis.send("XLEN", services.keys.outbox).int ?? 0
    }

    /// Runs one flusher until the outbox is empty; `legacy` runs the pre-batching algorithm
    /// (one conversation per transaction, one INSERT per row, one at a time) for comparison.
    public func flush(concurrency: Int, pageSize: Int, legacy: Bool = false, timeout: Duration = .seconds(600)) async throws -> Result {
        let total = try await outboxLength()
        var flusher = OutboxFlusher(services: services)
        flusher.enabled = true
        flusher.concurrency = legacy ? 1 : concurrency
        flusher.pageSize = legacy ? 20 : pageSize
        flusher.maxConversationsPerTransaction = legacy ? 1 : flusher.maxConversationsPerTransaction
        flusher.rowByRow = legacy
        let stats = flusher.stats
        let redis = services.redis, keys = services.keys
        let start = ContinuousClock.now
        let running = flusher
        let task = Task { try await running.run() }
        defer { task.cancel() }
        while true {
            let replies = try await redis.pipeline([["XLEN", keys.outbox], ["XPENDING", keys.outbox, OutboxFlusher.group]])
            if replies[0].int == 0 && (replies[1].array?.first?.int ?? 0) == 0 { break }
            guard ContinuousClock.now - start < timeout else { throw HelpDeskError(.internalError, "flush did not finish within \(timeout)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        let elapsed = ContinuousClock.now - start
        let archived: Int = try await services.postgres.query("SELECT count(*) AS n FROM messages").first?.decode("n") ?? 0
        let snapshot = stats.snapshot
        return Result(conversations: total, messages: snapshot.messages, elapsed: elapsed, stats: snapshot, archivedMessages: archived)
    }

    public func shutdown() async {
        await services.shutdown()
    }
}

extension ArchiveStore {
    /// The archive write as it was before batching (one statement per row, dates formatted in
    /// Swift), kept as `helpdesk-bench flush --legacy`'s baseline. Not used by the server.
    func writeRowByRow(_ record: ArchiveRecord) async throws {
        let c = record.hash
        guard let id = c["id"], let customer = c["customer_id"] else {
            throw PostgresError(.decodingFailed, "conversation hash without id or customer_id")
        }
        @Sendable func timestamp(_ ms: String?) -> Date? { ms.flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1000) } }
        let messages = record.messages, events = record.events
        try await pool.transaction { connection in
            let customerID: String = try connection.query("""
                INSERT INTO customers (id, email, name) VALUES ($1, $2, $3)
                ON CONFLICT (lower(email)) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
                RETURNING id
                """, [customer, c["customer_email"] ?? "", c["customer_name"] ?? ""]).first!.decode("id")
            try connection.query("""
                INSERT INTO conversations (id, customer_id, category_id, subject, priority, status, agent_id,
                    created_at, enqueued_at, assigned_at, first_response_at, closed_at, closed_by, resolution,
                    rating, rating_comment, rated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, coalesce($16, ''), $17)
                ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status
                """, [
                    id, customerID, c["category_id"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }, c["subject"] ?? "",
                    c["priority"] ?? "normal", c["status"] == "abandoned" ? "abandoned" : "closed", c["agent_id"].flatMap { Int($0) },
                    timestamp(c["created_at"]) ?? Date(), timestamp(c["enqueued_at"]) ?? Date(),
                    timestamp(c["assigned_at"]), timestamp(c["first_response_at"]), timestamp(c["closed_at"]),
                    c["closed_by"], c["resolution"] ?? "", c["rating"].flatMap { Int($0) }, c["rating_comment"], timestamp(c["rated_at"]),
                ])
            for m in messages {
                try connection.query("""
                    INSERT INTO messages (conversation_id, id, ms, seq, sender_id, sender_role, sender_name, body, client_msg_id, internal, sent_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    ON CONFLICT DO NOTHING
                    """, [id, m.id, m.ms, m.seq, m.senderID, m.senderRole, m.senderName, m.body, m.clientMsgID,
                          m.isInternal, Date(timeIntervalSince1970: Double(m.sentAt) / 1000)])
            }
            for e in events {
                try connection.query("""
                    INSERT INTO conversation_events (conversation_id, id, type, actor_id, actor_role, data, at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
                    """, [id, e.id, e.type, e.actorId, e.actorRole, e.data, Date(timeIntervalSince1970: Double(e.at) / 1000)])
            }
        }
    }
}

import Foundation
import HelpDeskCore
import PostgresClient
import RedisClient

/// One event of a conversation's history (created, assigned, requeued, closed, calls).
struct ArchivedEvent: Codable, Sendable, Equatable {
    var id: String
    var type: String
    var actorId: String
    var actorRole: String
    var data: String
    var at: Int64

    init?(streamEntry: RESPValue) {
        guard let parts = streamEntry.array, parts.count == 2, let id = parts[0].string else { return nil }
        let f = parts[1].fieldMap
        self.id = id
        self.type = f["type"] ?? ""
        self.actorId = f["actor_id"] ?? ""
        self.actorRole = f["actor_role"] ?? ""
        self.data = f["data"] ?? ""
        self.at = Int64(f["at"] ?? "") ?? 0
    }

    init(id: String, type: String, actorId: String, actorRole: String, data: String, at: Int64) {
        (self.id, self.type, self.actorId, self.actorRole, self.data, self.at) = (id, type, actorId, actorRole, data, at)
    }
}

/// Closed conversations in PostgreSQL: written by the flushers, read by the REST routes.
struct ArchiveStore: Sendable {
    let pool: PostgresPool

    /// Milliseconds since the epoch as a timestamptz parameter, or NULL.
    private static func timestamp(_ ms: String?) -> Date? {
        guard let ms, let value = Double(ms) else { return nil }
        return Date(timeIntervalSince1970: value / 1000)
    }

    /// Writes a conversation, its messages and events in one transaction. Idempotent: a second
    /// write of the same conversation changes nothing and duplicates nothing.
    func write(conversation c: [String: String], messages: [MessageView], events: [ArchivedEvent]) async throws {
        guard let id = c["id"], let customer = c["customer_id"] else {
            throw PostgresError(.decodingFailed, "conversation hash without id or customer_id")
        }
        try await pool.transaction { connection in
            // The first name given for an e-mail stays: anyone may start a chat with any address,
            // so a later chat's name must not rename the customer (issue 10 #11).
            let customerID: String = try connection.query("""
                INSERT INTO customers (id, email, name) VALUES ($1, $2, $3)
                ON CONFLICT (lower(email)) DO UPDATE SET updated_at = now()
                RETURNING id
                """, [customer, c["customer_email"] ?? "", c["customer_name"] ?? ""]).first!.decode("id")
            let status = c["status"] == "abandoned" ? "abandoned" : "closed"
            try connection.query("""
                INSERT INTO conversations (id, customer_id, category_id, subject, priority, status, agent_id,
                    created_at, enqueued_at, assigned_at, first_response_at, closed_at, closed_by, resolution,
                    rating, rating_comment, rated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, coalesce($16, ''), $17)
                ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, agent_id = EXCLUDED.agent_id,
                    assigned_at = EXCLUDED.assigned_at, first_response_at = EXCLUDED.first_response_at,
                    closed_at = EXCLUDED.closed_at, closed_by = EXCLUDED.closed_by, resolution = EXCLUDED.resolution,
                    rating = coalesce(conversations.rating, EXCLUDED.rating),
                    rating_comment = CASE WHEN conversations.rating IS NULL THEN EXCLUDED.rating_comment ELSE conversations.rating_comment END,
                    rated_at = coalesce(conversations.rated_at, EXCLUDED.rated_at)
                """, [
                    id, customerID, c["category_id"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }, c["subject"] ?? "",
                    c["priority"] ?? "normal", status, c["agent_id"].flatMap { Int($0) },
                    Self.timestamp(c["created_at"]) ?? Date(), Self.timestamp(c["enqueued_at"]) ?? Date(),
                    Self.timestamp(c["assigned_at"]), Self.timestamp(c["first_response_at"]), Self.timestamp(c["closed_at"]),
                    c["closed_by"], c["resolution"] ?? "",
                    c["rating"].flatMap { Int($0) }, c["rating_comment"], Self.timestamp(c["rated_at"]),
                ])
            for m in messages {
                guard let order = StreamID(m.id) else { continue }
                try connection.query("""
                    INSERT INTO messages (conversation_id, id, ms, seq, sender_id, sender_role, sender_name, body, client_msg_id, internal, sent_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    ON CONFLICT DO NOTHING
                    """, [id, m.id, Int64(order.ms), Int64(order.seq), m.sender.id, m.sender.role, m.sender.name, m.text, m.clientMsgId,
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

    private static let selectConversation = """
        SELECT c.id::text AS id, c.status, c.customer_id::text AS customer_id, cu.name AS customer_name, cu.email AS customer_email,
               coalesce(c.category_id, 0) AS category_id, c.subject, c.priority, c.agent_id, coalesce(u.name, '') AS agent_name,
               (extract(epoch FROM c.created_at) * 1000)::bigint AS created_ms,
               (extract(epoch FROM c.enqueued_at) * 1000)::bigint AS enqueued_ms,
               (extract(epoch FROM c.assigned_at) * 1000)::bigint AS assigned_ms,
               (extract(epoch FROM c.first_response_at) * 1000)::bigint AS first_response_ms,
               (extract(epoch FROM c.closed_at) * 1000)::bigint AS closed_ms, c.resolution, c.rating, c.rating_comment
        FROM conversations c JOIN customers cu ON cu.id = c.customer_id LEFT JOIN users u ON u.id = c.agent_id
        """

    private static func view(_ row: PostgresRow) throws -> ConversationView {
        let agentID: Int? = try row.optional("agent_id")
        return ConversationView(
            id: try row.decode("id"), status: try row.decode("status"),
            customer: .init(id: try row.decode("customer_id"), name: try row.decode("customer_name"), email: try row.decode("customer_email")),
            agent: agentID.map { ConversationView.Person(id: String($0), name: (try? row.decode("agent_name", as: String.self)) ?? "", email: nil) },
            categoryId: String(try row.decode("category_id", as: Int.self)), subject: try row.decode("subject"), priority: try row.decode("priority"),
            createdAt: try row.decode("created_ms"), enqueuedAt: try row.decode("enqueued_ms"), assignedAt: try row.optional("assigned_ms"),
            firstResponseAt: try row.optional("first_response_ms"), closedAt: try row.optional("closed_ms"),
            resolution: try row.optional("resolution", as: String.self).flatMap { $0.isEmpty ? nil : $0 },
            rating: try row.optional("rating"), ratingComment: try row.optional("rating_comment"))
    }

    func conversation(_ id: String) async throws -> ConversationView? {
        try await pool.query(Self.selectConversation + " WHERE c.id = $1::uuid", [id]).first.map(Self.view)
    }

    /// Archived conversations, newest first, filtered.
    func conversations(status: String?, categoryID: Int?, agentID: Int?, limit: Int, before: Date?) async throws -> [ConversationView] {
        try await pool.query(Self.selectConversation + """
             WHERE ($1::text IS NULL OR c.status = $1) AND ($2::bigint IS NULL OR c.category_id = $2)
               AND ($3::bigint IS NULL OR c.agent_id = $3) AND ($4::timestamptz IS NULL OR c.closed_at < $4)
             ORDER BY c.closed_at DESC LIMIT $5
            """, [status, categoryID, agentID, before, limit]).rows.map(Self.view)
    }

    /// Archived messages after `after` (exclusive), in send order.
    func messages(_ id: String, after: StreamID?) async throws -> [MessageView] {
        try await pool.query("""
            SELECT id, sender_id, sender_role, sender_name, body, client_msg_id, internal,
                   (extract(epoch FROM sent_at) * 1000)::bigint AS sent_ms
            FROM messages WHERE conversation_id = $1::uuid AND (ms, seq) > ($2, $3) ORDER BY ms, seq
            """, [id, Int64(after?.ms ?? 0), Int64(after?.seq ?? 0)]).rows.map { row in
            MessageView(id: try row.decode("id"),
                        sender: .init(id: try row.decode("sender_id"), role: try row.decode("sender_role"), name: try row.decode("sender_name")),
                        text: try row.decode("body"), sentAt: try row.decode("sent_ms"), clientMsgId: try row.decode("client_msg_id"),
                        isInternal: try row.decode("internal"))
        }
    }
}

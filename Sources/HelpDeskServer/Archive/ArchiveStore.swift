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

/// One chat message as the archive stores it, parsed straight from a stream entry.
struct ArchivedMessage: Sendable, Equatable {
    var id: String
    var ms: Int64
    var seq: Int64
    var senderID: String
    var senderRole: String
    var senderName: String
    var body: String
    var clientMsgID: String
    var isInternal: Bool
    var sentAt: Int64
    /// The message's attachments as send.lua stored them: a JSON array, '' for none.
    var attachments = ""

    /// From one XRANGE entry `[id, [field, value, ...]]`; nil when the id is not a stream id.
    init?(streamEntry: RESPValue) {
        guard let parts = streamEntry.array, parts.count == 2, let id = parts[0].string, let fields = parts[1].array else { return nil }
        let idParts = id.split(separator: "-", maxSplits: 1)
        guard idParts.count == 2, let ms = Int64(idParts[0]), let seq = Int64(idParts[1]) else { return nil }
        (self.id, self.ms, self.seq) = (id, ms, seq)
        (senderID, senderRole, senderName, body, clientMsgID, isInternal, sentAt) = ("", "", "", "", "", false, 0)
        var i = 0
        while i + 1 < fields.count {
            if let key = fields[i].string, let value = fields[i + 1].string {
                switch key {
                case "sender_id": senderID = value
                case "sender_role": senderRole = value
                case "sender_name": senderName = value
                case "text": body = value
                case "client_msg_id": clientMsgID = value
                case "internal": isInternal = value == "1"
                case "sent_at": sentAt = Int64(value) ?? 0
                case "attachments": attachments = value
                default: break
                }
            }
            i += 2
        }
    }

    init(_ m: MessageView) {
        let idParts = m.id.split(separator: "-", maxSplits: 1)
        (id, ms, seq) = (m.id, idParts.first.flatMap { Int64($0) } ?? 0, idParts.count > 1 ? Int64(idParts[1]) ?? 0 : 0)
        (senderID, senderRole, senderName, body, clientMsgID, isInternal, sentAt) =
            (m.sender.id, m.sender.role, m.sender.name, m.text, m.clientMsgId, m.isInternal, m.sentAt)
        attachments = m.attachments.map(AttachmentView.json) ?? ""
    }
}

/// One conversation to archive: its hash, messages and events as read from Redis.
struct ArchiveRecord: Sendable {
    var id: String
    var hash: [String: String]
    var messages: [ArchivedMessage]
    var events: [ArchivedEvent]
}

/// Closed conversations in PostgreSQL: written by the flushers, read by the REST routes.
struct ArchiveStore: Sendable {
    let pool: PostgresPool

    /// Writes a conversation, its messages and events in one transaction. Idempotent: a second
    /// write of the same conversation changes nothing and duplicates nothing.
    func write(conversation c: [String: String], messages: [MessageView], events: [ArchivedEvent]) async throws {
        try await write([ArchiveRecord(id: c["id"] ?? "", hash: c, messages: messages.map(ArchivedMessage.init), events: events)])
    }

    /// Milliseconds since the epoch from a hash field (integer or float text), nil when absent.
    private static func ms(_ text: String?) -> Int64? {
        guard let text, !text.isEmpty else { return nil }
        return Int64(text) ?? Double(text).map { Int64($0.rounded()) }
    }

    /// `$n` (bigint ms) as timestamptz, exactly: no float rounding, no date formatting in Swift.
    private static func ts(_ column: String) -> String { "'epoch'::timestamptz + \(column) * interval '1 millisecond'" }

    /// Writes several conversations with their messages and events in one transaction and four
    /// statements (customers, conversations, messages, events), each row set passed as arrays to
    /// `unnest`: a round trip per statement instead of one per row. Idempotent: conversations
    /// are upserted, messages and events keep their first copy (`ON CONFLICT DO NOTHING`).
    /// The records must have distinct ids.
    func write(_ records: [ArchiveRecord]) async throws {
        guard !records.isEmpty else { return }
        for r in records where r.hash["id"] == nil || r.hash["customer_id"] == nil {
            throw PostgresError(.decodingFailed, "conversation \(r.id): hash without id or customer_id")
        }
        // One customer row per e-mail (the last record wins), or the upsert would touch a row twice.
        var customerIndex: [String: Int] = [:]
        var customers: (ids: [String], emails: [String], names: [String]) = ([], [], [])
        for r in records {
            let email = r.hash["customer_email"] ?? ""
            let key = email.lowercased()
            if let i = customerIndex[key] {
                (customers.ids[i], customers.emails[i], customers.names[i]) = (r.hash["customer_id"]!, email, r.hash["customer_name"] ?? "")
            } else {
                customerIndex[key] = customers.ids.count
                customers.ids.append(r.hash["customer_id"]!)
                customers.emails.append(email)
                customers.names.append(r.hash["customer_name"] ?? "")
            }
        }
        let conversationParameters: [(any PostgresEncodable)?] = [
            PostgresArray(records.map { $0.hash["id"]! }),
            PostgresArray(records.map { $0.hash["customer_email"] ?? "" }),
            PostgresArray(records.map { $0.hash["category_id"].flatMap { Int64($0) }.flatMap { $0 > 0 ? $0 : nil } }),
            PostgresArray(records.map { $0.hash["subject"] ?? "" }),
            PostgresArray(records.map { $0.hash["priority"] ?? "normal" }),
            PostgresArray(records.map { $0.hash["status"] == "abandoned" ? "abandoned" : "closed" }),
            PostgresArray(records.map { $0.hash["agent_id"].flatMap { Int64($0) } }),
            PostgresArray(records.map { Self.ms($0.hash["created_at"]) }),
            PostgresArray(records.map { Self.ms($0.hash["enqueued_at"]) }),
            PostgresArray(records.map { Self.ms($0.hash["assigned_at"]) }),
            PostgresArray(records.map { Self.ms($0.hash["first_response_at"]) }),
            PostgresArray(records.map { Self.ms($0.hash["closed_at"]) }),
            PostgresArray(records.map { $0.hash["closed_by"] }),
            PostgresArray(records.map { $0.hash["resolution"] ?? "" }),
            PostgresArray(records.map { $0.hash["rating"].flatMap { Int64($0) } }),
            PostgresArray(records.map { $0.hash["rating_comment"] }),
            PostgresArray(records.map { Self.ms($0.hash["rated_at"]) }),
            PostgresArray(records.map { $0.hash["account_id"].flatMap { $0.isEmpty ? nil : $0 } }),
        ]
        var m: (conv: [String], id: [String], ms: [Int64], seq: [Int64], sender: [String], role: [String], name: [String],
                body: [String], client: [String], internal: [Bool], sent: [Int64], attachments: [String]) = ([], [], [], [], [], [], [], [], [], [], [], [])
        var e: (conv: [String], id: [String], type: [String], actor: [String], role: [String], data: [String], at: [Int64]) = ([], [], [], [], [], [], [])
        for r in records {
            let id = r.hash["id"]!
            for x in r.messages {
                m.conv.append(id); m.id.append(x.id); m.ms.append(x.ms); m.seq.append(x.seq); m.sender.append(x.senderID)
                m.role.append(x.senderRole); m.name.append(x.senderName); m.body.append(x.body); m.client.append(x.clientMsgID)
                m.internal.append(x.isInternal); m.sent.append(x.sentAt); m.attachments.append(x.attachments)
            }
            for x in r.events {
                e.conv.append(id); e.id.append(x.id); e.type.append(x.type); e.actor.append(x.actorId); e.role.append(x.actorRole)
                e.data.append(x.data); e.at.append(x.at)
            }
        }
        let messageParameters: [(any PostgresEncodable)?] = [
            PostgresArray(m.conv), PostgresArray(m.id), PostgresArray(m.ms), PostgresArray(m.seq), PostgresArray(m.sender),
            PostgresArray(m.role), PostgresArray(m.name), PostgresArray(m.body), PostgresArray(m.client), PostgresArray(m.internal),
            PostgresArray(m.sent), PostgresArray(m.attachments),
        ]
        let eventParameters: [(any PostgresEncodable)?] = [
            PostgresArray(e.conv), PostgresArray(e.id), PostgresArray(e.type), PostgresArray(e.actor), PostgresArray(e.role),
            PostgresArray(e.data), PostgresArray(e.at),
        ]
        let customerParameters: [(any PostgresEncodable)?] = [PostgresArray(customers.ids), PostgresArray(customers.emails), PostgresArray(customers.names)]
        let hasMessages = !m.id.isEmpty, hasEvents = !e.id.isEmpty
        try await pool.transaction { connection in
            // The first name given for an e-mail stays: anyone may start a chat with any address,
            // so a later chat's name must not rename the customer (issue 10 #11).
            try connection.query("""
                INSERT INTO customers (id, email, name)
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
                ON CONFLICT (lower(email)) DO UPDATE SET updated_at = now()
                """, customerParameters)
            try connection.query("""
                INSERT INTO conversations (id, customer_id, category_id, subject, priority, status, agent_id,
                    created_at, enqueued_at, assigned_at, first_response_at, closed_at, closed_by, resolution,
                    rating, rating_comment, rated_at, account_id)
                SELECT x.id, cu.id, x.category_id, x.subject, x.priority, x.status, x.agent_id,
                    coalesce(\(Self.ts("x.created_ms")), now()), coalesce(\(Self.ts("x.enqueued_ms")), now()),
                    \(Self.ts("x.assigned_ms")), \(Self.ts("x.first_response_ms")), \(Self.ts("x.closed_ms")), x.closed_by, x.resolution,
                    x.rating, coalesce(x.rating_comment, ''), \(Self.ts("x.rated_ms")), x.account_id
                FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[],
                            $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::text[], $14::text[], $15::int4[], $16::text[], $17::int8[],
                            $18::uuid[])
                    AS x(id, email, category_id, subject, priority, status, agent_id, created_ms, enqueued_ms, assigned_ms,
                         first_response_ms, closed_ms, closed_by, resolution, rating, rating_comment, rated_ms, account_id)
                JOIN customers cu ON lower(cu.email) = lower(x.email)
                ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, agent_id = EXCLUDED.agent_id,
                    account_id = coalesce(EXCLUDED.account_id, conversations.account_id),
                    assigned_at = EXCLUDED.assigned_at, first_response_at = EXCLUDED.first_response_at,
                    closed_at = EXCLUDED.closed_at, closed_by = EXCLUDED.closed_by, resolution = EXCLUDED.resolution,
                    rating = CASE WHEN \(Self.newerRound) THEN EXCLUDED.rating ELSE coalesce(EXCLUDED.rating, conversations.rating) END,
                    rating_comment = CASE WHEN \(Self.newerRound) OR EXCLUDED.rating IS NOT NULL THEN EXCLUDED.rating_comment
                                          ELSE conversations.rating_comment END,
                    rated_at = CASE WHEN \(Self.newerRound) THEN EXCLUDED.rated_at ELSE coalesce(EXCLUDED.rated_at, conversations.rated_at) END
                """, conversationParameters)
            if hasMessages {
                try connection.query("""
                    INSERT INTO messages (conversation_id, id, ms, seq, sender_id, sender_role, sender_name, body, client_msg_id, internal, sent_at,
                                          attachments)
                    SELECT c, i, ms, seq, s, r, n, b, cm, it, \(Self.ts("sent")), att
                    FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[],
                                $9::text[], $10::bool[], $11::int8[], $12::text[]) AS x(c, i, ms, seq, s, r, n, b, cm, it, sent, att)
                    ON CONFLICT DO NOTHING
                    """, messageParameters)
            }
            if hasEvents {
                try connection.query("""
                    INSERT INTO conversation_events (conversation_id, id, type, actor_id, actor_role, data, at)
                    SELECT c, i, t, a, r, d, \(Self.ts("at"))
                    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[]) AS x(c, i, t, a, r, d, at)
                    ON CONFLICT DO NOTHING
                    """, eventParameters)
            }
        }
    }

    /// A reopened conversation archived again: the row is the latest round's, rating included (a
    /// rating is given once per round); within one round a flush without the rating keeps it.
    private static let newerRound = "EXCLUDED.closed_at > conversations.closed_at"

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
    /// `teamOf`: only conversations without an agent, with this supervisor or an agent of its team.
    func conversations(status: String?, categoryID: Int?, agentID: Int?, teamOf supervisorID: Int? = nil, limit: Int, before: Date?) async throws -> [ConversationView] {
        try await pool.query(Self.selectConversation + """
             WHERE ($1::text IS NULL OR c.status = $1) AND ($2::bigint IS NULL OR c.category_id = $2)
               AND ($3::bigint IS NULL OR c.agent_id = $3) AND ($4::timestamptz IS NULL OR c.closed_at < $4)
               AND ($6::bigint IS NULL OR c.agent_id IS NULL OR c.agent_id = $6
                    OR c.agent_id IN (SELECT t.id FROM users t WHERE t.supervisor_id = $6))
             ORDER BY c.closed_at DESC LIMIT $5
            """, [status, categoryID, agentID, before, limit, supervisorID]).rows.map(Self.view)
    }

    /// A customer account's archived conversations, newest first (by creation), before `before` ms.
    func conversations(account: String, before: Int64?, limit: Int) async throws -> [ConversationView] {
        try await pool.query(Self.selectConversation + """
             WHERE c.account_id = $1::uuid AND ($2::bigint IS NULL OR c.created_at < 'epoch'::timestamptz + $2 * interval '1 millisecond')
             ORDER BY c.created_at DESC LIMIT $3
            """, [account, before, limit]).rows.map(Self.view)
    }

    /// Whether an archived conversation was started by this customer account.
    func isOwned(_ id: String, account: String) async throws -> Bool {
        !(try await pool.query("SELECT 1 FROM conversations WHERE id = $1::uuid AND account_id = $2::uuid", [id, account]).isEmpty)
    }

    /// Archived messages after `after` (exclusive), in send order.
    func messages(_ id: String, after: StreamID?, limit: Int) async throws -> [MessageView] {
        try await pool.query("""
            SELECT id, sender_id, sender_role, sender_name, body, client_msg_id, internal, attachments,
                   (extract(epoch FROM sent_at) * 1000)::bigint AS sent_ms
            FROM messages WHERE conversation_id = $1::uuid AND (ms, seq) > ($2, $3) ORDER BY ms, seq LIMIT $4
            """, [id, Int64(after?.ms ?? 0), Int64(after?.seq ?? 0), Int64(limit)]).rows.map { row in
            MessageView(id: try row.decode("id"),
                        sender: .init(id: try row.decode("sender_id"), role: try row.decode("sender_role"), name: try row.decode("sender_name")),
                        text: try row.decode("body"), sentAt: try row.decode("sent_ms"), clientMsgId: try row.decode("client_msg_id"),
                        isInternal: try row.decode("internal"), attachments: AttachmentView.list(json: try row.decode("attachments")))
        }
    }
}

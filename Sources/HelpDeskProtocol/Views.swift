/// The objects that events and REST replies share. JSON keys are the snake_case forms of these
/// property names (the server's coders convert); the Lua prelude (lua/lib/protocol.lua) builds the
/// same shapes for the frames the scripts publish, and the golden test holds the two together. The
/// chat message is the exception: its view is written here only (`MessageView.write`,
/// `writeFields`), and send.lua appends the id and time to the frame the node hands it.

/// A conversation. Times are milliseconds since the epoch, live (Redis) and archived (PostgreSQL) alike.
public struct ConversationView: Codable, Sendable, Equatable {
    public struct Person: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        /// Only in replies to staff (REST); never in published frames.
        public var email: String?

        public init(id: String, name: String, email: String? = nil) {
            self.id = id
            self.name = name
            self.email = email
        }
    }

    public var id: String
    public var status: String
    public var customer: Person
    public var agent: Person?
    public var categoryId: String
    public var subject: String
    public var priority: String
    public var createdAt: Int64
    public var enqueuedAt: Int64
    public var assignedAt: Int64?
    public var firstResponseAt: Int64?
    public var closedAt: Int64?
    public var resolution: String?
    /// Whether an agent asked the supervisors for help.
    public var escalated: Bool?
    /// The agent's note and when it escalated: REST replies to staff only (never in frames, never to the customer).
    public var escalationNote: String?
    public var escalatedAt: Int64?
    /// The customer's 1-5 rating after close, and its comment.
    public var rating: Int?
    public var ratingComment: String?
    /// Wait so far (waiting) or until assignment, in seconds.
    public var waitSeconds: Int?

    public init(id: String, status: String, customer: Person, agent: Person?, categoryId: String, subject: String, priority: String,
                createdAt: Int64, enqueuedAt: Int64, assignedAt: Int64?, firstResponseAt: Int64?, closedAt: Int64?, resolution: String?,
                escalated: Bool? = nil, rating: Int? = nil, ratingComment: String? = nil, waitSeconds: Int? = nil) {
        self.id = id
        self.status = status
        self.customer = customer
        self.agent = agent
        self.categoryId = categoryId
        self.subject = subject
        self.priority = priority
        self.createdAt = createdAt
        self.enqueuedAt = enqueuedAt
        self.assignedAt = assignedAt
        self.firstResponseAt = firstResponseAt
        self.closedAt = closedAt
        self.resolution = resolution
        self.escalated = escalated
        self.rating = rating
        self.ratingComment = ratingComment
        self.waitSeconds = waitSeconds ?? Int(max(0, (assignedAt ?? closedAt ?? enqueuedAt) - enqueuedAt) / 1000)
    }

    /// Writes the view as the API's JSON coder does (snake_case keys, absent fields left out),
    /// without Foundation's coder: PICK's ACK is on the hot path of a busy queue (a test holds
    /// the two to the same object).
    public func write(to w: inout JSONWriter) {
        func person(_ p: Person) {
            w.raw("{"); w.key("id"); w.string(p.id)
            w.raw(","); w.key("name"); w.string(p.name)
            if let email = p.email { w.raw(","); w.key("email"); w.string(email) }
            w.raw("}")
        }
        func int(_ key: StaticString, _ value: Int64?) {
            guard let value else { return }
            w.raw(","); w.key(key); w.int(Int(value))
        }
        func string(_ key: StaticString, _ value: String?) {
            guard let value else { return }
            w.raw(","); w.key(key); w.string(value)
        }
        w.raw("{"); w.key("id"); w.string(id)
        w.raw(","); w.key("status"); w.string(status)
        w.raw(","); w.key("customer"); person(customer)
        if let agent { w.raw(","); w.key("agent"); person(agent) }
        w.raw(","); w.key("category_id"); w.string(categoryId)
        w.raw(","); w.key("subject"); w.string(subject)
        w.raw(","); w.key("priority"); w.string(priority)
        int("created_at", createdAt)
        int("enqueued_at", enqueuedAt)
        int("assigned_at", assignedAt)
        int("first_response_at", firstResponseAt)
        int("closed_at", closedAt)
        string("resolution", resolution)
        if let escalated { w.raw(","); w.key("escalated"); w.bool(escalated) }
        string("escalation_note", escalationNote)
        int("escalated_at", escalatedAt)
        int("rating", rating.map(Int64.init))
        string("rating_comment", ratingComment)
        int("wait_seconds", waitSeconds.map(Int64.init))
        w.raw("}")
    }
}

/// One chat message, live or archived.
public struct MessageView: Codable, Sendable, Equatable {
    public struct Sender: Codable, Sendable, Equatable {
        public var id: String
        public var role: String
        public var name: String

        public init(id: String, role: String, name: String) {
            self.id = id
            self.role = role
            self.name = name
        }
    }

    public var id: String
    public var sender: Sender
    public var text: String
    public var sentAt: Int64
    public var clientMsgId: String
    /// Internal notes are for staff; customers never receive them.
    public var isInternal: Bool
    /// Files sent with the message (`GET /api/v1/attachments/{id}`); absent when none.
    public var attachments: [AttachmentView]?

    enum CodingKeys: String, CodingKey {
        case id, sender, text, sentAt, clientMsgId, attachments
        case isInternal = "internal"
    }

    public init(id: String, sender: Sender, text: String, sentAt: Int64, clientMsgId: String, isInternal: Bool,
                attachments: [AttachmentView]? = nil) {
        self.id = id
        self.sender = sender
        self.text = text
        self.sentAt = sentAt
        self.clientMsgId = clientMsgId
        self.isInternal = isInternal
        self.attachments = attachments.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The view as JSON: HISTORY's messages, and the ACK's message read back for a retry.
    public func write(to w: inout JSONWriter) {
        w.raw("{")
        Self.writeFields(to: &w, sender: sender, text: text, clientMsgId: clientMsgId, isInternal: isInternal, attachments: attachments)
        Self.writeIDAndTime(to: &w, id: id, sentAt: sentAt)
        w.raw("}")
    }

    /// Every field but the two Redis assigns when it stores the message, without braces:
    /// `"sender":{…},"text":…,"client_msg_id":…,"internal":…[,"attachments":[…]]`. A new message
    /// is written in two steps: the node writes these into the NEW_MESSAGE frame it hands send.lua
    /// (`ServerFrame.newMessagePrefix`), and send.lua appends what `writeIDAndTime` writes.
    public static func writeFields(to w: inout JSONWriter, sender: Sender, text: String, clientMsgId: String, isInternal: Bool,
                                   attachments: [AttachmentView]?) {
        w.key("sender"); w.raw("{"); w.key("id"); w.string(sender.id)
        w.raw(","); w.key("role"); w.string(sender.role)
        w.raw(","); w.key("name"); w.string(sender.name)
        w.raw("},"); w.key("text"); w.string(text)
        w.raw(","); w.key("client_msg_id"); w.string(clientMsgId)
        w.raw(","); w.key("internal"); w.bool(isInternal)
        if let attachments, !attachments.isEmpty { w.raw(","); w.key("attachments"); AttachmentView.write(attachments, to: &w) }
    }

    /// `,"id":"<id>","sent_at":<ms>`, after `writeFields`. send.lua writes the same bytes (its one
    /// line of the view) into the NEW_MESSAGE frame once Redis has given the message its id.
    public static func writeIDAndTime(to w: inout JSONWriter, id: String, sentAt: Int64) {
        w.raw(","); w.key("id"); w.string(id)
        w.raw(","); w.key("sent_at"); w.int(Int(sentAt))
    }
}

/// A file attached to a message (and the reply to its upload): `{id, name, size, content_type}`.
public struct AttachmentView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var size: Int
    public var contentType: String

    public init(id: String, name: String, size: Int, contentType: String) {
        self.id = id
        self.name = name
        self.size = size
        self.contentType = contentType
    }

    /// Writes one attachment object.
    public func write(to w: inout JSONWriter) {
        w.raw("{"); w.key("id"); w.string(id)
        w.raw(","); w.key("name"); w.string(name)
        w.raw(","); w.key("size"); w.int(size)
        w.raw(","); w.key("content_type"); w.string(contentType)
        w.raw("}")
    }

    /// A list as a JSON array (no Foundation coder).
    public static func write(_ list: [AttachmentView], to w: inout JSONWriter) {
        w.raw("[")
        for (i, a) in list.enumerated() {
            if i > 0 { w.raw(",") }
            a.write(to: &w)
        }
        w.raw("]")
    }

    /// A list as the JSON array send.lua stores with the message.
    public static func json(_ list: [AttachmentView]) -> String {
        var w = JSONWriter()
        write(list, to: &w)
        return w.text
    }

    /// Parses that array back; nil for '' or anything that is not one.
    public static func list(json text: String) -> [AttachmentView]? {
        guard !text.isEmpty, let value = try? JSONValue.parse(text), let items = value.array else { return nil }
        let list = items.compactMap { item -> AttachmentView? in
            guard let id = item["id"]?.string, let name = item["name"]?.string, let size = item["size"]?.int,
                  let type = item["content_type"]?.string else { return nil }
            return AttachmentView(id: id, name: name, size: size, contentType: type)
        }
        return list.isEmpty ? nil : list
    }
}

/// An agent's presence and load (`PRESENCE_UPDATED` data, `GET /presence` items).
public struct PresenceView: Codable, Sendable, Equatable {
    public var agentId: String
    public var name: String
    public var status: String
    public var active: Int
    public var capacity: Int
    public var nodeId: String
    public var connected: Bool
    public var since: Int64
    /// Offers waiting for the agent's answer (they count against its capacity).
    public var offers: Int
    /// Set while the agent is in wrap-up after a close (ms since the epoch).
    public var wrapUpUntil: Int64?
}

/// Someone who did something (closed, reopened, called).
public struct ActorView: Codable, Sendable, Equatable {
    public var id: String
    public var role: String
    public var name: String?
}

/// Data of the server events, for clients (helpdesk-bench, tests) that decode them.
public enum ServerEventData {
    public struct Hello: Codable, Sendable {
        public struct User: Codable, Sendable { public var id: String; public var role: String; public var name: String; public var status: String? }
        public var nodeId: String
        public var user: User
        public var serverTime: Int64
    }
    public struct History: Codable, Sendable {
        public var conversationId: String
        public var messages: [MessageView]
        /// More messages follow in later HISTORY frames of the same JOIN.
        public var hasMore: Bool?
    }
    public struct NewMessage: Codable, Sendable {
        public var conversationId: String
        public var message: MessageView
    }
    public struct Typing: Codable, Sendable {
        public var conversationId: String
        public var userId: String
        public var role: String?
        public var typing: Bool
    }
    public struct QueueStatus: Codable, Sendable {
        public var conversationId: String
        public var position: Int
        public var estimatedWaitS: Int
    }
    public struct QueueUpdated: Codable, Sendable {
        public var op: String
        public var conversation: ConversationView
    }
    public struct QueueChanges: Codable, Sendable {
        public var changes: [QueueUpdated]
    }
    public struct Assigned: Codable, Sendable {
        public var conversation: ConversationView
        public var agent: ConversationView.Person
        public var transferredFrom: String?
        public var note: String?
    }
    public struct Closed: Codable, Sendable {
        public var conversationId: String
        public var closedBy: ActorView?
        public var resolution: String?
        public var closedAt: Int64
    }
    public struct Requeued: Codable, Sendable {
        public var conversationId: String
        public var reason: String
    }
    public struct Transferred: Codable, Sendable {
        public var conversationId: String
        public var fromAgentId: String
        public var agent: ConversationView.Person?
        public var categoryId: String?
        /// Staff only: the customer's copy has no note.
        public var note: String?
        /// A supervisor or an admin took the conversation over (`agent` is them).
        public var takenOver: Bool?
        /// When it happened (ms, Redis's clock): clients order their notices by it.
        public var at: Int64?
    }
    public struct Reopened: Codable, Sendable {
        public var conversationId: String
        public var by: ActorView
    }
    public struct Escalated: Codable, Sendable {
        public var conversationId: String
        public var note: String
        public var by: ActorView
    }
    public struct Offered: Codable, Sendable {
        public var conversation: ConversationView
        /// When the offer runs out (Redis's clock, ms since the epoch).
        public var expiresAt: Int64
    }
    public struct OfferRevoked: Codable, Sendable {
        public var conversationId: String
        /// declined, expired or closed.
        public var reason: String
        /// The agent's new status when it changed (away after an offer ran out).
        public var status: String?
    }
    public struct WrapUpStarted: Codable, Sendable {
        /// The conversation whose close started it (absent when a new socket is told of a running one).
        public var conversationId: String?
        public var wrapUpUntil: Int64
    }
    public struct WrapUpEnded: Codable, Sendable {
        /// ready (END_WRAP_UP) or elapsed.
        public var reason: String
    }
    public struct CategoriesUpdated: Codable, Sendable {
        public var categoryIds: [String]
    }
    public struct SessionEnded: Codable, Sendable {
        /// deactivated or role_changed.
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }
    public struct ProfileUpdated: Codable, Sendable {
        public var capacity: Int
        public var categoryIds: [String]
    }
    public struct Call: Codable, Sendable {
        public var conversationId: String
        public var callId: String
        public var media: String?
        public var reason: String?
        public var durationS: Int?
        public var from: ActorView?
    }
    public struct Error: Codable, Sendable {
        public var code: String
        public var message: String
    }
}

/// A server frame decoded with its data type.
public struct ServerEnvelope<Data: Decodable & Sendable>: Decodable, Sendable {
    public var event: String
    public var data: Data
    public var ref: String?
}

/// A Redis stream id (`<ms>-<seq>`): the id of a message, ordered as Redis orders them.
public struct StreamID: Comparable, Sendable, Hashable {
    public let ms: UInt64
    public let seq: UInt64

    public init?(_ text: some StringProtocol) {
        var ms: UInt64 = 0, seq: UInt64 = 0, sawDash = false, digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "-") {
                guard !sawDash, digits > 0 else { return nil }
                sawDash = true
                digits = 0
                continue
            }
            guard byte >= 48, byte <= 57, digits < 19 else { return nil }
            digits += 1
            if sawDash { seq = seq * 10 + UInt64(byte - 48) } else { ms = ms * 10 + UInt64(byte - 48) }
        }
        guard sawDash, digits > 0 else { return nil }
        self.ms = ms
        self.seq = seq
    }

    public static func < (a: StreamID, b: StreamID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }

    public var text: String { "\(ms)-\(seq)" }
}

import Foundation
import HelpDeskCore
import Hummingbird
import Logging
import NIOCore
import PostgresClient
import ServiceLifecycle

/// Limits and checks of attachments, shared by the upload route and the senders.
enum AttachmentRules {
    /// Attachments one message may carry.
    static let maxPerMessage = 5
    /// Attachments one conversation may hold, sent or not.
    static let maxPerConversation = 100
    /// Uploads one person may have waiting unsent in one conversation.
    static let maxUnsentPerUploader = 10
    /// Unsent uploads older than this are deleted by the sweep (seconds).
    static let unsentLifetimeSeconds = 3600

    /// The allowed types, as stored and served.
    static let allowed: [String: String] = [
        "image/png": "image/png", "image/jpeg": "image/jpeg", "image/jpg": "image/jpeg", "image/gif": "image/gif",
        "image/webp": "image/webp", "application/pdf": "application/pdf", "text/plain": "text/plain; charset=utf-8",
    ]

    /// The declared `Content-Type` as stored, or 415.
    static func mediaType(_ header: String?) throws -> String {
        let bare = (header ?? "").split(separator: ";", maxSplits: 1).first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        guard let type = allowed[bare] else {
            throw HelpDeskError(.unsupportedMediaType, "files of type \(bare.isEmpty ? "(none)" : String(bare.prefix(100))) are not accepted; "
                + "send PNG, JPEG, GIF, WebP, PDF or plain text with its Content-Type")
        }
        return type
    }

    /// Whether the file's leading bytes are of the declared type: a file is never served as a
    /// type it is not (an HTML page sent as image/png is refused).
    static func matches(_ bytes: [UInt8], type: String) -> Bool {
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + prefix.count && Array(bytes[offset..<offset + prefix.count]) == prefix
        }
        switch type {
        case "image/png": return starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        case "image/jpeg": return starts([0xFF, 0xD8, 0xFF])
        case "image/gif": return starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8))
        case "image/webp": return starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8)
        case "application/pdf": return starts(Array("%PDF-".utf8))
        default:
            // plain text: valid UTF-8 without control characters other than tab, line breaks and form feed
            guard String(validating: bytes, as: UTF8.self) != nil else { return false }
            return !bytes.contains { ($0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D && $0 != 0x0C) || $0 == 0x7F }
        }
    }

    /// The file name to keep: the last path component, without control characters, at most 200
    /// characters; "file" when nothing is left.
    static func fileName(_ raw: String?) throws -> String {
        let raw = raw ?? ""
        guard !raw.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            throw HelpDeskError(.validationFailed, "name must not contain control characters")
        }
        let last = raw.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let trimmed = last.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count <= 200 else { throw HelpDeskError(.validationFailed, "name must be at most 200 characters") }
        return trimmed.isEmpty || trimmed == "." || trimmed == ".." ? "file" : trimmed
    }

    /// `attachment_ids` of a send: at most `maxPerMessage` distinct attachment ids (lower-case UUIDs).
    static func ids(_ value: JSONValue?) throws -> [String] {
        guard let value, !value.isNull else { return [] }
        guard let items = value.array else { throw HelpDeskError(.validationFailed, "attachment_ids must be an array of attachment ids") }
        return try ids(items.map { item in
            guard let s = item.string else { throw HelpDeskError(.validationFailed, "attachment_ids must be an array of attachment ids") }
            return s
        })
    }

    static func ids(_ raw: [String]?) throws -> [String] {
        guard let raw else { return [] }
        guard raw.count <= maxPerMessage else {
            throw HelpDeskError(.validationFailed, "a message carries at most \(maxPerMessage) attachments")
        }
        var out: [String] = []
        for text in raw {
            guard let uuid = UUID(uuidString: text) else { throw HelpDeskError(.validationFailed, "attachment_ids: \(text.prefix(40)) is not an attachment id") }
            let id = uuid.uuidString.lowercased()
            guard !out.contains(id) else { throw HelpDeskError(.validationFailed, "attachment_ids: \(id) is given twice") }
            out.append(id)
        }
        return out
    }

    /// `Content-Disposition: attachment` with an ASCII fallback name and the exact one in RFC 5987
    /// encoding, so no name can break out of the header or be read differently by a browser.
    static func contentDisposition(_ name: String) -> String {
        let fallback = String(name.unicodeScalars.map { s -> Character in
            (s.value >= 0x20 && s.value < 0x7F && s != "\"" && s != "\\" && s != ";" && s != "%") ? Character(s) : "_"
        })
        var encoded = ""
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                encoded.append(Character(Unicode.Scalar(byte)))
            default:
                encoded += String(format: "%%%02X", byte)
            }
        }
        return "attachment; filename=\"\(fallback)\"; filename*=UTF-8''\(encoded)"
    }
}

/// Attachments in PostgreSQL (`attachments`, bytea): every node serves every file.
struct AttachmentStore: Sendable {
    let pool: PostgresPool

    struct Stored: Sendable {
        var view: AttachmentView
        var conversationID: String
        var uploaderID: String
        var messageID: String?
        var isInternal: Bool
        var sha256: String
    }

    /// Stores an upload, within the per-conversation and per-uploader bounds (checked under a
    /// lock of the conversation, so parallel uploads cannot all slip under them).
    func insert(conversationID: String, uploader: Caller, name: String, contentType: String, bytes: [UInt8]) async throws -> AttachmentView {
        let id = UUID().uuidString.lowercased()
        let digest = Self.hex(Crypto.sha256(bytes))
        let data = "\\x" + Self.hex(bytes)
        let size = bytes.count
        try await unavailableOnOutage {
            try await pool.transaction { c in
                try c.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", [conversationID])
                let counts = try c.query("""
                    SELECT count(*) AS total, count(*) FILTER (WHERE uploader_id = $2 AND message_id IS NULL) AS unsent
                    FROM attachments WHERE conversation_id = $1::uuid
                    """, [conversationID, uploader.id]).first
                if try counts?.decode("total", as: Int.self) ?? 0 >= AttachmentRules.maxPerConversation {
                    throw HelpDeskError(.rateLimited, "this conversation holds \(AttachmentRules.maxPerConversation) attachments, as many as it may")
                }
                if try counts?.decode("unsent", as: Int.self) ?? 0 >= AttachmentRules.maxUnsentPerUploader {
                    throw HelpDeskError(.rateLimited, "you have \(AttachmentRules.maxUnsentPerUploader) unsent attachments here; send or wait for them to expire")
                }
                try c.query("""
                    INSERT INTO attachments (id, conversation_id, uploader_id, uploader_role, name, content_type, size, sha256, data)
                    VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, decode($8, 'hex'), $9::bytea)
                    """, [id, conversationID, uploader.id, uploader.role.rawValue, name, contentType, size, digest, data])
            }
        }
        return AttachmentView(id: id, name: name, size: size, contentType: contentType)
    }

    /// An attachment's metadata, nil when there is none.
    func find(_ id: String) async throws -> Stored? {
        try await unavailableOnOutage {
            guard let row = try await pool.query("""
                SELECT id::text AS id, conversation_id::text AS conversation_id, uploader_id, name, content_type, size, message_id,
                       internal, encode(sha256, 'hex') AS sha256
                FROM attachments WHERE id = $1::uuid
                """, [id]).first else { return nil }
            return Stored(view: AttachmentView(id: try row.decode("id"), name: try row.decode("name"), size: try row.decode("size"),
                                               contentType: try row.decode("content_type")),
                          conversationID: try row.decode("conversation_id"), uploaderID: try row.decode("uploader_id"),
                          messageID: try row.optional("message_id"), isInternal: try row.decode("internal"), sha256: try row.decode("sha256"))
        }
    }

    /// An attachment's bytes.
    func data(_ id: String) async throws -> [UInt8] {
        try await unavailableOnOutage {
            guard let text: String = try await pool.query("SELECT data FROM attachments WHERE id = $1::uuid", [id]).first?.decode("data") else {
                throw HelpDeskError(.notFound, "no such attachment")
            }
            return Self.bytes(hex: text)
        }
    }

    /// Claims attachments for one send (`clientMsgID`): each must be of this conversation, uploaded
    /// by the sender, and unsent (or already sent by this very send, for its retry). Returns them
    /// in the order given; refuses the whole send, claiming nothing, if any does not qualify.
    func claim(ids: [String], conversationID: String, sender: Caller, clientMsgID: String) async throws -> [AttachmentView] {
        try await unavailableOnOutage {
            let rows = try await pool.query("""
                UPDATE attachments SET claimed_by = $4, claimed_at = now()
                WHERE id = ANY($1::uuid[]) AND conversation_id = $2::uuid AND uploader_id = $3
                  AND ((message_id IS NULL AND (claimed_by IS NULL OR claimed_by = $4 OR claimed_at < now() - interval '60 seconds'))
                       OR (message_id IS NOT NULL AND claimed_by = $4))
                RETURNING id::text AS id, name, size, content_type
                """, [PostgresArray(ids), conversationID, sender.id, clientMsgID])
            var byID: [String: AttachmentView] = [:]
            for row in rows.rows {
                let view = AttachmentView(id: try row.decode("id"), name: try row.decode("name"), size: try row.decode("size"),
                                          contentType: try row.decode("content_type"))
                byID[view.id] = view
            }
            guard byID.count == ids.count else {
                try await release(ids: ids, clientMsgID: clientMsgID)
                throw HelpDeskError(.validationFailed,
                                    "attachment_ids: attach only files you uploaded to this conversation and have not sent yet")
            }
            return ids.compactMap { byID[$0] }
        }
    }

    /// Links claimed attachments to the message their send stored (idempotent).
    func markSent(ids: [String], clientMsgID: String, messageID: String, isInternal: Bool) async throws {
        _ = try await unavailableOnOutage {
            try await pool.query("""
                UPDATE attachments SET message_id = $3, internal = $4
                WHERE id = ANY($1::uuid[]) AND claimed_by = $2 AND message_id IS NULL
                """, [PostgresArray(ids), clientMsgID, messageID, isInternal])
        }
    }

    /// Gives back a failed send's claims.
    func release(ids: [String], clientMsgID: String) async throws {
        try await pool.query("""
            UPDATE attachments SET claimed_by = NULL, claimed_at = NULL
            WHERE id = ANY($1::uuid[]) AND claimed_by = $2 AND message_id IS NULL
            """, [PostgresArray(ids), clientMsgID])
    }

    /// Deletes uploads never sent (and not claimed by a send in progress) older than `seconds`.
    @discardableResult
    func deleteUnsent(olderThan seconds: Int) async throws -> Int {
        try await pool.query("""
            DELETE FROM attachments
            WHERE message_id IS NULL AND created_at < now() - $1 * interval '1 second'
              AND (claimed_at IS NULL OR claimed_at < now() - $1 * interval '1 second')
            """, [seconds]).affectedRows
    }

    private func unavailableOnOutage<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as PostgresError where error.isUnavailable {
            throw HelpDeskError(.unavailable, "attachments are briefly unavailable; retry")
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: bytes.count * 2)
        for (i, b) in bytes.enumerated() {
            out[2 * i] = digits[Int(b >> 4)]
            out[2 * i + 1] = digits[Int(b & 0x0F)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// bytea in PostgreSQL's hex output format (`\x0a1b...`).
    static func bytes(hex text: String) -> [UInt8] {
        var utf8 = Array(text.utf8)
        if utf8.starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "x")]) { utf8.removeFirst(2) }
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return c &- UInt8(ascii: "A") &+ 10
            }
        }
        var out = [UInt8](repeating: 0, count: utf8.count / 2)
        for i in 0..<out.count { out[i] = nibble(utf8[2 * i]) << 4 | nibble(utf8[2 * i + 1]) }
        return out
    }
}

/// `POST /conversations/{id}/attachments`, `GET /attachments/{id}`.
struct AttachmentsController: Sendable {
    let attachments: AttachmentStore
    let conversations: ConversationsController
    let maxBytes: Int

    func addRoutes(to authenticated: RouterGroup<AuthenticatedContext>) {
        authenticated.post("conversations/:id/attachments") { request, context in
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            let caller = context.caller
            // the conversation's participants and staff on it; anyone else: 404
            let view = try await visible(id, caller)
            guard view.status == "waiting" || view.status == "active" else {
                throw HelpDeskError(.conversationClosed, "the conversation is closed")
            }
            let name = try AttachmentRules.fileName(request.uri.queryParameters.get("name"))
            let type = try AttachmentRules.mediaType(request.headers[.contentType])
            let tooLarge = HelpDeskError(.attachmentTooLarge, "files are limited to \(maxBytes) bytes")
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBytes { throw tooLarge }
            // Read as it streams in, never more than the limit (the 64 KiB JSON limit is for JSON bodies).
            var body = ByteBuffer()
            for try await chunk in request.body {
                guard body.readableBytes + chunk.readableBytes <= maxBytes else { throw tooLarge }
                var chunk = chunk
                body.writeBuffer(&chunk)
            }
            guard body.readableBytes > 0 else { throw HelpDeskError(.validationFailed, "the file is empty") }
            let bytes = Array(body.readableBytesView)
            guard AttachmentRules.matches(bytes, type: type) else {
                throw HelpDeskError(.unsupportedMediaType, "the file's content is not \(type.split(separator: ";")[0])")
            }
            let stored = try await attachments.insert(conversationID: id, uploader: caller, name: name, contentType: type, bytes: bytes)
            return try Response.json(stored, status: .created)
        }

        authenticated.get("attachments/:id") { _, context in
            let raw = try context.parameters.require("id")
            guard let uuid = UUID(uuidString: raw) else { throw HelpDeskError(.validationFailed, "not an attachment id") }
            let caller = context.caller
            let notFound = HelpDeskError(.notFound, "no such attachment")
            guard let stored = try await attachments.find(uuid.uuidString.lowercased()) else { throw notFound }
            _ = try await visible(stored.conversationID, caller)
            // unsent: its uploader's only; on an internal note: staff only
            if stored.messageID == nil && stored.uploaderID != caller.id { throw notFound }
            if stored.isInternal && !caller.isStaff { throw notFound }
            let bytes = try await attachments.data(stored.view.id)
            return Response(status: .ok, headers: [
                .contentType: stored.view.contentType,
                .contentDisposition: AttachmentRules.contentDisposition(stored.view.name),
                .init("X-Content-Type-Options")!: "nosniff",
                .cacheControl: "private, no-store",
                .init("ETag")!: "\"\(stored.sha256)\"",
            ], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }

    /// The conversation if the caller may read it; 404 (never 403) otherwise.
    private func visible(_ id: String, _ caller: Caller) async throws -> ConversationView {
        do {
            return try await conversations.readable(id, caller: caller)
        } catch let error as HelpDeskError where error.code == .forbidden {
            throw HelpDeskError(.notFound, "no such conversation")
        }
    }
}

/// Deletes uploads nobody sent, on every node (the statement is safe to run at once anywhere).
struct AttachmentSweeper: Service {
    let attachments: AttachmentStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let deleted = try await attachments.deleteUnsent(olderThan: AttachmentRules.unsentLifetimeSeconds)
                    if deleted > 0 { logger.info("unsent attachments deleted", metadata: ["count": "\(deleted)"]) }
                } catch {
                    logger.warning("attachment sweep failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}

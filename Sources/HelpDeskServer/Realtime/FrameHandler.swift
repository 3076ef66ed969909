import Foundation
import HelpDeskCore
import HummingbirdWebSocket
import Logging
import RedisClient

/// Reads one socket's client frames, checks them and acts. Every failure is an `ERROR` frame that
/// changes nothing; a client that keeps sending bad frames is closed.
struct FrameHandler {
    let session: SocketSession
    let hub: ConnectionHub
    let store: LiveStore
    let logger: Logger
    /// Seconds an unanswered call rings.
    var callTimeout = 45
    /// Error times within the last minute.
    private var recentErrors: [Date] = []

    init(session: SocketSession, hub: ConnectionHub, store: LiveStore, logger: Logger) {
        self.session = session
        self.hub = hub
        self.store = store
        self.logger = logger
    }

    var shouldClose: Bool { recentErrors.count > WebSocketController.errorBudgetPerMinute }

    var caller: Caller { session.caller }

    mutating func handle(_ message: WebSocketMessage) async {
        guard case .text(let text) = message else {
            fail(HelpDeskError(.badRequest, "frames must be text holding one JSON object"), ref: nil)
            return
        }
        guard text.utf8.count <= WebSocketController.maxFrameBytes else {
            fail(HelpDeskError(.payloadTooLarge, "frames are limited to \(WebSocketController.maxFrameBytes) bytes"), ref: nil)
            return
        }
        let bytes = Data(text.utf8)
        let envelope: ClientEnvelope
        do {
            envelope = try JSON.decoder.decode(ClientEnvelope.self, from: bytes)
        } catch {
            fail(HelpDeskError(.invalidJSON, "a frame must be a JSON object with an \"event\" name"), ref: nil)
            return
        }
        do {
            try await dispatch(envelope, bytes)
        } catch let error as HelpDeskError {
            fail(error, ref: envelope.ref)
        } catch let error as RedisError {
            logger.warning("redis error on socket", metadata: ["error": "\(error)"])
            fail(HelpDeskError(.unavailable, "the service is briefly unavailable; retry"), ref: envelope.ref)
        } catch {
            logger.error("socket event failed", metadata: ["event": "\(envelope.event)", "error": "\(error)"])
            fail(HelpDeskError(.internalError, "internal error"), ref: envelope.ref)
        }
    }

    private mutating func fail(_ error: HelpDeskError, ref: String?) {
        let now = Date()
        recentErrors = recentErrors.filter { now.timeIntervalSince($0) < 60 } + [now]
        session.send(ServerFrame.error(error, ref: ref))
    }

    private func ack<T: Encodable>(_ ref: String?, _ data: T) {
        session.send(ServerFrame.ack(ref: ref, data))
    }

    private func dispatch(_ envelope: ClientEnvelope, _ bytes: Data) async throws {
        let ref = envelope.ref
        switch envelope.event {
        case "PING":
            session.send(ServerFrame.encode("PONG", [String: String](), ref: ref))

        case "JOIN_CONVERSATION":
            let data = try decodeFrame(ClientEvent.Join.self, from: bytes)
            let id = try Self.conversationID(data.conversationId)
            if let last = data.lastMessageId, StreamID(last) == nil {
                throw HelpDeskError(.validationFailed, "last_message_id is not a message id")
            }
            try await authorizeJoin(id)
            try await hub.join(session, conversationID: id, lastMessageID: data.lastMessageId, sendHistory: true)
            if caller.role == .customer, let view = try await store.conversation(id), view.status == "waiting" {
                await hub.trackWaiting(session, conversationID: id, category: view.categoryId)
            }
            ack(ref, ["conversation_id": id])

        case "LEAVE_CONVERSATION":
            let data = try decodeFrame(ClientEvent.Leave.self, from: bytes)
            await hub.leave(session, conversationID: try Self.conversationID(data.conversationId))
            ack(ref, ["conversation_id": data.conversationId])

        case "SEND_MESSAGE":
            let data = try decodeFrame(ClientEvent.Send.self, from: bytes)
            let message = try Self.validMessage(data, caller: caller)
            try Self.requireOwnConversation(caller, try Self.conversationID(data.conversationId))
            let sent = try await store.send(conversationID: try Self.conversationID(data.conversationId), sender: caller,
                                            text: message.text, clientMsgID: message.clientMsgID, isInternal: message.isInternal)
            ack(ref, SendAck(conversationId: data.conversationId, messageId: sent.messageID, clientMsgId: message.clientMsgID, duplicate: sent.duplicate))

        case "TYPING":
            let data = try decodeFrame(ClientEvent.Typing.self, from: bytes)
            let id = try Self.conversationID(data.conversationId)
            guard await hub.isJoined(session, conversationID: id) else {
                throw HelpDeskError(.forbidden, "join the conversation first")
            }
            try await store.publishTyping(conversationID: id, user: caller, typing: data.typing)

        case "PICK":
            guard caller.role == .agent else { throw HelpDeskError(.forbidden, "only agents pick conversations") }
            let data = try decodeFrame(ClientEvent.Pick.self, from: bytes)
            let wanted = try data.conversationId.map(Self.conversationID)
            let conversation = try await store.pick(agentID: caller.id, conversationID: wanted, mode: "pick", actorID: caller.id)
            ack(ref, ["conversation": conversation])

        case "CLOSE_CONVERSATION":
            let data = try decodeFrame(ClientEvent.Close.self, from: bytes)
            let resolution = try Validate.text(data.resolution ?? "", field: "resolution", max: 500, min: 0)
            try await store.close(conversationID: try Self.conversationID(data.conversationId), actor: caller, resolution: resolution)
            ack(ref, ["conversation_id": data.conversationId])

        case "SET_STATUS":
            guard caller.role == .agent else { throw HelpDeskError(.forbidden, "only agents have a status") }
            let data = try decodeFrame(ClientEvent.SetStatus.self, from: bytes)
            guard data.status == "online" || data.status == "away" else {
                throw HelpDeskError(.validationFailed, "status must be online or away")
            }
            try await store.setStatus(agentID: caller.id, status: data.status)
            ack(ref, ["status": data.status])

        default:
            if let data = try await handleCall(envelope.event, bytes, callTimeout: callTimeout) {
                if ref != nil || envelope.event != "RTC_SIGNAL" { ack(ref, data) }
                return
            }
            throw HelpDeskError(.unknownEvent, "unknown event \(envelope.event.prefix(40))")
        }
    }

    /// Customers join their own conversation; agents the ones assigned to them; supervisors and
    /// admins any (to monitor).
    private func authorizeJoin(_ id: String) async throws {
        switch caller.role {
        case .customer:
            guard caller.conversationID == id else { throw HelpDeskError(.forbidden, "not your conversation") }
        case .agent:
            guard let view = try await store.conversation(id) else { throw HelpDeskError(.notFound, "no such live conversation") }
            guard view.agent?.id == caller.id else { throw HelpDeskError(.forbidden, "this conversation is not assigned to you") }
        case .supervisor, .admin:
            guard try await store.conversation(id) != nil else { throw HelpDeskError(.notFound, "no such live conversation") }
        }
    }

    /// A customer token grants one conversation, never a later one of the same e-mail.
    static func requireOwnConversation(_ caller: Caller, _ id: String) throws {
        if caller.role == .customer, caller.conversationID != id { throw HelpDeskError(.forbidden, "not your conversation") }
    }

    /// Conversation ids are UUIDs; anything else is refused before it reaches Redis.
    static func conversationID(_ text: String) throws -> String {
        guard let uuid = UUID(uuidString: text) else { throw HelpDeskError(.validationFailed, "conversation_id is not a conversation id") }
        return uuid.uuidString.lowercased()
    }

    /// Checks a message's text, client id and internal flag.
    static func validMessage(_ data: ClientEvent.Send, caller: Caller) throws -> (text: String, clientMsgID: String, isInternal: Bool) {
        let text = data.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw HelpDeskError(.validationFailed, "text must not be empty") }
        guard text.count <= WebSocketController.maxMessageCharacters else {
            throw HelpDeskError(.validationFailed, "text must be at most \(WebSocketController.maxMessageCharacters) characters")
        }
        guard (1...100).contains(data.clientMsgId.count) else { throw HelpDeskError(.validationFailed, "client_msg_id must be 1 to 100 characters") }
        let isInternal = data.isInternal ?? false
        if isInternal && !caller.isStaff { throw HelpDeskError(.forbidden, "customers cannot send internal notes") }
        return (text, data.clientMsgId, isInternal)
    }
}

struct SendAck: Encodable {
    var conversationId: String
    var messageId: String
    var clientMsgId: String
    var duplicate: Bool
}

import Foundation
import HelpDeskCore
import NIOConcurrencyHelpers
import NIOCore
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
    /// Offer routing on this node: told about closes, status changes, declined offers, wrap-up ends.
    var router: OfferRouter?
    /// The socket's errors: a class, so every copy of the handler (the task's, the event loop's)
    /// and the replies to messages sent without a task count into one budget.
    let errors = ErrorBudget()
    private var limits: SocketLimits
    /// send.lua's keys and limits for the conversation this socket last sent to (`sendWithoutTask`).
    private var sendTemplate: LiveStore.SendTemplate?
    /// This socket's origin for messages sent without echo (`ConnectionHub.origin(of:)`).
    private let origin: String
    /// The wall clock in seconds since the epoch, for the token's expiry.
    var now: @Sendable () -> Int = { Int(Date().timeIntervalSince1970) }

    init(session: SocketSession, hub: ConnectionHub, store: LiveStore, logger: Logger) {
        self.limits = SocketLimits(messageRate: hub.caps.messageRate, messageBurst: hub.caps.messageBurst,
                                   eventRate: hub.caps.eventRate, eventBurst: hub.caps.eventBurst)
        self.session = session
        self.hub = hub
        self.store = store
        self.logger = logger
        self.origin = hub.origin(of: session.id)
    }

    var shouldClose: Bool { errors.exceeded }

    var caller: Caller { session.caller }

    /// One whole client message (`isText`: a text frame).
    mutating func handle(_ data: ByteBuffer, isText: Bool) async {
        guard isText else {
            fail(HelpDeskError(.badRequest, "frames must be text holding one JSON object"), ref: nil)
            return
        }
        guard data.readableBytes <= WebSocketController.maxFrameBytes else {
            fail(HelpDeskError(.payloadTooLarge, "frames are limited to \(WebSocketController.maxFrameBytes) bytes"), ref: nil)
            return
        }
        let text = String(buffer: data)
        let frame: ClientFrame
        do {
            frame = try ClientFrame(text: text)
        } catch {
            fail(error, ref: nil)
            return
        }
        // A socket is only as good as the token it opened with: checked on every frame, not
        // only by the periodic sweep.
        if caller.expiresAt <= now() {
            session.close(.unknown(4001), "token expired: reconnect with a fresh one")
            return
        }
        if let event = frame.event, !limits.allow(event) || (event == .sendMessage && !hub.allowMessage(from: session)) {
            fail(HelpDeskError(.rateLimited, "too many \(event.rawValue) events: slow down"), ref: frame.ref)
            return
        }
        do {
            try await dispatch(frame)
        } catch let error as HelpDeskError {
            fail(error, ref: frame.ref)
        } catch let error as RedisError {
            LogLimiter.serverFailures.log(logger, .warning, "redis error on socket", ["error": "\(error)"])
            fail(HelpDeskError(.unavailable, "the service is briefly unavailable; retry"), ref: frame.ref)
        } catch {
            LogLimiter.serverFailures.log(logger, .error, "socket event failed", ["event": "\(frame.eventName.prefix(40))", "error": "\(error)"])
            fail(HelpDeskError(.internalError, "internal error"), ref: frame.ref)
        }
    }

    // MARK: the hot path: chat messages without a task

    /// A chat message handed to Redis by `sendWithoutTask`, waiting for its reply.
    struct PendingSend: Sendable {
        let reply: EventLoopFuture<RESPValue>
        /// The message's part of send.lua's call, to run again through the registry if Redis lost
        /// the function library.
        let call: LiveStore.SendCall
        let ref: String?
        let conversationID: String
        let clientMsgID: String
        /// The sending socket's budget: an ERROR to this message counts against it.
        let errors: ErrorBudget
    }

    enum WithoutTask {
        /// Not for this path: any event but a plain chat message, or no Redis connection up yet.
        /// Nothing was counted or sent; the task handles the frame as usual.
        case needsTask
        /// Answered already (an ERROR).
        case answered
        case sent(PendingSend)
    }

    /// The hot path, called by whoever takes the socket's frames in order (its event loop, or its
    /// task for frames queued behind another event): a customer's or agent's chat message without
    /// attachments goes to Redis through the socket's own pooled connection (so a socket's messages
    /// keep their order) without an await; `answer` writes its ACK when the reply comes.
    /// The checks are the task path's (`handle`, `dispatch`): same limits, same errors.
    mutating func sendWithoutTask(_ data: ByteBuffer) -> WithoutTask {
        guard caller.role == .customer || caller.role == .agent,
              data.readableBytes <= WebSocketController.maxFrameBytes,
              caller.expiresAt > now(),
              let loop = session.eventLoop, let connection = store.redis.readyConnection(session.id, on: loop) else { return .needsTask }
        let parsed = data.withUnsafeReadableBytes { raw in try? ClientFrame(bytes: raw.bindMemory(to: UInt8.self)) }
        guard let frame = parsed, frame.event == .sendMessage,
              let attachments = try? AttachmentRules.ids(frame.data["attachment_ids"]), attachments.isEmpty else { return .needsTask }
        if !limits.allow(.sendMessage) || !hub.allowMessage(from: session) {
            fail(HelpDeskError(.rateLimited, "too many \(ClientEventName.sendMessage.rawValue) events: slow down"), ref: frame.ref)
            return .answered
        }
        do {
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            let message = try Self.validMessage(frame, caller: caller)
            try ConversationRules.requireOwnConversation(caller, id)
            if sendTemplate?.conversationID != id { sendTemplate = store.sendTemplate(conversationID: id) }
            let call = store.sendCall(sendTemplate!, sender: caller, text: message.text, clientMsgID: message.clientMsgID,
                                      isInternal: message.isInternal, origin: try origin(unlessEcho: frame))
            // Batched with the other messages this connection takes within this tick: one FCALL.
            let reply = connection.submitBatched(function: store.scripts.functionName("send"), shared: [store.nowOverride],
                                                 keys: call.keys, arguments: call.arguments)
            return .sent(PendingSend(reply: reply, call: call, ref: frame.ref,
                                     conversationID: id, clientMsgID: message.clientMsgID, errors: errors))
        } catch let error as HelpDeskError {
            fail(error, ref: frame.ref)
        } catch {
            fail(HelpDeskError(.internalError, "internal error"), ref: frame.ref)
        }
        return .answered
    }

    /// Writes the ACK (or the ERROR, counted against the socket's budget) for Redis's reply to a
    /// `PendingSend`. False when Redis does not have the function library (flushed or deleted):
    /// nothing was written; the caller runs the call again through the registry, which loads it.
    static func answer(_ result: Result<RESPValue, any Error>, to send: PendingSend, session: SocketSession, logger: Logger) -> Bool {
        do {
            let reply = try result.get()
            if RedisScripts.isMissingFunction(reply) { return false }
            if case .error(let message) = reply { throw RedisError(.serverError, message) }
            let sent = try LiveStore.sent(reply, for: send.call)
            session.send(bytes: sendAck(ref: send.ref, conversationID: send.conversationID, clientMsgID: send.clientMsgID, sent: sent))
            return true
        } catch let error as HelpDeskError {
            refuse(send, error, session: session)
        } catch let error as RedisError where RedisScripts.isMissingFunction(error) {
            return false
        } catch {
            if let error = error as? RedisError { RedisClient.count(error) }
            LogLimiter.serverFailures.log(logger, .warning, "redis error on socket", ["error": "\(error)"])
            refuse(send, HelpDeskError(.unavailable, "the service is briefly unavailable; retry"), session: session)
        }
        return true
    }

    /// The ERROR to a message sent without a task; past the budget the socket is closed.
    static func refuse(_ send: PendingSend, _ error: HelpDeskError, session: SocketSession) {
        session.send(ServerFrame.error(error, ref: send.ref))
        if send.errors.note(error) { session.close(.policyViolation, "too many invalid frames") }
    }

    /// SEND_MESSAGE's ACK: the message's id, and whether it was a retry of one already stored;
    /// without echo, the message itself (NEW_MESSAGE's `message`).
    static func sendAck(ref: String?, conversationID: String, clientMsgID: String, sent: LiveStore.Sent) -> [UInt8] {
        let capacity = 128 + conversationID.utf8.count + clientMsgID.utf8.count + (ref?.utf8.count ?? 0) + (sent.messageJSON?.utf8.count ?? 0)
        return ServerFrame.frameBytes(.ack, ref: ref, capacity: capacity) { w in
            w.key("conversation_id"); w.string(conversationID)
            w.raw(","); w.key("message_id"); w.string(sent.messageID)
            w.raw(","); w.key("client_msg_id"); w.string(clientMsgID)
            w.raw(","); w.key("duplicate"); w.bool(sent.duplicate)
            if let json = sent.messageJSON { w.raw(","); w.key("message"); w.json(json) }
        }
    }

    /// SEND_MESSAGE's `echo` (default true): false asks for the message in the ACK and not again
    /// as NEW_MESSAGE on this socket (its other sockets still get it). One frame less per message
    /// for the sender's node. Returns the origin send.lua then names in the pub/sub header.
    private func origin(unlessEcho frame: ClientFrame) throws -> String {
        try frame.optionalBool("echo") == false ? origin : ""
    }

    /// An ERROR, counted against the socket's budget when it is the client's fault.
    private func fail(_ error: HelpDeskError, ref: String?) {
        _ = errors.note(error)
        session.send(ServerFrame.error(error, ref: ref))
    }

    /// `ACK` whose data is `{"conversation_id": id}` (most events answer with just that).
    private func ackConversation(_ ref: String?, _ id: String) {
        session.send(ServerFrame.ack(ref: ref) { w in w.key("conversation_id"); w.string(id) })
    }

    private func dispatch(_ frame: ClientFrame) async throws {
        let ref = frame.ref
        guard let event = frame.event else {
            throw HelpDeskError(.unknownEvent, "unknown event \(frame.eventName.prefix(40))")
        }
        switch event {
        case .ping:
            session.send(ServerFrame.pong(ref: ref))

        case .joinConversation:
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            let last = try frame.optionalString("last_message_id")
            if let last, StreamID(last) == nil {
                throw HelpDeskError(.validationFailed, "last_message_id is not a message id")
            }
            try await authorizeJoin(id)
            try await hub.join(session, conversationID: id, lastMessageID: last, sendHistory: true)
            if caller.role == .customer, let view = try await store.conversation(id), view.status == "waiting" {
                hub.trackWaiting(session, conversationID: id, category: view.categoryId)
            }
            ackConversation(ref, id)

        case .leaveConversation:
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            hub.leave(session, conversationID: id)
            ackConversation(ref, id)

        case .sendMessage:
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            let attachmentIDs = try AttachmentRules.ids(frame.data["attachment_ids"])
            let message = try Self.validMessage(frame, caller: caller, allowEmptyText: !attachmentIDs.isEmpty)
            try ConversationRules.requireOwnConversation(caller, id)
            let sent = try await store.send(conversationID: id, sender: caller, text: message.text, clientMsgID: message.clientMsgID,
                                            isInternal: message.isInternal, attachmentIDs: attachmentIDs, origin: try origin(unlessEcho: frame))
            session.send(bytes: Self.sendAck(ref: ref, conversationID: id, clientMsgID: message.clientMsgID, sent: sent))

        case .typing:
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            let typing = try frame.bool("typing")
            guard hub.isJoined(session, conversationID: id) else {
                throw HelpDeskError(.forbidden, "join the conversation first")
            }
            try await store.publishTyping(conversationID: id, user: caller, typing: typing)

        case .pick:
            guard caller.role == .agent else { throw HelpDeskError(.forbidden, "only agents pick conversations") }
            let wanted = try frame.optionalString("conversation_id").map(ConversationRules.conversationID)
            let conversation = try await store.pick(agentID: caller.id, conversationID: wanted, mode: "pick", actorID: caller.id)
            session.send(ServerFrame.ack(ref: ref) { w in w.key("conversation"); conversation.write(to: &w) })

        case .closeConversation:
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            let resolution = try Validate.text(try frame.optionalString("resolution") ?? "", field: "resolution", max: 500, min: 0)
            let wrapUp = try await store.close(conversationID: id, actor: caller, resolution: resolution)
            router?.closed(wrapUp)
            ackConversation(ref, id)

        case .acceptOffer:
            guard caller.role == .agent else { throw HelpDeskError(.forbidden, "only agents are offered conversations") }
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            let conversation = try await store.acceptOffer(conversationID: id, agentID: caller.id)
            session.send(ServerFrame.ack(ref: ref) { w in w.key("conversation"); conversation.write(to: &w) })

        case .declineOffer:
            guard caller.role == .agent else { throw HelpDeskError(.forbidden, "only agents are offered conversations") }
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            try await store.declineOffer(conversationID: id, agentID: caller.id)
            router?.trigger()
            ackConversation(ref, id)

        case .endWrapUp:
            guard caller.role == .agent else { throw HelpDeskError(.forbidden, "only agents have a wrap-up") }
            let ended = try await store.endWrapUp(agentID: caller.id, early: true) == .ended
            if ended { router?.trigger() }
            session.send(ServerFrame.ack(ref: ref) { w in w.key("ended"); w.bool(ended) })

        case .setStatus:
            guard caller.role == .agent else { throw HelpDeskError(.forbidden, "only agents have a status") }
            let status = try frame.string("status")
            guard status == "online" || status == "away" else {
                throw HelpDeskError(.validationFailed, "status must be online or away")
            }
            try await store.setStatus(agentID: caller.id, status: status)
            if status == "online" { router?.trigger() }
            session.send(ServerFrame.ack(ref: ref) { w in w.key("status"); w.string(status) })

        case .takeOver:
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            let former = try await store.takeOver(conversationID: id, actor: caller)
            router?.trigger()
            session.send(ServerFrame.ack(ref: ref) { w in
                w.key("conversation_id"); w.string(id)
                w.raw(","); w.key("from_agent_id"); w.string(former)
            })

        case .cancel:
            guard caller.role == .customer else { throw HelpDeskError(.forbidden, "only the customer leaves the queue") }
            let id = try ConversationRules.conversationID(try frame.string("conversation_id"))
            try ConversationRules.requireOwnConversation(caller, id)
            try await store.cancel(conversationID: id, customer: caller)
            router?.trigger()
            ackConversation(ref, id)

        case .callInvite, .callAccept, .callReject, .callEnd, .rtcSignal:
            let (conversation, call) = try await handleCall(event, frame, callTimeout: callTimeout)
            // Signals are many and fire-and-forget: acknowledged only when the client asked (ref).
            if ref != nil || event != .rtcSignal {
                session.send(ServerFrame.ack(ref: ref) { w in
                    w.key("conversation_id"); w.string(conversation)
                    w.raw(","); w.key("call_id"); w.string(call)
                })
            }
        }
    }

    /// CALL_INVITE, CALL_ACCEPT, CALL_REJECT, CALL_END, RTC_SIGNAL: `lua/call*.lua` decides.
    private func handleCall(_ event: ClientEventName, _ frame: ClientFrame, callTimeout: Int) async throws -> (String, String) {
        let (conversation, call) = try Self.callIDs(try frame.string("conversation_id"), try frame.string("call_id"))
        // A customer's token is bound to one conversation: calls in any other are refused here.
        try ConversationRules.requireOwnConversation(caller, conversation)
        switch event {
        case .callInvite:
            let media = try frame.optionalString("media") ?? "audio"
            guard media == "audio" || media == "video" else { throw HelpDeskError(.validationFailed, "media must be audio or video") }
            try await store.call("invite", conversationID: conversation, callID: call, caller: caller, extra: [media, String(callTimeout * 1000)])
        case .callAccept:
            try await store.call("accept", conversationID: conversation, callID: call, caller: caller)
        case .callReject:
            try await store.call("reject", conversationID: conversation, callID: call, caller: caller)
        case .callEnd:
            try await store.call("end", conversationID: conversation, callID: call, caller: caller)
        default:
            let signal = try Self.validSignal(try frame.object("signal"))
            try await store.call("signal", conversationID: conversation, callID: call, caller: caller, extra: [signal])
        }
        return (conversation, call)
    }

    /// Only the fields a browser's offer, answer or ICE candidate has, re-encoded: nothing else
    /// a client puts in a signal reaches the other side.
    static func validSignal(_ signal: JSONValue) throws -> String {
        guard let type = signal["type"]?.string, ["offer", "answer", "ice-candidate"].contains(type) else {
            throw HelpDeskError(.validationFailed, "signal.type must be offer, answer or ice-candidate")
        }
        var pairs: [(String, JSONValue)] = [("type", .string(type))]
        if let sdp = signal["sdp"] {
            guard let text = sdp.string else { throw HelpDeskError(.validationFailed, "signal.sdp must be a string") }
            pairs.append(("sdp", .string(text)))
        }
        if let candidate = signal["candidate"], !candidate.isNull {
            guard case .object = candidate else { throw HelpDeskError(.validationFailed, "signal.candidate must be an object") }
            var fields: [(String, JSONValue)] = []
            for key in ["candidate", "sdpMid", "usernameFragment"] {
                if let v = candidate[key], !v.isNull {
                    guard v.string != nil else { throw HelpDeskError(.validationFailed, "signal.candidate.\(key) must be a string") }
                    fields.append((key, v))
                }
            }
            if let v = candidate["sdpMLineIndex"], !v.isNull {
                guard let n = v.int else { throw HelpDeskError(.validationFailed, "signal.candidate.sdpMLineIndex must be an integer") }
                fields.append(("sdpMLineIndex", .number(Double(n))))
            }
            pairs.append(("candidate", .object(fields)))
        }
        var w = JSONWriter()
        w.value(.object(pairs))
        return w.text
    }

    static func callIDs(_ conversation: String, _ call: String) throws -> (String, String) {
        let conversation = try ConversationRules.conversationID(conversation)
        guard (1...64).contains(call.utf8.count), call.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || $0 == 45 }) else {
            throw HelpDeskError(.validationFailed, "call_id must be 1 to 64 letters, digits or dashes")
        }
        return (conversation, call)
    }

    /// Customers join their own conversation; agents the ones assigned to them; supervisors those
    /// of the queue and of their own team, admins any (to monitor).
    private func authorizeJoin(_ id: String) async throws {
        switch caller.role {
        case .customer where caller.isAccount:
            // an account follows the live conversations it started
            guard let view = try await store.conversation(id), view.customer.id == caller.id else {
                throw HelpDeskError(.notFound, "no such live conversation")
            }
        case .customer:
            guard caller.conversationID == id else { throw HelpDeskError(.forbidden, "not your conversation") }
        case .agent:
            guard let view = try await store.conversation(id) else { throw HelpDeskError(.notFound, "no such live conversation") }
            guard view.agent?.id == caller.id else { throw HelpDeskError(.forbidden, "this conversation is not assigned to you") }
        case .supervisor, .admin:
            guard let view = try await store.conversation(id) else { throw HelpDeskError(.notFound, "no such live conversation") }
            try await store.requireTeamScope(caller, agentID: view.agent?.id)
        }
    }

    /// Checks a SEND_MESSAGE's text, client id and internal flag.
    static func validMessage(_ frame: ClientFrame, caller: Caller, allowEmptyText: Bool = false) throws -> ConversationRules.Message {
        try ConversationRules.validMessage(text: try frame.string("text"), clientMsgID: try frame.string("client_msg_id"),
                                           isInternal: try frame.optionalBool("internal"), caller: caller, allowEmptyText: allowEmptyText)
    }
}

/// One socket's errors within the last minute: past `WebSocketController.errorBudgetPerMinute`
/// the socket is closed (1008). Shared by reference, so errors counted on the event loop, in the
/// task and in Redis's reply callbacks all add up.
final class ErrorBudget: Sendable {
    /// Error times (uptime seconds), at most one past the budget.
    private let times = NIOLockedValueBox<[UInt64]>([])

    /// Counts an ERROR sent to the socket, if it was the client's fault; true when the socket is
    /// past its budget. The server's own failures (5xx: Redis away, a script that failed) do not
    /// count: one bad message in a batch must not close the sockets of the others.
    func note(_ error: HelpDeskError) -> Bool {
        error.code.httpStatus < 500 && note()
    }

    /// Counts one error now; true when the socket is past its budget.
    private func note() -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds / 1_000_000_000
        let limit = WebSocketController.errorBudgetPerMinute
        return times.withLockedValue { times in
            times.removeAll { now - $0 >= 60 }
            times.append(now)
            if times.count > limit + 1 { times.removeFirst(times.count - limit - 1) }
            return times.count > limit
        }
    }

    var exceeded: Bool { times.withLockedValue { $0.count > WebSocketController.errorBudgetPerMinute } }
}

/// The WebSocket protocol: every frame is `{"event": NAME, "data": {...}, "ref": "..."}`.
/// `ref` is the client's own correlation id, echoed on the `ACK` or `ERROR` that answers it.
/// docs/protocol.md describes each event; this file is the one place their names are spelled.

/// Events a client sends.
public enum ClientEventName: String, Sendable, CaseIterable {
    case ping = "PING"
    case joinConversation = "JOIN_CONVERSATION"
    case leaveConversation = "LEAVE_CONVERSATION"
    case sendMessage = "SEND_MESSAGE"
    case typing = "TYPING"
    case pick = "PICK"
    case closeConversation = "CLOSE_CONVERSATION"
    case setStatus = "SET_STATUS"
    case takeOver = "TAKE_OVER"
    case cancel = "CANCEL"
    case callInvite = "CALL_INVITE"
    case callAccept = "CALL_ACCEPT"
    case callReject = "CALL_REJECT"
    case callEnd = "CALL_END"
    case rtcSignal = "RTC_SIGNAL"
    /// Offer routing (issue 11): the agent takes or turns down the conversation offered to it.
    case acceptOffer = "ACCEPT_OFFER"
    case declineOffer = "DECLINE_OFFER"
    /// The agent is ready before its wrap-up time is up.
    case endWrapUp = "END_WRAP_UP"
}

/// Events the server sends.
public enum ServerEventName: String, Sendable, CaseIterable {
    case hello = "HELLO"
    case ack = "ACK"
    case error = "ERROR"
    case pong = "PONG"
    case resync = "RESYNC"
    case history = "HISTORY"
    case newMessage = "NEW_MESSAGE"
    case typing = "TYPING"
    case queueStatus = "QUEUE_STATUS"
    case queueUpdated = "QUEUE_UPDATED"
    /// The QUEUE_UPDATEDs of one batch window in one frame, for sockets that asked for it
    /// (`/ws?queue_changes=batched`): `QueueChangesFrame`.
    case queueChanges = "QUEUE_CHANGES"
    case conversationAssigned = "CONVERSATION_ASSIGNED"
    case conversationClosed = "CONVERSATION_CLOSED"
    case conversationRequeued = "CONVERSATION_REQUEUED"
    case conversationTransferred = "CONVERSATION_TRANSFERRED"
    case conversationReopened = "CONVERSATION_REOPENED"
    case conversationEscalated = "CONVERSATION_ESCALATED"
    case presenceUpdated = "PRESENCE_UPDATED"
    case callInvite = "CALL_INVITE"
    case callAccept = "CALL_ACCEPT"
    case callReject = "CALL_REJECT"
    case callEnd = "CALL_END"
    case rtcSignal = "RTC_SIGNAL"
    case conversationOffered = "CONVERSATION_OFFERED"
    case offerRevoked = "OFFER_REVOKED"
    case wrapUpStarted = "WRAP_UP_STARTED"
    case wrapUpEnded = "WRAP_UP_ENDED"
    case categoriesUpdated = "CATEGORIES_UPDATED"
    /// To an agent: an admin changed its capacity or categories (queue changes follow the new ones).
    case profileUpdated = "PROFILE_UPDATED"
    /// To a staff user, just before the server closes its sockets (1008): an admin deactivated the
    /// account or changed its role. Its tokens no longer open a socket.
    case sessionEnded = "SESSION_ENDED"
}

/// One client frame, parsed: its event (known or not), its `ref`, its `data` object.
public struct ClientFrame: Sendable {
    public var eventName: String
    public var event: ClientEventName?
    public var ref: String?
    public var data: JSONValue

    /// Parses the envelope; a frame that is not a JSON object with a string `event` is refused.
    public init(text: String) throws(HelpDeskError) {
        let root: JSONValue
        do {
            root = try JSONValue.parse(text)
        } catch {
            throw HelpDeskError(.invalidJSON, "a frame must be a JSON object with an \"event\" name")
        }
        try self.init(root: root)
    }

    /// The same, from the frame's bytes as the socket read them (no `String` copy first).
    public init(bytes: UnsafeBufferPointer<UInt8>) throws(HelpDeskError) {
        let root: JSONValue
        do {
            root = try JSONValue.parse(bytes)
        } catch {
            throw HelpDeskError(.invalidJSON, "a frame must be a JSON object with an \"event\" name")
        }
        try self.init(root: root)
    }

    private init(root: JSONValue) throws(HelpDeskError) {
        guard case .object = root, let name = root["event"]?.string else {
            throw HelpDeskError(.invalidJSON, "a frame must be a JSON object with an \"event\" name")
        }
        eventName = name
        event = ClientEventName(rawValue: name)
        switch root["ref"] {
        case .string(let s)?: ref = String(s.prefix(100))
        case .number?: ref = root["ref"]?.int.map(String.init)
        default: ref = nil
        }
        data = root["data"] ?? .object([])
        if case .object = data {} else if !data.isNull {
            throw HelpDeskError(.validationFailed, "data must be an object")
        }
    }

    // MARK: typed fields, each with the client-facing error when missing or of the wrong type

    public func string(_ key: String) throws(HelpDeskError) -> String {
        guard let value = data[key] else { throw HelpDeskError(.validationFailed, "\(key) is required") }
        guard let s = value.string else { throw HelpDeskError(.validationFailed, "\(key) must be a string") }
        return s
    }

    public func optionalString(_ key: String) throws(HelpDeskError) -> String? {
        guard let value = data[key], !value.isNull else { return nil }
        guard let s = value.string else { throw HelpDeskError(.validationFailed, "\(key) must be a string") }
        return s
    }

    public func bool(_ key: String) throws(HelpDeskError) -> Bool {
        guard let value = data[key] else { throw HelpDeskError(.validationFailed, "\(key) is required") }
        guard let b = value.bool else { throw HelpDeskError(.validationFailed, "\(key) must be true or false") }
        return b
    }

    public func optionalBool(_ key: String) throws(HelpDeskError) -> Bool? {
        guard let value = data[key], !value.isNull else { return nil }
        guard let b = value.bool else { throw HelpDeskError(.validationFailed, "\(key) must be true or false") }
        return b
    }

    public func object(_ key: String) throws(HelpDeskError) -> JSONValue {
        guard let value = data[key] else { throw HelpDeskError(.validationFailed, "\(key) is required") }
        guard case .object = value else { throw HelpDeskError(.validationFailed, "\(key) must be an object") }
        return value
    }
}

/// Server frames the node builds itself. Frames about conversations, the queue and presence are
/// built by the Lua scripts (lua/lib/protocol.lua) and forwarded as published; NEW_MESSAGE is
/// written here up to the message's id and time (`newMessagePrefix`), which send.lua appends.
public enum ServerFrame {
    /// `{"event":"ACK","ref":ref,"data":{...}}` with `data` written by `body`.
    public static func ack(ref: String?, _ body: (inout JSONWriter) -> Void) -> String {
        frame(.ack, ref: ref, body)
    }

    public static func frame(_ event: ServerEventName, ref: String? = nil, _ body: (inout JSONWriter) -> Void) -> String {
        String(decoding: frameBytes(event, ref: ref, body), as: UTF8.self)
    }

    /// The same frame as bytes, for a socket's buffer without a String in between; `capacity`:
    /// what the frame will need, so that its array is not regrown while it is written.
    public static func frameBytes(_ event: ServerEventName, ref: String? = nil, capacity: Int = 128,
                                  _ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var w = JSONWriter(capacity: capacity)
        w.raw("{\"event\":\"")
        w.ascii(event.rawValue)
        w.raw("\",\"data\":{")
        body(&w)
        w.raw("}")
        if let ref {
            w.raw(",\"ref\":")
            w.string(ref)
        }
        w.raw("}")
        return w.bytes
    }

    /// NEW_MESSAGE up to its message's fields: `{"event":"NEW_MESSAGE","data":{"conversation_id":…,"message":{`.
    /// The node follows it with the message's fields (`MessageView.writeFields`) and hands it to
    /// send.lua, which appends the id and time Redis gave the message and closes the three objects.
    public static func newMessagePrefix(conversationID: String) -> String {
        var w = JSONWriter(capacity: 96)
        w.raw("{\"event\":\"")
        w.ascii(ServerEventName.newMessage.rawValue)
        w.raw("\",\"data\":{")
        w.key("conversation_id"); w.string(conversationID)
        w.raw(","); w.key("message"); w.raw("{")
        return w.text
    }

    public static func error(_ error: HelpDeskError, ref: String?) -> String {
        frame(.error, ref: ref) { w in
            w.key("code"); w.string(error.code.rawValue)
            w.raw(","); w.key("message"); w.string(error.message)
        }
    }

    public static func pong(ref: String?) -> String { frame(.pong, ref: ref) { _ in } }
    public static func resync() -> String { frame(.resync) { _ in } }
}

/// `QUEUE_CHANGES {changes: [...]}`: the `data` of each `QUEUE_UPDATED` a socket would have got
/// within one batch window, in order, in one frame. Under a burst of picks every staff socket gets
/// every queue change; one frame per window instead of one per change is what keeps that fan-out
/// cheap for the node and for the client. A socket asks for it with `/ws?queue_changes=batched`
/// (the pages do); any other socket gets one `QUEUE_UPDATED` per change.
///
/// The node builds it from the published frames' bytes, without decoding them: lua/lib/protocol.lua
/// writes every frame as `{"event":"NAME","data":{...}}`, so a QUEUE_UPDATED's data is the bytes
/// between `updatedPrefix` and the closing brace.
public enum QueueChangesFrame {
    /// The query parameter and value that ask for this form.
    public static let parameter = "queue_changes"
    public static let batched = "batched"
    /// The default: one QUEUE_UPDATED per change.
    public static let single = "single"
    /// A frame's bytes before its first change, between two changes, and after the last.
    public static let prefix: [UInt8] = Array(#"{"event":"QUEUE_CHANGES","data":{"changes":["#.utf8)
    public static let separator = UInt8(ascii: ",")
    public static let suffix: [UInt8] = Array("]}}".utf8)
    /// A QUEUE_UPDATED frame as the Lua prelude writes it, up to its data object.
    static let updatedPrefix: [UInt8] = Array(#"{"event":"QUEUE_UPDATED","data":{"#.utf8)

    /// Where a QUEUE_UPDATED frame's `data` object is within it; nil for a frame of another event
    /// or shape (sent as it is, on its own).
    public static func changeRange(in frame: UnsafeRawBufferPointer) -> Range<Int>? {
        let head = updatedPrefix.count - 1  // the data object starts at its own brace
        guard frame.count > updatedPrefix.count, frame.last == UInt8(ascii: "}"),
              frame.starts(with: updatedPrefix) else { return nil }
        return head..<(frame.count - 1)
    }

    /// A whole frame of these changes (each a `data` object's bytes): what a socket's outbox
    /// builds in place, spelled out for tests and clients.
    public static func frame(_ changes: [[UInt8]]) -> [UInt8] {
        var bytes = prefix
        for (i, change) in changes.enumerated() {
            if i > 0 { bytes.append(separator) }
            bytes += change
        }
        return bytes + suffix
    }
}

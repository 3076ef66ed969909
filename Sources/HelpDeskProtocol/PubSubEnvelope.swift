/// What every pub/sub payload carries before its frame, so that no node searches or decodes the
/// frame to decide where it goes: `<kind>|<audience>|<key>\n<frame JSON>`.
/// A chat message's key may end in `/<origin>`: the socket that sent it and asked not to get it
/// back (`SEND_MESSAGE {echo: false}`; its ACK carried the message instead). Inside the key, so a
/// node of the release before reads the header as before (a key that is not a stream id: it
/// delivers the message to everyone, without cursor) while a rolling deploy mixes releases.
/// The Lua prelude (lua/lib/protocol.lua) writes it; `PubSubEnvelope.parse` reads it.
public struct PubSubEnvelope: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A chat message; key = its stream id (cursors and dedupe apply).
        case message = "msg"
        /// CONVERSATION_ASSIGNED; key = the new agent's id.
        case assigned
        /// CONVERSATION_CLOSED (closed or abandoned).
        case closed
        /// Requeued, transferred or reopened; key = the new agent's id, `-` when back in a queue.
        case moved
        /// Anything else on a conversation channel (typing, calls, escalation).
        case event
        /// On the queue channel; key = the category id (`-`: CATEGORIES_UPDATED, the tree changed).
        case queue
        /// On the presence channel; key = the agent's supervisor id (`-`: none).
        case presence
        /// On a user channel.
        case user
        /// On a user channel: PROFILE_UPDATED, the agent's capacity or categories changed; a node
        /// reads its categories again for the agent's sockets (`-`: no key).
        case profile
        /// On a user channel: SESSION_ENDED, the account was deactivated or its role changed;
        /// every node closes the user's sockets after sending the frame (`-`: no key).
        case ended
    }

    public enum Audience: Sendable, Equatable {
        /// Every socket that follows the channel.
        case everyone
        /// Staff sockets only (internal notes, transfer notes).
        case staff
        /// The one user whose id is the key (call signaling).
        case user
    }

    public var kind: Kind
    public var audience: Audience
    /// See `Kind`; `-` means none.
    public var key: Substring
    /// The sending socket that gets the message in its ACK instead (`<node token>.<socket id>`).
    public var origin: Substring?
    /// The frame, to be written to sockets as it is.
    public var frame: Substring

    public init(kind: Kind, audience: Audience, key: Substring, origin: Substring? = nil, frame: Substring) {
        self.kind = kind
        self.audience = audience
        self.key = key
        self.origin = origin
        self.frame = frame
    }

    /// A payload's header: where it goes, and where its frame starts.
    public struct Header: Sendable, Equatable {
        public var kind: Kind
        public var audience: Audience
        public var key: String
        /// The bytes of the origin field within the payload, when there is one.
        public var origin: Range<Int>?
        public var frameStart: Int
    }

    /// The header of a payload given as bytes (as the Redis reader hands them over) and where its
    /// frame starts; nil without a valid header. Byte comparisons only; the frame is not read.
    public static func parseHeader(_ bytes: [UInt8]) -> Header? {
        bytes.withUnsafeBytes { parseHeader($0) }
    }

    /// The same, for bytes where the Redis reader holds them.
    public static func parseHeader(_ raw: UnsafeRawBufferPointer) -> Header? {
        raw.withMemoryRebound(to: UInt8.self) { b -> Header? in
            let limit = min(b.count, 512)
            var bar1 = -1, bar2 = -1, slash = -1, newline = -1
            var i = 0
            while i < limit {
                let c = b[i]
                if c == UInt8(ascii: "\n") { newline = i; break }
                if c == UInt8(ascii: "|") {
                    if bar1 < 0 { bar1 = i } else if bar2 < 0 { bar2 = i } else { return nil }
                }
                if c == UInt8(ascii: "/"), bar2 >= 0, slash < 0 { slash = i }
                i += 1
            }
            guard bar1 > 0, bar2 == bar1 + 2, newline > bar2 else { return nil }
            guard let kind = kind(UnsafeBufferPointer(rebasing: b[0..<bar1])) else { return nil }
            let audience: Audience
            switch b[bar1 + 1] {
            case UInt8(ascii: "a"): audience = .everyone
            case UInt8(ascii: "s"): audience = .staff
            case UInt8(ascii: "u"): audience = .user
            default: return nil
            }
            // Only a chat message's key carries an origin; an empty one is no origin.
            let origin: Range<Int>? = kind == .message && slash >= 0 && newline > slash + 1 ? (slash + 1)..<newline : nil
            let keyEnd = kind == .message && slash >= 0 ? slash : newline
            let key = String(decoding: UnsafeBufferPointer(rebasing: b[(bar2 + 1)..<keyEnd]), as: UTF8.self)
            return Header(kind: kind, audience: audience, key: key, origin: origin, frameStart: newline + 1)
        }
    }

    private static func kind(_ bytes: UnsafeBufferPointer<UInt8>) -> Kind? {
        switch bytes.count {
        case 3 where bytes.elementsEqual("msg".utf8): return .message
        case 8 where bytes.elementsEqual("assigned".utf8): return .assigned
        case 6 where bytes.elementsEqual("closed".utf8): return .closed
        case 5 where bytes.elementsEqual("moved".utf8): return .moved
        case 5 where bytes.elementsEqual("event".utf8): return .event
        case 5 where bytes.elementsEqual("queue".utf8): return .queue
        case 8 where bytes.elementsEqual("presence".utf8): return .presence
        case 4 where bytes.elementsEqual("user".utf8): return .user
        case 7 where bytes.elementsEqual("profile".utf8): return .profile
        case 5 where bytes.elementsEqual("ended".utf8): return .ended
        default: return nil
        }
    }

    /// A payload given as text (tests, tools).
    public static func parse(_ payload: String) -> PubSubEnvelope? {
        let bytes = Array(payload.utf8)
        guard let h = parseHeader(bytes) else { return nil }
        return PubSubEnvelope(kind: h.kind, audience: h.audience, key: Substring(h.key),
                              origin: h.origin.map { Substring(String(decoding: bytes[$0], as: UTF8.self)) },
                              frame: Substring(String(decoding: bytes[h.frameStart...], as: UTF8.self)))
    }

    /// The payload text (the Swift side publishes typing indicators itself).
    public var payload: String {
        let a: String
        switch audience {
        case .everyone: a = "a"
        case .staff: a = "s"
        case .user: a = "u"
        }
        return kind.rawValue + "|" + a + "|" + key + (origin.flatMap { $0.isEmpty ? nil : "/" + $0 } ?? "") + "\n" + frame
    }

    /// The key, or nil when it is `-` or empty.
    public var keyValue: Substring? { key.isEmpty || key == "-" ? nil : key }
}

import HelpDeskCore

/// Who on this node follows one conversation, and what each of them gets.
///
/// A value: its methods take a pub/sub message's header and return what to do, so routing is
/// tested without sockets or Redis (Tests/HelpDeskServerTests/ConversationFanoutTests.swift).
///
/// Each member has a cursor, the last message id it was given. A JOIN reads the history from
/// Redis while live frames keep arriving: they are held back (`pending`) until the history is out,
/// then replayed, skipping any message at or below the cursor. So a client sees every message
/// exactly once and in order, across reconnects and Redis restarts.
struct ConversationFanout<Frame> {
    struct Member {
        let socket: Int
        let userID: String
        let role: Role
        /// False while a socket only follows events (a customer before its JOIN): messages then
        /// come with the HISTORY of its JOIN, never before it.
        var followsMessages: Bool
        var lastDelivered: StreamID?
        /// Live frames held back while its history is read (nil once live).
        var pending: [Routed]?

        var isStaff: Bool { role != .customer }
    }

    /// The header fields that decide where a frame goes.
    struct Routing: Sendable {
        var kind: PubSubEnvelope.Kind
        var audience: PubSubEnvelope.Audience
        /// The header's key; nil for `-`.
        var key: String?
        /// The local socket that sent this message and got it in its ACK (the header's origin,
        /// when it names this node): it is not sent again, but counts as given to that socket.
        var sender: Int? = nil
    }

    /// A frame with the header fields that decide where it goes.
    struct Routed {
        var kind: PubSubEnvelope.Kind
        var audience: PubSubEnvelope.Audience
        /// The header's key; nil for `-`.
        var key: String?
        var frame: Frame
        /// See `Routing.sender`.
        var sender: Int? = nil

        var routing: Routing { Routing(kind: kind, audience: audience, key: key, sender: sender) }
    }

    enum Action {
        /// Write this frame to this socket.
        case send(socket: Int, frame: Frame)
        /// This socket no longer follows the conversation (it moved to another agent).
        case dropped(socket: Int)
        /// This socket held more frames than `pendingLimit` and no longer follows the conversation:
        /// its client must re-join (RESYNC) to get it back.
        case overflowed(socket: Int)
        /// The conversation left the queue: stop sending its customers queue positions.
        case leftQueue
        /// The conversation may be back in a queue: its customers' positions matter again.
        case maybeQueued(customerSockets: [Int])
    }

    private(set) var members: [Int: Member] = [:]
    /// Live frames a JOIN may hold back, per member: past this the member is dropped (its client
    /// resumes with `last_message_id`), so a stalled history read cannot grow memory.
    static var pendingLimit: Int { 10_000 }

    var isEmpty: Bool { members.isEmpty }

    /// Adds (or re-adds) a socket, holding live frames back until `goLive`.
    /// Frames already held for this socket (a JOIN under way, or the hold after a pub/sub loss) stay
    /// held: `goLive` drops their messages the history covers, and delivers their events (a close, a
    /// transfer, a call), which no history brings back.
    mutating func join(socket: Int, userID: String, role: Role, followsMessages: Bool, after: StreamID?) {
        members[socket] = Member(socket: socket, userID: userID, role: role, followsMessages: followsMessages,
                                 lastDelivered: after, pending: members[socket]?.pending ?? [])
    }

    /// The history is out (up to `historyEnd`): deliver what was held back, without duplicates.
    mutating func goLive(socket: Int, historyEnd: StreamID?) -> [Action] {
        guard var member = members[socket] else { return [] }
        if let historyEnd, member.lastDelivered.map({ $0 < historyEnd }) ?? true { member.lastDelivered = historyEnd }
        let held = member.pending ?? []
        member.pending = nil
        var actions: [Action] = []
        for frame in held where Self.route(frame.routing, messageID: Self.messageID(of: frame.routing), to: &member) {
            actions.append(.send(socket: socket, frame: frame.frame))
        }
        members[socket] = member
        return actions
    }

    /// The pub/sub connection was lost: what was published meanwhile is gone, and a live member's
    /// cursor would jump the gap with the first message after it (its client would then resume past
    /// the gap). Every member that follows messages holds live frames from now on, as during a JOIN,
    /// until its client re-joins (RESYNC asks it to) from the last message it has; its history read
    /// then fills the gap. Members that only follow events keep getting them.
    mutating func holdLive() {
        var index = members.startIndex
        while index != members.endIndex {
            if members.values[index].followsMessages, members.values[index].pending == nil { members.values[index].pending = [] }
            members.formIndex(after: &index)
        }
    }

    /// Removes a socket; true when nobody on this node follows the conversation any more.
    mutating func leave(socket: Int) -> Bool {
        members.removeValue(forKey: socket)
        return members.isEmpty
    }

    func follows(socket: Int) -> Bool { members[socket] != nil }

    /// True while the socket's live frames are held back (a JOIN under way, or a pub/sub loss).
    func holds(socket: Int) -> Bool { members[socket]?.pending != nil }

    /// One frame published on the conversation's channel.
    mutating func deliver(_ frame: Routed) -> [Action] {
        deliver(frame.routing) { frame.frame }
    }

    /// The same, with the frame made by `make` the first time a member needs it (to be sent or
    /// held), at most once: where nobody does, it is never made. So the sender's node, where often
    /// only the sender follows, does not copy the frame of a message sent without echo.
    mutating func deliver(_ routing: Routing, frame make: () -> Frame) -> [Action] {
        var actions: [Action] = []
        let messageID = Self.messageID(of: routing)
        var overLimit: [Int] = []
        var made: Frame?
        // Members are updated in place, by position: this runs for every message, and neither a
        // copy of the keys nor a lookup per member is needed.
        var index = members.startIndex
        while index != members.endIndex {
            if members.values[index].pending != nil {
                if made == nil { made = make() }
                members.values[index].pending!.append(Routed(kind: routing.kind, audience: routing.audience, key: routing.key,
                                                              frame: made!, sender: routing.sender))
                if members.values[index].pending!.count > Self.pendingLimit { overLimit.append(members.keys[index]) }
            } else if Self.route(routing, messageID: messageID, to: &members.values[index]) {
                if made == nil { made = make() }
                actions.append(.send(socket: members.keys[index], frame: made!))
            }
            members.formIndex(after: &index)
        }
        for socket in overLimit {
            members.removeValue(forKey: socket)
            actions.append(.overflowed(socket: socket))
        }
        switch routing.kind {
        case .assigned, .closed:
            actions.append(.leftQueue)
        case .moved:
            // An agent's access was checked when it joined; once the conversation moves to
            // someone else (or back to the queue) its sockets stop following it.
            for (socket, member) in members where member.role == .agent && member.userID != routing.key {
                members.removeValue(forKey: socket)
                actions.append(.dropped(socket: socket))
            }
            let customers = members.values.filter { $0.role == .customer && $0.pending == nil }.map(\.socket)
            if !customers.isEmpty { actions.append(.maybeQueued(customerSockets: customers)) }
        default:
            break
        }
        return actions
    }

    /// A message's stream id (its header's key), read once for all members' cursors.
    private static func messageID(of routing: Routing) -> StreamID? {
        routing.kind == .message ? routing.key.flatMap { StreamID($0) } : nil
    }

    /// Whether one live member gets the frame; advances its cursor for messages.
    private static func route(_ routing: Routing, messageID: StreamID?, to member: inout Member) -> Bool {
        switch routing.audience {
        case .staff:
            guard member.isStaff else { return false }
        case .user:
            return member.userID == routing.key
        case .everyone:
            break
        }
        if routing.kind == .message {
            guard member.followsMessages else { return false }
            if let messageID {
                if let last = member.lastDelivered, messageID <= last { return false }
                member.lastDelivered = messageID
            }
            if member.socket == routing.sender { return false }
        }
        return true
    }
}

extension ConversationFanout: Sendable where Frame: Sendable {}
extension ConversationFanout.Member: Sendable where Frame: Sendable {}
extension ConversationFanout.Routed: Sendable where Frame: Sendable {}

/// How many local sockets want each pub/sub channel: the node subscribes on the first and
/// unsubscribes after the last.
struct SubscriptionCounts {
    private var counts: [String: Int] = [:]

    /// True when this is the channel's first holder (subscribe now).
    mutating func retain(_ channel: String) -> Bool {
        counts[channel, default: 0] += 1
        return counts[channel] == 1
    }

    /// True when this was the channel's last holder (unsubscribe now).
    mutating func release(_ channel: String) -> Bool {
        guard let n = counts[channel] else { return false }
        if n <= 1 {
            counts.removeValue(forKey: channel)
            return true
        }
        counts[channel] = n - 1
        return false
    }

    func count(_ channel: String) -> Int { counts[channel] ?? 0 }
    var channels: Int { counts.count }
}

import Foundation
import HelpDeskCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RedisClient

/// This node's sockets and what each follows; fans pub/sub messages out to them.
///
/// `deliver` runs synchronously on the pub/sub connection's event loop: it reads the payload's
/// header (never the frame), asks the conversation's `ConversationFanout` what to do, and queues
/// one shared buffer on each recipient's outbox. No task switch or actor hop per message.
/// The node subscribes to a conversation's channel while a local socket follows it, to a
/// user's channel while that user has a socket here, and to the presence channel while a
/// supervisor or admin has one (`SubscriptionCounts`).
final class ConnectionHub: Sendable {
    private struct State {
        var nextSessionID = 0
        var sessions: [Int: SocketSession] = [:]
        /// "s:<id>" (staff) or "c:<id>" (customer) to its sockets.
        var userSockets: [String: Set<Int>] = [:]
        var staffSockets: Set<Int> = []
        var conversations: [String: ConversationFanout<ByteBuffer>] = [:]
        var joinedBy: [Int: Set<String>] = [:]
        var subscriptions = SubscriptionCounts()
        /// Sockets per client IP on this node.
        var ipSockets: [String: Int] = [:]
        /// Messages per user on this node, whatever socket they come from (dropped with the user's last socket).
        var userMessages: [String: TokenBucket] = [:]
        /// Pub/sub losses so far, and whether the last one is not resynced yet: a JOIN that began
        /// before a loss, or ends before RESYNC, stays held (see `join`).
        var lossGeneration = 0
        var lossOutstanding = false
    }

    /// Sockets one IP, and one user, may hold on this node (`HELPDESK_MAX_SOCKETS_PER_IP`, `_PER_USER`).
    struct Caps: Sendable {
        var perIP = 500
        var perUser = 20
        /// Bytes a socket may have queued before it counts as too slow (`HELPDESK_SOCKET_OUTBOUND_BYTES`).
        var outboundBytes = 1 << 20
        /// Messages a socket may send a second, and in a burst.
        var messageRate = 20.0
        var messageBurst = 100.0
        /// The other events (SocketLimits.other) a socket may send a second, and in a burst.
        var eventRate = 20.0
        var eventBurst = 40.0
    }

    /// HISTORY frames carry at most this many messages, and about this many bytes of text; the
    /// client asks for the rest. A page always fits a socket's outbound limit.
    static let historyPageSize = 200
    static let historyPageBytes = 256 * 1024

    let store: LiveStore
    let subscriber: RedisSubscriber
    let keys: RedisKeys
    let logger: Logger
    let queuePositions: QueuePositionTracker
    let presenceOrder = PresenceSequencer()
    private let state = NIOLockedValueBox(State())
    /// This node's copy of the category tree (Redis's mirror), for the audience of queue events.
    private let categoryTree = NIOLockedValueBox(CategoryTree())
    /// Subscriptions waiting for Redis's confirmation; joiners of the same channel wait for the same one.
    private let confirming = NIOLockedValueBox<[String: Task<Void, any Error>]>([:])
    private let conversationPrefix: String
    private let userPrefix: String
    /// This process's prefix of an origin (`origin(of:)`): random, so two nodes (or a node and
    /// its restart) never take each other's sockets for their own.
    private let originPrefix: [UInt8]

    let caps: Caps

    /// Sockets open on this node (`helpdesk_websockets`).
    var socketCount: Int { state.withLockedValue { $0.sessions.count } }

    init(store: LiveStore, subscriber: RedisSubscriber, keys: RedisKeys, logger: Logger, caps: Caps = Caps()) {
        self.caps = caps
        self.store = store
        self.subscriber = subscriber
        self.keys = keys
        self.logger = logger
        self.queuePositions = QueuePositionTracker(store: store, logger: logger)
        self.conversationPrefix = keys.conversationChannel("")
        self.userPrefix = keys.userChannel("")
        self.originPrefix = Array(String(UInt64.random(in: 1...UInt64.max), radix: 36).utf8) + [UInt8(ascii: ".")]
    }

    /// What a message's pub/sub header names as its origin when its sender asked for no echo
    /// (`SEND_MESSAGE {echo: false}`): this node's sockets recognise it; other nodes ignore it.
    func origin(of socket: Int) -> String {
        String(decoding: originPrefix, as: UTF8.self) + String(socket)
    }

    /// The local socket an origin names, or nil when it names another node's.
    private func localSocket(origin: UnsafeRawBufferPointer) -> Int? {
        guard origin.count > originPrefix.count, origin.starts(with: originPrefix) else { return nil }
        var socket = 0
        for byte in origin[originPrefix.count...] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), socket < Int.max / 10 - 9 else { return nil }
            socket = socket * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return socket
    }

    // MARK: sockets

    func makeSessionID() -> Int {
        state.withLockedValue { state in
            state.nextSessionID += 1
            return state.nextSessionID
        }
    }

    /// Adds a socket. For an agent, `presence(first)` (first = its first socket on this node) is
    /// queued behind the agent's earlier presence updates before anything else can interleave, so
    /// a reload's disconnect never lands after its connect; the returned task gives its result.
    func register(_ session: SocketSession, presence: (@Sendable (Bool) async throws -> String?)? = nil) async throws -> Task<String?, any Error>? {
        let userKey = session.userKey
        var presenceFirst: Bool?, userFirst: Bool?
        let (first, update) = try state.withLockedValue { state throws -> (Bool, Task<String?, any Error>?) in
            guard state.ipSockets[session.remoteIP, default: 0] < caps.perIP else {
                throw HelpDeskError(.rateLimited, "too many sockets from this address")
            }
            guard state.userSockets[userKey, default: []].count < caps.perUser else {
                throw HelpDeskError(.rateLimited, "too many sockets for this user: close some tabs")
            }
            state.ipSockets[session.remoteIP, default: 0] += 1
            state.sessions[session.id] = session
            if session.isStaff { state.staffSockets.insert(session.id) }
            let first = state.userSockets[userKey, default: []].isEmpty
            state.userSockets[userKey, default: []].insert(session.id)
            let update = presence.map { body in presenceOrder.run(session.caller.id) { try await body(first) } }
            // Retained here, with the socket, before any wait: paired with the releases in
            // `unregister`, which only a registered session reaches.
            presenceFirst = Self.watchesPresence(session) ? state.subscriptions.retain(keys.presenceChannel) : nil
            if first, session.isStaff { userFirst = state.subscriptions.retain(keys.userChannel(session.caller.id)) }
            return (first, update)
        }
        if let presenceFirst {
            // Confirmed before HELLO: the page reads its presence snapshot on HELLO, and no update
            // may fall between the two.
            try await confirmSubscription(keys.presenceChannel, first: presenceFirst)
        }
        if let userFirst {
            try await confirmSubscription(keys.userChannel(session.caller.id), first: userFirst)
        }
        return update
    }

    /// Removes a socket; when it was its user's last socket on this node, `onLast` is queued
    /// (for agents, behind their earlier presence updates) and its task returned.
    func unregister(_ session: SocketSession, onLast: (@Sendable () async throws -> String?)? = nil) -> Task<String?, any Error>? {
        let userKey = session.userKey
        var unsubscribe: [String] = []
        let last = state.withLockedValue { state -> Bool in
            // Under the lock: a socket registering next, which may subscribe the same channel
            // again, does so after this UNSUBSCRIBE is written (`RedisSubscriber.remove`).
            defer { if !unsubscribe.isEmpty { subscriber.unsubscribe(unsubscribe) } }
            guard state.sessions.removeValue(forKey: session.id) != nil else { return false }
            state.staffSockets.remove(session.id)
            if Self.watchesPresence(session), state.subscriptions.release(keys.presenceChannel) {
                unsubscribe.append(keys.presenceChannel)
            }
            state.ipSockets[session.remoteIP, default: 1] -= 1
            if state.ipSockets[session.remoteIP] == 0 { state.ipSockets.removeValue(forKey: session.remoteIP) }
            for conversation in state.joinedBy.removeValue(forKey: session.id) ?? [] {
                if let channel = Self.removeMember(&state, socket: session.id, conversation: conversation, keys: keys) {
                    unsubscribe.append(channel)
                }
            }
            state.userSockets[userKey]?.remove(session.id)
            guard state.userSockets[userKey]?.isEmpty == true else { return false }
            state.userSockets.removeValue(forKey: userKey)
            state.userMessages.removeValue(forKey: userKey)
            if session.isStaff, state.subscriptions.release(keys.userChannel(session.caller.id)) {
                unsubscribe.append(keys.userChannel(session.caller.id))
            }
            return true
        }
        queuePositions.untrack(socket: session.id)
        guard last, let onLast else { return nil }
        return presenceOrder.run(session.caller.id, onLast)
    }

    /// Whether a new socket from this IP and user would pass the caps now (checked again, binding,
    /// when it registers): lets the upgrade be refused with a clear 429.
    func admits(ip: String, caller: Caller) -> Bool {
        state.withLockedValue { state in
            state.ipSockets[ip, default: 0] < caps.perIP && state.userSockets[Self.userKey(caller), default: []].count < caps.perUser
        }
    }

    /// One chat message of this user: its sockets on this node share one bucket, so opening more
    /// sockets does not multiply the rate.
    func allowMessage(from session: SocketSession) -> Bool {
        state.withLockedValue { state in
            state.userMessages[session.userKey, default: TokenBucket(rate: caps.messageRate, burst: caps.messageBurst)].take()
        }
    }

    /// Local agent ids and the conversations of connected customers, for the node heartbeat.
    func heartbeatSubjects() -> (agents: [String], waitingConversations: [String]) {
        state.withLockedValue { state in
            var agents: Set<String> = [], customers: Set<String> = []
            for session in state.sessions.values {
                if session.caller.role == .agent { agents.insert(session.caller.id) }
                // Every connected customer counts as present (the script ignores non-waiting ones).
                if session.caller.role == .customer, let conversation = session.caller.conversationID { customers.insert(conversation) }
            }
            return (Array(agents), Array(customers))
        }
    }

    /// Sessions of one staff user on this node.
    func sessions(ofUser id: String) -> [SocketSession] {
        state.withLockedValue { state in (state.userSockets["s:" + id] ?? []).compactMap { state.sessions[$0] } }
    }

    /// Closes sockets whose token has expired (a socket is only as good as the token it opened with).
    func closeExpired(now: Int) {
        for session in allSessions() where session.caller.expiresAt <= now {
            session.close(.unknown(4001), "token expired: reconnect with a fresh one")
        }
    }

    /// Pings sockets quiet for 20 s and closes those quiet for 60 s (three missed pings): a client
    /// gone without closing must not hold its presence (one sweep per heartbeat, no timer per socket).
    func keepalive() {
        for session in allSessions() { session.keepalive(pingAfter: 20_000, closeAfter: 60_000) }
    }

    /// Every local socket: drain on shutdown, resync after a Redis loss.
    func allSessions() -> [SocketSession] { state.withLockedValue { Array($0.sessions.values) } }

    // MARK: conversations

    /// Follows a conversation: subscribe, send what came after `lastMessageID` as HISTORY (one page
    /// of at most `historyPageSize`; `has_more` asks the client to JOIN again from the last id), then
    /// go live without gap or duplicate. While pages remain the socket gets no live messages: the
    /// next JOIN's page brings them in order.
    func join(_ session: SocketSession, conversationID: String, lastMessageID: String?, sendHistory: Bool, ref: String? = nil) async throws {
        let after = lastMessageID.flatMap { StreamID($0) }
        let channel = keys.conversationChannel(conversationID)
        var generation = 0
        let retained: Bool? = state.withLockedValue { state in
            guard state.sessions[session.id] != nil else { return nil }
            generation = state.lossGeneration
            let already = state.joinedBy[session.id]?.contains(conversationID) ?? false
            state.conversations[conversationID, default: .init()].join(
                socket: session.id, userID: session.caller.id, role: session.caller.role, followsMessages: sendHistory, after: after)
            state.joinedBy[session.id, default: []].insert(conversationID)
            return already ? false : state.subscriptions.retain(channel)
        }
        guard let retained else { return }
        do {
            try await confirmSubscription(channel, first: retained)
            var historyEnd = after
            var complete = true
            if sendHistory {
                var page = try await store.messagePage(conversationID, after: after?.text, count: Self.historyPageSize)
                var bytes = 0
                if let cut = page.messages.firstIndex(where: { bytes += $0.text.utf8.count + 200; return bytes > Self.historyPageBytes }), cut > 0 {
                    page = (Array(page.messages[..<cut]), true)
                }
                let visible = session.isStaff ? page.messages : page.messages.filter { !$0.isInternal }
                if let last = page.messages.last.flatMap({ StreamID($0.id) }) { historyEnd = last }
                complete = !page.hasMore
                session.send(HistoryFrame.encode(conversationID: conversationID, messages: visible, hasMore: page.hasMore,
                                                 nextAfter: page.hasMore ? page.messages.last?.id : nil, ref: ref))
            }
            let actions = state.withLockedValue { state -> [ConversationFanout<ByteBuffer>.Action] in
                // Pub/sub was lost during this JOIN, or is not resynced yet: its history may end
                // before the gap, so going live would carry the client past it. It stays held; the
                // RESYNC every socket gets makes its client re-join.
                if state.lossOutstanding || state.lossGeneration != generation { return [] }
                if !complete {
                    // Messages after this page come with the next JOIN's HISTORY, not live.
                    state.conversations[conversationID]?.join(socket: session.id, userID: session.caller.id,
                                                              role: session.caller.role, followsMessages: false, after: historyEnd)
                }
                return state.conversations[conversationID]?.goLive(socket: session.id, historyEnd: historyEnd) ?? []
            }
            perform(actions, conversation: conversationID)
        } catch {
            leave(session, conversationID: conversationID)
            throw error
        }
    }

    /// Watches a waiting customer's queue position (QUEUE_STATUS whenever it changes).
    func trackWaiting(_ session: SocketSession, conversationID: String, category: String) {
        guard state.withLockedValue({ $0.sessions[session.id] != nil }) else { return }
        queuePositions.track(session, conversationID: conversationID, category: category)
    }

    func leave(_ session: SocketSession, conversationID: String) {
        state.withLockedValue { state in
            guard state.joinedBy[session.id]?.remove(conversationID) != nil else { return }
            if let channel = Self.removeMember(&state, socket: session.id, conversation: conversationID, keys: keys) {
                subscriber.unsubscribe([channel])
            }
        }
    }

    func isJoined(_ session: SocketSession, conversationID: String) -> Bool {
        state.withLockedValue { $0.conversations[conversationID]?.follows(socket: session.id) ?? false }
    }

    /// Drops one member; returns the channel to unsubscribe when it was the conversation's last.
    private static func removeMember(_ state: inout State, socket: Int, conversation: String, keys: RedisKeys) -> String? {
        guard var fanout = state.conversations[conversation] else { return nil }
        let empty = fanout.leave(socket: socket)
        if empty { state.conversations.removeValue(forKey: conversation) } else { state.conversations[conversation] = fanout }
        let channel = keys.conversationChannel(conversation)
        return empty && state.subscriptions.release(channel) ? channel : nil
    }

    // MARK: subscriptions

    /// Waits until Redis confirmed the channel; the first holder sends the SUBSCRIBE.
    private func confirmSubscription(_ channel: String, first: Bool) async throws {
        let task: Task<Void, any Error>? = confirming.withLockedValue { confirming in
            if let existing = confirming[channel] { return existing }
            guard first else { return nil }
            let subscriber = self.subscriber
            let task = Task { try await subscriber.subscribe([channel]) }
            confirming[channel] = task
            return task
        }
        guard let task else { return }
        defer { _ = confirming.withLockedValue { $0[channel] == task ? $0.removeValue(forKey: channel) : nil } }
        try await task.value
    }

    /// Subscribes to the queue channel, which every staff socket follows. It is wanted even if the
    /// pub/sub connection is not up yet; it subscribes when it is.
    func start() async {
        try? await subscriber.subscribe([keys.queueChannel])
    }

    /// Supervisors and admins get the presence channel's events (`deliver`, `.presence`). The node
    /// follows that channel only while one of them has a socket here: every pick, offer and status
    /// change publishes there, and a node serving only agents and customers would read each one
    /// for nobody (BENCHMARKS.md, eleventh round).
    private static func watchesPresence(_ session: SocketSession) -> Bool {
        session.caller.role == .admin || session.caller.role == .supervisor
    }

    /// Whether this node follows the presence channel now (tests).
    var followsPresence: Bool { state.withLockedValue { $0.subscriptions.count(keys.presenceChannel) > 0 } }

    // MARK: fan-out

    /// One pub/sub message, routed by its header (`PubSubEnvelope`).
    func deliver(channel: String, payload: String) {
        var channel = channel, payload = payload
        channel.withUTF8 { channel in payload.withUTF8 { deliver(channel: UnsafeRawBufferPointer(channel), payload: UnsafeRawBufferPointer($0)) } }
    }

    /// The same, with the bytes where the subscriber's reader holds them (valid during the call):
    /// the frame is copied once, into the buffer every recipient's socket writes.
    func deliver(channel rawChannel: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) {
        guard let header = PubSubEnvelope.parseHeader(payload) else {
            logger.warning("pub/sub payload without a header", metadata: ["channel": "\(String(decoding: rawChannel, as: UTF8.self))"])
            return
        }
        let key: String? = header.key == "-" || header.key.isEmpty ? nil : header.key
        /// The frame in the buffer every recipient's socket writes, copied from the reader's bytes.
        func copyFrame() -> ByteBuffer {
            let bytes = UnsafeRawBufferPointer(rebasing: payload[header.frameStart...])
            var frame = ByteBufferAllocator().buffer(capacity: bytes.count)
            frame.writeBytes(bytes)
            return frame
        }
        switch header.kind {
        case .message, .assigned, .closed, .moved, .event:
            guard rawChannel.starts(with: conversationPrefix.utf8) else { return }
            let conversation = String(decoding: UnsafeRawBufferPointer(rebasing: rawChannel[conversationPrefix.utf8.count...]), as: UTF8.self)
            let sender = header.kind == .message ? header.origin.flatMap { localSocket(origin: UnsafeRawBufferPointer(rebasing: payload[$0])) } : nil
            let routing = ConversationFanout<ByteBuffer>.Routing(kind: header.kind, audience: header.audience, key: key, sender: sender)
            let actions = state.withLockedValue { state -> [ConversationFanout<ByteBuffer>.Action] in
                // Mutated in place (no copy of the members per message); the frame is copied only
                // if some member needs it.
                guard let actions = state.conversations[conversation]?.deliver(routing, frame: copyFrame) else { return [] }
                for action in actions {
                    switch action {
                    case .dropped(let socket), .overflowed(let socket): state.joinedBy[socket]?.remove(conversation)
                    default: break
                    }
                }
                if state.conversations[conversation]?.isEmpty == true {
                    state.conversations.removeValue(forKey: conversation)
                    let channel = keys.conversationChannel(conversation)
                    if state.subscriptions.release(channel) { subscriber.unsubscribe([channel]) }
                }
                return actions
            }
            perform(actions, conversation: conversation)
        case .user, .profile, .ended:
            // One user's sockets on this node, whatever the frame.
            guard rawChannel.starts(with: userPrefix.utf8) else { return }
            let user = String(decoding: UnsafeRawBufferPointer(rebasing: rawChannel[userPrefix.utf8.count...]), as: UTF8.self)
            let sessions = sessions(ofUser: user)
            guard !sessions.isEmpty else { return }
            if header.kind == .profile {
                // An admin changed the agent's categories or capacity: its sockets' queue changes
                // follow the new categories from here on, in the order pub/sub delivers (the queue
                // channel and this one share the connection). Decoded: a rare admin change, not routing.
                let frameBytes = UnsafeRawBufferPointer(rebasing: payload[header.frameStart...])
                if let profile = try? JSON.decoder.decode(ServerEnvelope<ServerEventData.ProfileUpdated>.self, from: Data(frameBytes)).data {
                    let categories = Set(profile.categoryIds)
                    for session in sessions { session.setCategories(categories) }
                }
            }
            let frame = copyFrame()
            for session in sessions {
                session.send(frame)
                // SESSION_ENDED: the account was deactivated or its role changed.
                if header.kind == .ended { session.close(.policyViolation, "session ended: sign in again") }
            }
        case .queue:
            let frame = copyFrame()
            guard let key else {
                // CATEGORIES_UPDATED: the tree changed (routing, wrap-up, parents); every staff page may care
                refreshCategoryTree()
                let staff = state.withLockedValue { state in state.staffSockets.compactMap { state.sessions[$0] } }
                for session in staff { session.send(frame) }
                return
            }
            // Supervisors and admins see every queue; an agent the pick-routed queues it serves (its
            // categories, their subcategories, the uncategorised queue), as GET /queue and PICK.
            let tree = categoryTree.withLockedValue { $0 }
            let recipients = state.withLockedValue { state in
                state.staffSockets.compactMap { state.sessions[$0] }.filter {
                    $0.isSupervisor || tree.picks($0.categories, category: key)
                }
            }
            // Every staff socket gets every queue change: batched per socket, in one flush per
            // window (`sendSoon`), or one QUEUE_CHANGES frame per window where the client asked.
            let change = frame.withUnsafeReadableBytes { QueueChangesFrame.changeRange(in: $0) }.flatMap {
                frame.getSlice(at: frame.readerIndex + $0.lowerBound, length: $0.count)
            }
            for session in recipients { session.sendQueueChange(frame: frame, change: change) }
            queuePositions.schedule()
        case .presence:
            let frame = copyFrame()
            // key = the agent's supervisor: supervisors see their own agents, admins everyone.
            let recipients = state.withLockedValue { state in
                state.staffSockets.compactMap { state.sessions[$0] }.filter {
                    $0.caller.role == .admin || ($0.caller.role == .supervisor && $0.caller.id == key)
                }
            }
            for session in recipients { session.send(frame) }
        }
    }

    private func perform(_ actions: [ConversationFanout<ByteBuffer>.Action], conversation: String) {
        guard !actions.isEmpty else { return }
        // One pass under the lock finds each recipient's session; the writes happen outside it.
        var sends: [(SocketSession, ByteBuffer)] = []
        sends.reserveCapacity(actions.count)
        state.withLockedValue { state in
            for case .send(let socket, let frame) in actions {
                if let session = state.sessions[socket] { sends.append((session, frame)) }
            }
        }
        for action in actions {
            switch action {
            case .send, .dropped: break
            case .overflowed(let socket):
                // Silently gone, its client would wait forever: RESYNC makes it re-join.
                if let session = state.withLockedValue({ $0.sessions[socket] }) { session.send(ServerFrame.resync()) }
            case .leftQueue: queuePositions.untrack(conversation: conversation)
            case .maybeQueued(let sockets):
                let sessions = state.withLockedValue { state in sockets.compactMap { state.sessions[$0] } }
                queuePositions.recheck(sessions, conversationID: conversation)
            }
        }
        for (session, frame) in sends { session.send(frame) }
    }

    /// Replaces this node's copy of the category tree.
    func setCategoryTree(_ tree: CategoryTree) {
        categoryTree.withLockedValue { $0 = tree }
    }

    /// Reads the tree from Redis's mirror again (a node announced a change, or pub/sub came back).
    func refreshCategoryTree() {
        Task { [store] in
            if let tree = try? await store.categoryTree() { self.setCategoryTree(tree) }
        }
    }

    /// A PROFILE_UPDATED published while pub/sub was down is lost: agents' sockets read their
    /// categories from Redis again.
    private func refreshAgentCategories(_ sessions: [SocketSession]) {
        guard !sessions.isEmpty else { return }
        Task { [store, logger] in
            for (agent, own) in Dictionary(grouping: sessions, by: { $0.caller.id }) {
                do {
                    let categories = try await store.agentCategories(agent)
                    for session in own { session.setCategories(categories) }
                } catch {
                    logger.debug("could not read an agent's categories after a pub/sub loss", metadata: ["error": "\(error)"])
                    return
                }
            }
        }
    }

    /// Whether a socket's live frames of a conversation are held back (tests, diagnostics).
    func holdsFrames(of session: SocketSession, conversationID: String) -> Bool {
        state.withLockedValue { $0.conversations[conversationID]?.holds(socket: session.id) ?? false }
    }

    /// The pub/sub connection was lost: live messages are held back until each socket re-joins
    /// (`ConversationFanout.holdLive`).
    func holdLiveMessages() {
        state.withLockedValue { state in
            state.lossGeneration += 1
            state.lossOutstanding = true
            for key in Array(state.conversations.keys) { state.conversations[key]?.holdLive() }
        }
    }

    /// After the pub/sub connection came back: messages published meanwhile were lost, so every
    /// client re-joins from its last message id.
    func resyncAll() {
        // JOINs from now on (the re-joins RESYNC asks for) may go live again.
        state.withLockedValue { $0.lossOutstanding = false }
        refreshCategoryTree()
        let sessions = allSessions()
        refreshAgentCategories(sessions.filter { $0.caller.role == .agent })
        let frame = ByteBuffer(string: ServerFrame.resync())
        for session in sessions { session.send(frame) }
        queuePositions.schedule()
    }

    /// "s:<id>" (staff) or "c:<id>" (customer): a user's sockets and message budget on this node.
    static func userKey(_ caller: Caller) -> String {
        (caller.isStaff ? "s:" : "c:") + caller.id
    }
}

/// HISTORY frames: built here because their messages come from a stream read, not a script.
enum HistoryFrame {
    /// `nextAfter`: with `hasMore`, the page's last message id, shown or not: where the next JOIN
    /// resumes (a customer's page holding only internal notes has no message to take it from).
    static func encode(conversationID: String, messages: [MessageView], hasMore: Bool, nextAfter: String? = nil, ref: String?) -> String {
        ServerFrame.frame(.history, ref: ref) { w in
            w.key("conversation_id"); w.string(conversationID)
            w.raw(","); w.key("has_more"); w.bool(hasMore)
            if let nextAfter { w.raw(","); w.key("next_after"); w.string(nextAfter) }
            w.raw(","); w.key("messages"); w.raw("[")
            for (i, m) in messages.enumerated() {
                if i > 0 { w.raw(",") }
                m.write(to: &w)
            }
            w.raw("]")
        }
    }
}


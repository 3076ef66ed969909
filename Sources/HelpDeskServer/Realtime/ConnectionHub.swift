import Foundation
import HelpDeskCore
import Logging
import RedisClient

/// This node's sockets and the conversations they joined; fans pub/sub messages out to them.
///
/// The node subscribes to a conversation's channel while at least one local socket joined it and
/// to a user's channel while that user has a socket here. A frame from pub/sub is forwarded as the
/// text it arrived in (encoded once, by the Lua script that published it) to each local socket.
/// Each (socket, conversation) pair has a cursor: the last message id delivered. Joining buffers
/// live frames until the history is sent, then drops any at or below the cursor, so a client sees
/// every message exactly once and in order, across reconnects and Redis restarts.
actor ConnectionHub {
    private struct Cursor {
        /// False while a socket only follows a conversation's events (a customer before it JOINs):
        /// messages then come with the HISTORY of its JOIN, never before it.
        var messages: Bool
        var lastDelivered: StreamID?
        /// Live frames held back while the history is being read (nil once live).
        var pending: [(key: String, audience: Character, frame: String)]?
    }

    private struct WaitingCustomer {
        var conversationID: String
        var category: String
        var lastPosition: Int?
    }

    let store: LiveStore
    let subscriber: RedisSubscriber
    let keys: RedisKeys
    let logger: Logger

    private var sessions: [Int: SocketSession] = [:]
    private var cursors: [String: [Int: Cursor]] = [:]
    private var joinedBy: [Int: Set<String>] = [:]
    private var userSessions: [String: Set<Int>] = [:]
    private var waitingCustomers: [Int: WaitingCustomer] = [:]
    private var subscriptions: [String: Task<Void, any Error>] = [:]
    private var queueStatusScheduled = false
    private var nextSessionID = 0
    /// Per agent, the last presence update sent to Redis: updates of one agent run in the order
    /// its sockets came and went on this node (a reload's disconnect must not land after its connect).
    private var presenceChains: [String: Task<String?, any Error>] = [:]

    init(store: LiveStore, subscriber: RedisSubscriber, keys: RedisKeys, logger: Logger) {
        self.store = store
        self.subscriber = subscriber
        self.keys = keys
        self.logger = logger
    }

    // MARK: sockets

    func makeSessionID() -> Int {
        nextSessionID += 1
        return nextSessionID
    }

    /// Adds a socket. For an agent, `presence(first)` (first = its first socket on this node) is
    /// queued behind the agent's earlier presence updates before anything else can interleave, so
    /// a reload's disconnect never lands after its connect; the returned task gives its result.
    func register(_ session: SocketSession, presence: (@Sendable (Bool) async throws -> String?)? = nil) async throws -> Task<String?, any Error>? {
        sessions[session.id] = session
        let userKey = Self.userKey(session.caller)
        let first = userSessions[userKey, default: []].isEmpty
        userSessions[userKey, default: []].insert(session.id)
        let update = presence.map { body in chainPresence(session.caller.id) { try await body(first) } }
        if first, session.isStaff {
            try await ensureSubscribed(keys.userChannel(session.caller.id))
        }
        return update
    }

    private func chainPresence(_ agentID: String, _ update: @escaping @Sendable () async throws -> String?) -> Task<String?, any Error> {
        let previous = presenceChains[agentID]
        let task = Task {
            _ = try? await previous?.value
            return try await update()
        }
        presenceChains[agentID] = task
        return task
    }

    /// Removes a socket; when it was its user's last socket on this node, `onLast` is queued
    /// (for agents, behind their earlier presence updates) and its task returned.
    func unregister(_ session: SocketSession, onLast: (@Sendable () async throws -> String?)? = nil) -> Task<String?, any Error>? {
        sessions.removeValue(forKey: session.id)
        waitingCustomers.removeValue(forKey: session.id)
        for conversation in joinedBy.removeValue(forKey: session.id) ?? [] {
            removeCursor(session: session.id, conversation: conversation)
        }
        let userKey = Self.userKey(session.caller)
        userSessions[userKey]?.remove(session.id)
        guard userSessions[userKey]?.isEmpty == true else { return nil }
        userSessions.removeValue(forKey: userKey)
        if session.isStaff { unsubscribe(keys.userChannel(session.caller.id)) }
        guard let onLast else { return nil }
        let task = chainPresence(session.caller.id, onLast)
        return task
    }

    /// Local agent ids and waiting customers' conversations, for the node heartbeat.
    func heartbeatSubjects() -> (agents: [String], waitingConversations: [String]) {
        var agents: Set<String> = []
        var customers: Set<String> = []
        for session in sessions.values {
            if session.caller.role == .agent { agents.insert(session.caller.id) }
            // Every connected customer counts as present (the script ignores non-waiting ones),
            // whether or not this node follows its queue position.
            if session.caller.role == .customer, let conversation = session.caller.conversationID { customers.insert(conversation) }
        }
        return (Array(agents), Array(customers))
    }

    /// Sessions of one staff user on this node.
    func sessions(ofUser id: String) -> [SocketSession] {
        (userSessions["s:" + id] ?? []).compactMap { sessions[$0] }
    }

    /// Closes sockets whose token has expired (a socket is only as good as the token it opened with).
    func closeExpired(now: Int) {
        for session in sessions.values where session.caller.expiresAt <= now {
            session.close(.unknown(4001), "token expired: reconnect with a fresh one")
        }
    }

    /// Every local socket: drain on shutdown, resync after a Redis loss.
    func allSessions() -> [SocketSession] { Array(sessions.values) }

    // MARK: conversations

    /// Joins a socket to a conversation: subscribe, read what came after `lastMessageID`, send it as
    /// HISTORY, then go live without gap or duplicate.
    func join(_ session: SocketSession, conversationID: String, lastMessageID: String?, sendHistory: Bool) async throws {
        guard sessions[session.id] != nil else { return }
        let after = lastMessageID.flatMap { StreamID($0) }
        cursors[conversationID, default: [:]][session.id] = Cursor(messages: sendHistory, lastDelivered: after, pending: [])
        joinedBy[session.id, default: []].insert(conversationID)
        do {
            try await ensureSubscribed(keys.conversationChannel(conversationID))
            var cursorEnd = after
            if sendHistory {
                let history = try await store.messages(conversationID, after: after?.text)
                let visible = session.isStaff ? history : history.filter { !$0.isInternal }
                if let last = history.last.flatMap({ StreamID($0.id) }) { cursorEnd = last }
                session.send(ServerFrame.encode("HISTORY", HistoryData(conversationId: conversationID, messages: visible)))
            }
            goLive(session: session.id, conversation: conversationID, after: cursorEnd)
        } catch {
            leave(session, conversationID: conversationID)
            throw error
        }
    }

    /// Watches a waiting customer's queue position (QUEUE_STATUS whenever it changes).
    func trackWaiting(_ session: SocketSession, conversationID: String, category: String) {
        guard sessions[session.id] != nil else { return }
        waitingCustomers[session.id] = WaitingCustomer(conversationID: conversationID, category: category, lastPosition: nil)
        scheduleQueueStatus()
    }

    private func goLive(session id: Int, conversation: String, after: StreamID?) {
        guard var cursor = cursors[conversation]?[id], let session = sessions[id] else { return }
        cursor.lastDelivered = after
        let pending = cursor.pending ?? []
        cursor.pending = nil
        cursors[conversation]?[id] = cursor
        for item in pending {
            forward(item.frame, key: item.key, audience: item.audience, to: session, conversation: conversation)
        }
    }

    func leave(_ session: SocketSession, conversationID: String) {
        joinedBy[session.id]?.remove(conversationID)
        removeCursor(session: session.id, conversation: conversationID)
    }

    func isJoined(_ session: SocketSession, conversationID: String) -> Bool {
        cursors[conversationID]?[session.id] != nil
    }

    private func removeCursor(session: Int, conversation: String) {
        cursors[conversation]?.removeValue(forKey: session)
        if cursors[conversation]?.isEmpty == true {
            cursors.removeValue(forKey: conversation)
            unsubscribe(keys.conversationChannel(conversation))
        }
    }

    // MARK: subscriptions

    private func ensureSubscribed(_ channel: String) async throws {
        if let task = subscriptions[channel] {
            try await task.value
            return
        }
        let subscriber = self.subscriber
        let task = Task { try await subscriber.subscribe([channel]) }
        subscriptions[channel] = task
        do {
            try await task.value
        } catch {
            if subscriptions[channel] == task { subscriptions.removeValue(forKey: channel) }
            throw error
        }
    }

    private func unsubscribe(_ channel: String) {
        subscriptions.removeValue(forKey: channel)
        subscriber.unsubscribe([channel])
    }

    /// Subscribes to the node-wide channels (queue and presence events).
    func start() async {
        // Both are wanted even if the pub/sub connection is not up yet; it subscribes when it is.
        try? await subscriber.subscribe([keys.queueChannel, keys.presenceChannel])
    }

    // MARK: fan-out

    /// One pub/sub message: `<kind>|<audience>|<key>\n<frame>` (lua/lib/hd.lua describes it).
    /// Routing reads the header only.
    func deliver(channel: String, payload: String) {
        guard let newline = payload.firstIndex(of: "\n") else { return }
        let header = payload[..<newline].split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard header.count == 3, let audienceCode = header[1].first else { return }
        let kind = header[0]
        // 'u' (one user) is what this hub calls 't'
        let audience: Character = audienceCode == "u" ? "t" : audienceCode
        let key = String(header[2])
        // on a conversation channel only a chat message's key is a stream id (the cursor)
        let forwardKey = kind == "msg" || audience == "t" ? key : "-"
        let frame = String(payload[payload.index(after: newline)...])
        guard channel.hasPrefix(keys.prefix) else { return }
        let name = channel.dropFirst(keys.prefix.count)

        if name.hasPrefix("ch:conv:") {
            let conversation = String(name.dropFirst("ch:conv:".count))
            for (id, cursor) in cursors[conversation] ?? [:] {
                guard let session = sessions[id] else { continue }
                if cursor.pending != nil {
                    cursors[conversation]?[id]?.pending?.append((forwardKey, audience, frame))
                } else {
                    forward(frame, key: forwardKey, audience: audience, to: session, conversation: conversation)
                }
            }
            if kind == "assigned" || kind == "closed" {
                for (id, waiting) in waitingCustomers where waiting.conversationID == conversation {
                    waitingCustomers.removeValue(forKey: id)
                }
            }
            if kind == "moved" {
                dropFormerAgents(conversation, newAgent: key == "-" ? nil : key)
                requeued(conversation)
            }
        } else if name.hasPrefix("ch:user:") {
            for session in sessions(ofUser: String(name.dropFirst("ch:user:".count))) { session.send(frame) }
        } else if name == "ch:queue" {
            for session in sessions.values where session.isStaff {
                if session.isSupervisor || session.categories.isEmpty || session.categories.contains(key) { session.send(frame) }
            }
            scheduleQueueStatus()
        } else if name == "ch:presence" {
            // key = the agent's supervisor: supervisors see their own agents, admins everyone.
            for session in sessions.values where session.caller.role == .admin || (session.caller.role == .supervisor && session.caller.id == key) {
                session.send(frame)
            }
        }
    }

    private func forward(_ frame: String, key: String, audience: Character, to session: SocketSession, conversation: String) {
        if audience == "s" && !session.isStaff { return }
        // 't': for one user only (call signaling); key is that user's id.
        if audience == "t" {
            if session.caller.id == key { session.send(frame) }
            return
        }
        if let id = StreamID(key) {
            guard let cursor = cursors[conversation]?[session.id], cursor.messages else { return }
            if let last = cursor.lastDelivered, id <= last { return }
            cursors[conversation]?[session.id]?.lastDelivered = id
        }
        session.send(frame)
    }

    /// An agent's access is checked when it joins; when the conversation moves to someone else
    /// (or back to the queue) its sockets stop following it.
    private func dropFormerAgents(_ conversation: String, newAgent: String?) {
        for (id, _) in cursors[conversation] ?? [:] {
            guard let session = sessions[id], session.caller.role == .agent, session.caller.id != newAgent else { continue }
            joinedBy[id]?.remove(conversation)
            removeCursor(session: id, conversation: conversation)
        }
    }

    private func requeued(_ conversation: String) {
        for (id, cursor) in cursors[conversation] ?? [:] where cursor.pending == nil {
            guard let session = sessions[id], session.caller.role == .customer else { continue }
            Task { [store] in
                if let view = try? await store.conversation(conversation), view.status == "waiting" {
                    self.trackWaiting(session, conversationID: conversation, category: view.categoryId)
                }
            }
        }
    }

    /// After the pub/sub connection came back: messages published meanwhile were lost, so every
    /// client re-joins from its last message id.
    func resyncAll() {
        let frame = ServerFrame.encode("RESYNC", [String: String]())
        for session in sessions.values { session.send(frame) }
        scheduleQueueStatus()
    }

    // MARK: queue status

    /// Recomputes waiting customers' positions soon, once for a burst of queue events.
    func scheduleQueueStatus() {
        guard !queueStatusScheduled, !waitingCustomers.isEmpty else { return }
        queueStatusScheduled = true
        Task {
            try? await Task.sleep(for: .milliseconds(50))
            await self.sendQueueStatus()
        }
    }

    private func sendQueueStatus() async {
        queueStatusScheduled = false
        let waiting = waitingCustomers
        guard !waiting.isEmpty else { return }
        do {
            let unique = Array(Set(waiting.values.map { "\($0.conversationID)\u{1}\($0.category)" })).map {
                let parts = $0.split(separator: "\u{1}", omittingEmptySubsequences: false)
                return (id: String(parts[0]), category: String(parts[1]))
            }
            let positions = try await store.positions(unique)
            let inputs = try await store.waitInputs()
            for (sessionID, customer) in waiting {
                guard let session = sessions[sessionID] else {
                    waitingCustomers.removeValue(forKey: sessionID)
                    continue
                }
                guard let position = positions[customer.conversationID] else {
                    waitingCustomers.removeValue(forKey: sessionID)
                    continue
                }
                if waitingCustomers[sessionID]?.lastPosition == position { continue }
                waitingCustomers[sessionID]?.lastPosition = position
                session.send(ServerFrame.encode("QUEUE_STATUS", QueueStatusData(
                    conversationId: customer.conversationID, position: position,
                    estimatedWaitS: Self.estimatedWait(position: position, handleMs: inputs.handleMs, agentsOnline: inputs.agentsOnline))))
            }
        } catch {
            logger.warning("queue status failed", metadata: ["error": "\(error)"])
        }
    }

    /// Seconds until a customer at `position` is likely served: the people ahead, shared among
    /// the agents online, each taking the recent average handle time (5 min before there is one).
    static func estimatedWait(position: Int, handleMs: Int, agentsOnline: Int) -> Int {
        let handle = handleMs > 0 ? handleMs : 300_000
        return Int((Double(position) * Double(handle) / Double(max(1, agentsOnline)) / 1000).rounded(.up))
    }

    private static func userKey(_ caller: Caller) -> String {
        (caller.isStaff ? "s:" : "c:") + caller.id
    }
}

struct HistoryData: Encodable {
    var conversationId: String
    var messages: [MessageView]
}

struct QueueStatusData: Encodable {
    var conversationId: String
    var position: Int
    var estimatedWaitS: Int
}

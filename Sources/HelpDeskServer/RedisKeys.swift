/// Every Redis key and channel name, in one place. All start with the deployment's prefix, which
/// holds a hash tag (`hd:{default}:`), so the keys of any one script share a Redis Cluster slot.
/// README's key table documents each of them for operators. The Lua scripts build the same names
/// from the prefix they are given.
public struct RedisKeys: Sendable {
    public let prefix: String

    public init(prefix: String) {
        self.prefix = prefix
    }

    /// Failed logins for one e-mail in the current window (STRING counter with expiry).
    public func loginFailuresByEmail(_ email: String) -> String { prefix + "rl:login:email:" + email }
    /// Failed logins from one IP in the current window.
    public func loginFailuresByIP(_ ip: String) -> String { prefix + "rl:login:ip:" + ip }
    /// Chats started from one IP in the current window.
    public func conversationStartsByIP(_ ip: String) -> String { prefix + "rl:start:ip:" + ip }
    /// Single-use WebSocket tickets (STRING holding the token, 30 s).
    public func wsTicket(_ ticket: String) -> String { prefix + "ticket:" + ticket }

    /// HASH: one live conversation's state.
    public func conversation(_ id: String) -> String { prefix + "conv:" + id }
    /// STREAM: its messages; the stream id is the message id.
    public func messages(_ id: String) -> String { prefix + "conv:" + id + ":msgs" }
    /// STREAM: its events (created, assigned, requeued, closed, calls).
    public func events(_ id: String) -> String { prefix + "conv:" + id + ":events" }
    /// HASH: client_msg_id to message id, for dedupe.
    public func dedupe(_ id: String) -> String { prefix + "conv:" + id + ":dedupe" }
    /// ZSET: waiting conversation ids of one category, score = enqueue ms minus priority boost.
    public func queue(_ category: String) -> String { prefix + "queue:" + category }
    /// SET: categories that have had a queue.
    public var queues: String { prefix + "queues" }
    /// ZSET: waiting and active conversation ids by creation ms.
    public var liveConversations: String { prefix + "convs:live" }
    /// HASH: one agent's presence and load.
    public func agent(_ id: String) -> String { prefix + "agent:" + id }
    /// SET: every agent id that has connected.
    public var agents: String { prefix + "agents" }
    /// ZSET: agents that can take new work, by idle-since ms.
    public var availableAgents: String { prefix + "agents:available" }
    /// ZSET: agent id to last heartbeat ms.
    public var presence: String { prefix + "presence" }
    /// ZSET: node id to last heartbeat ms.
    public var nodes: String { prefix + "nodes" }
    /// STREAM: closed conversations to archive; consumer group `flushers`.
    public var outbox: String { prefix + "outbox" }
    /// HASH: running averages (handle time) for wait estimates.
    public var stats: String { prefix + "stats" }

    /// Pub/sub channel of one conversation.
    public func conversationChannel(_ id: String) -> String { prefix + "ch:conv:" + id }
    /// Pub/sub channel of one user (assignments, incoming calls).
    public func userChannel(_ id: String) -> String { prefix + "ch:user:" + id }
    /// Pub/sub channel of queue changes.
    public var queueChannel: String { prefix + "ch:queue" }
    /// Pub/sub channel of presence changes.
    public var presenceChannel: String { prefix + "ch:presence" }
}

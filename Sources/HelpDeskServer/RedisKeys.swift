/// Every Redis key and channel name, in one place. All start with the deployment's prefix, which
/// holds a hash tag (`hd:{default}:`), so the keys of any one script share a Redis Cluster slot.
/// README's key table documents each of them for operators. Lua scripts never build a name: every
/// key (and channel) a script touches is passed in its KEYS from here.
public struct RedisKeys: Sendable {
    public let prefix: String

    public init(prefix: String) {
        self.prefix = prefix
    }

    /// Failed logins for one e-mail from one IP in the current window (STRING counter with expiry).
    /// Never per e-mail alone: a stranger elsewhere must not be able to lock the account out.
    public func loginFailuresByEmailAndIP(_ email: String, _ ip: String) -> String { prefix + "rl:login:ipemail:" + ip + "|" + email }
    /// Failed logins from one IP in the current window.
    public func loginFailuresByIP(_ ip: String) -> String { prefix + "rl:login:ip:" + ip }
    /// Chats started from one IP in the current window.
    public func conversationStartsByIP(_ ip: String) -> String { prefix + "rl:start:ip:" + ip }
    /// Customer accounts registered from one IP in the current window.
    public func registrationsByIP(_ ip: String) -> String { prefix + "rl:register:ip:" + ip }
    /// WebSocket tickets issued to one user / to one IP in the current window.
    public func ticketsByUser(_ id: String) -> String { prefix + "rl:ticket:user:" + id }
    public func ticketsByIP(_ ip: String) -> String { prefix + "rl:ticket:ip:" + ip }
    /// Single-use WebSocket tickets (STRING holding the token, 30 s).
    public func wsTicket(_ ticket: String) -> String { prefix + "ticket:" + ticket }

    /// HASH: one live conversation's state.
    public func conversation(_ id: String) -> String { prefix + "conv:" + id }
    /// STREAM: its messages; the stream id is the message id.
    public func messages(_ id: String) -> String { prefix + "conv:" + id + ":msgs" }
    /// STREAM: its events (created, assigned, requeued, closed, calls).
    public func events(_ id: String) -> String { prefix + "conv:" + id + ":events" }
    /// HASH: what each sender sent here: `<sender>|<client_msg_id>` to message id (dedupe), and
    /// `budget:<sender>` (send.lua's GCRA budget of that sender in this conversation).
    public func dedupe(_ id: String) -> String { prefix + "conv:" + id + ":dedupe" }
    /// HASH: the conversation's call (call_id, state, media, caller_id, callee_id, started_at, answered_at).
    public func call(_ id: String) -> String { prefix + "conv:" + id + ":call" }
    /// HASH: a customer by e-mail: its id, name and open conversation (`conv`).
    public func customer(_ email: String) -> String { prefix + "customer:" + email }
    /// HASH: a customer account's chat record, as `customer(_:)` is for an anonymous e-mail: its
    /// id (the account id) and open conversation (`conv`). Never keyed by e-mail, so an anonymous
    /// chat started with a registered address never becomes the account's.
    public func accountCustomer(_ accountID: String) -> String { prefix + "account:" + accountID }
    /// ZSET: a customer account's recent conversation ids by creation ms (the newest 100; older
    /// ones are archived in PostgreSQL by then).
    public func accountConversations(_ accountID: String) -> String { prefix + "account:" + accountID + ":convs" }
    /// ZSET: waiting conversation ids of one category, score = enqueue ms minus priority boost.
    public func queue(_ category: String) -> String { prefix + "queue:" + category }
    /// SET: categories that have had a queue.
    public var queues: String { prefix + "queues" }
    /// ZSET: waiting and active conversation ids by creation ms.
    public var liveConversations: String { prefix + "convs:live" }
    /// HASH: one agent's presence and load.
    public func agent(_ id: String) -> String { prefix + "agent:" + id }
    /// SET: the conversation ids an agent holds.
    public func agentConversations(_ id: String) -> String { prefix + "agent:" + id + ":convs" }
    /// ZSET: the nodes an agent has sockets on, by last heartbeat ms.
    public func agentNodes(_ id: String) -> String { prefix + "agent:" + id + ":nodes" }
    /// SET: every agent id that has connected.
    public var agents: String { prefix + "agents" }
    /// ZSET: agents that can take new work, by idle-since ms.
    public var availableAgents: String { prefix + "agents:available" }
    /// ZSET: agent id to last heartbeat ms.
    public var presence: String { prefix + "presence" }
    /// ZSET: waiting conversation id to the last time its customer had a socket (ms).
    public var customersSeen: String { prefix + "customers:seen" }
    /// ZSET: conversation ids with a ringing call, by the ms it stops ringing.
    public var ringingCalls: String { prefix + "calls:ringing" }
    /// ZSET: conversation ids offered to an agent right now, by the ms the offer runs out.
    public var offers: String { prefix + "offers" }
    /// ZSET: agents in wrap-up after a close, by the ms it ends.
    public var wrapUps: String { prefix + "agents:wrapup" }
    /// HASH: the category tree as the routing scripts see it, mirrored from PostgreSQL: category id
    /// (`0` = uncategorised) to `parent|routing|wrap_up_s|updated_ms`; field `_` marks a complete load.
    public var categories: String { prefix + "categories" }
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

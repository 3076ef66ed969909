import Foundation
import HelpDeskCore
import RedisClient
import Logging

/// Live conversations, the queue and presence in Redis. Every change goes through one Lua script
/// (lua/*.lua, each with the prelude lua/lib/*.lua in front), which keeps its invariant; this type
/// only shapes arguments and replies.
///
/// Every key a script touches is passed in its KEYS (names from `RedisKeys`). Where a key can only
/// be learned from data (a conversation's agent or category, an agent's queues) this type reads it
/// first and passes what it read; the script checks that still holds and otherwise answers
/// `{'err', 'stale'}`, and the call is prepared again (`runFresh`).
struct LiveStore: Sendable {
    let redis: RedisClient
    let scripts: RedisScripts
    let keys: RedisKeys
    let clock: @Sendable () -> Date
    /// Scripts take time from Redis's clock (one clock for every node). Tests that move time set
    /// this; its value is then passed as every script's `now` override (ARGV[1]).
    var scriptClock: (@Sendable () -> Date)? = nil
    /// Messages a conversation may hold (`HELPDESK_MAX_MESSAGES_PER_CONVERSATION`); send.lua refuses more.
    var maxMessagesPerConversation = 10_000
    /// One sender's messages in one conversation, across every node (send.lua keeps the budget in
    /// the conversation's senders' hash, `RedisKeys.dedupe`): `HELPDESK_SOCKET_MESSAGE_RATE` a
    /// second, bursts of `HELPDESK_SOCKET_MESSAGE_BURST`. The node's own buckets refuse floods before they reach Redis;
    /// this one holds when a client spreads its sockets (or REST calls) over many nodes.
    var senderMessageRate = 20.0
    var senderMessageBurst = 100.0
    /// Where uploaded attachments are (PostgreSQL); without it, a send with attachments is refused.
    var attachments: AttachmentStore? = nil
    /// What earlier fairest picks read (shared by every copy of this store).
    let pickReads = PickReadCache()

    var now: Int64 { epochMillis(clock()) }

    /// ARGV[1] of every script: "" = Redis's clock.
    var nowOverride: String { scriptClock.map { String(epochMillis($0())) } ?? "" }

    /// Priority boosts in ms: a higher priority jumps ahead of customers who have waited less than this.
    static let priorityBoost: [String: Int64] = ["low": -300_000, "normal": 0, "high": 300_000, "urgent": 900_000]

    /// How many times a script answering `stale` is prepared and run again before giving up.
    static let staleAttempts = 8
    /// How many of the oldest waiting conversations a fairest pick passes as candidates at first:
    /// the script needs the head's keys, and the head moves by one per pick racing in between.
    /// Each candidate costs every pick three keys and an argument more; too few, and racing picks
    /// find the head gone past them and run again (`stale`). With 40 agents racing on two nodes
    /// (BENCHMARKS.md, tenth round) 16 made 21 % of the picks run twice, 32 about 1 %; 48 none,
    /// but the keys cost more than the runs they saved.
    static let pickCandidates = 32
    /// A pick that found the head gone past its candidates reads twice as many, up to this.
    static let maxPickCandidates = 128

    /// Runs a script whose keys the node reads first (`prepare`); `{'err', 'stale'}` means what was
    /// read changed in between, so it is read again, a bounded number of times.
    func runFresh(_ name: String, _ prepare: () async throws -> (keys: [String], arguments: [String])) async throws -> RESPValue {
        try await runFresh(name) { (_: Int) in try await prepare() }
    }

    /// The same; `prepare` is told which attempt it prepares (0 first).
    func runFresh(_ name: String, _ prepare: (_ attempt: Int) async throws -> (keys: [String], arguments: [String])) async throws -> RESPValue {
        for attempt in 0..<Self.staleAttempts {
            let (keys, arguments) = try await prepare(attempt)
            let reply = try await scripts.run(name, keys: keys, arguments: arguments, on: redis)
            if let r = reply.array, r.count == 2, r[0].string == "err", r[1].string == "stale" {
                NodeMetrics.stale(name)
                continue
            }
            return reply
        }
        throw HelpDeskError(.conflict, "the conversation kept changing meanwhile; try again")
    }

    // MARK: queue

    struct Enqueued: Sendable {
        var conversationID: String
        var position: Int
        var created: Bool
        var customerID: String
        var status: String
    }

    /// The key of a conversation's customer record (its customer id and open conversation): the
    /// account's when a signed-in customer started it (`account` non-empty), else the e-mail's.
    func customerKey(email: String, account: String) -> String {
        account.isEmpty ? keys.customer(email) : keys.accountCustomer(account)
    }

    /// enqueue.lua: a new waiting conversation, or the caller's own open one (`resume`: the
    /// conversation of the customer token the request carried, if any). `account`: the customer
    /// account starting it (its chats have the account id as customer id and are listed under it);
    /// its open conversation is resumed whatever token the request carried.
    func enqueue(name: String, email: String, categoryID: String, subject: String, priority: String, resume: String? = nil,
                 account: String? = nil) async throws -> Enqueued {
        let id = UUID().uuidString.lowercased()
        let account = account ?? ""
        let newCustomer = account.isEmpty ? UUID().uuidString.lowercased() : account
        let customerKey = self.customerKey(email: email, account: account)
        let reply = try await runFresh("enqueue") {
            // the e-mail's (or account's) open conversation, and the caller's own with its queue, if any
            let open = try await redis.send("HGET", customerKey, "conv").string
            let resume = account.isEmpty ? resume : open
            var resumeCategory = ""
            if let resume { resumeCategory = try await redis.send("HGET", keys.conversation(resume), "category_id").string ?? "" }
            return ([keys.conversation(id), keys.events(id), customerKey, keys.queue(categoryID), keys.queues,
                     keys.liveConversations, keys.customersSeen, keys.queueChannel,
                     keys.conversation(resume ?? id), keys.queue(resume == nil ? categoryID : resumeCategory), keys.conversation(open ?? id),
                     account.isEmpty ? keys.conversation(id) : keys.accountConversations(account)],
                    [nowOverride, id, newCustomer, name, email, categoryID, subject, priority,
                     String(Self.priorityBoost[priority] ?? 0), resume ?? "", resumeCategory, open ?? "", account])
        }
        let r = reply.array ?? []
        guard r.count == 6, r[0].string == "ok", let conv = r[1].string, let customer = r[4].string else {
            throw HelpDeskError(.internalError, "enqueue: unexpected reply")
        }
        return Enqueued(conversationID: conv, position: r[2].int ?? 0, created: r[3].int == 1, customerID: customer, status: r[5].string ?? "waiting")
    }

    /// pick.lua: `agentID` takes `conversationID` (or the fairest); mode `pick` (the agent) or `assign` (a supervisor).
    /// The script answers with the conversation's hash: no second round trip.
    func pick(agentID: String, conversationID: String?, mode: String, actorID: String) async throws -> ConversationView {
        let reply = try await runFresh("pick") { (attempt: Int) in
            let candidateCount = min(Self.pickCandidates << attempt, Self.maxPickCandidates)
            let base = [keys.agent(agentID), keys.agentConversations(agentID), keys.availableAgents, keys.customersSeen,
                        keys.queueChannel, keys.presenceChannel, keys.userChannel(agentID), keys.queues, keys.categories, keys.offers]
            func candidateKeys(_ ids: [String]) -> [String] {
                ids.flatMap { [keys.conversation($0), keys.events($0), keys.conversationChannel($0)] }
            }
            if let wanted = conversationID {
                let read = try await redis.pipeline([["HGET", keys.agent(agentID), "categories"], ["HGET", keys.conversation(wanted), "category_id"]])
                let categories = read[0].string ?? "", category = read[1].string ?? ""
                return (base + [keys.queue(category)] + candidateKeys([wanted]),
                        [nowOverride, agentID, wanted, mode, actorID, categories, "1", category, wanted])
            }
            // The fairest: the heads of the pick-routed queues the agent serves (its categories,
            // their subcategories, the uncategorised queue), the oldest few of them all not on offer.
            let plan = try await fairestPickPlan(agentID: agentID, candidateCount: candidateCount, reuse: attempt == 0)
            let (categories, queues, offered) = (plan.categories, plan.queues, plan.offered)
            // the head the script finds is among them unless more than `candidateCount` picks got in between
            var waiting: [(id: String, score: Double)] = []
            for head in plan.heads {
                let items = head.array ?? []
                var i = 0
                while i + 1 < items.count {
                    if let id = items[i].string, !offered.contains(id), let score = items[i + 1].string.flatMap(Double.init) { waiting.append((id, score)) }
                    i += 2
                }
            }
            let candidates = waiting.sorted { $0.score < $1.score }.prefix(candidateCount).map(\.id)
            return (base + queues.map(keys.queue) + candidateKeys(candidates),
                    [nowOverride, agentID, "", mode, actorID, categories, String(queues.count)] + queues + candidates)
        }
        let r = reply.array ?? []
        guard r.first?.string == "ok", r.count >= 3 else {
            NodeMetrics.pick(r.count > 1 ? r[1].string ?? "other" : "other")
            throw Self.scriptError(r.count > 1 ? r[1].string : nil)
        }
        NodeMetrics.pick("ok")
        guard let view = ConversationView(hash: r[2].fieldMap, now: now) else {
            throw HelpDeskError(.internalError, "pick: unexpected reply")
        }
        return view
    }

    /// What a fairest pick reads before its script: the agent's categories field, its queues, the
    /// conversations on offer and the heads (`ZRANGE … WITHSCORES`) of those queues.
    struct FairestPickPlan {
        var categories: String
        var queues: [String]
        var offered: Set<String>
        var heads: [RESPValue]
    }

    /// One round trip when the agent's categories field and the queues set are what an earlier pick
    /// read (`PickReadCache`): they are read again with the heads of the queues they imply, and the
    /// heads are used if both are unchanged. Otherwise (and with `reuse` false, after a stale run)
    /// two: the field, the set, the tree and the offers, then the heads.
    func fairestPickPlan(agentID: String, candidateCount: Int, reuse: Bool) async throws -> FairestPickPlan {
        func headCommand(_ queue: String, offered: Int) -> [String] {
            ["ZRANGE", keys.queue(queue), "0", String(candidateCount - 1 + offered), "WITHSCORES"]
        }
        let agentKey = keys.agent(agentID)
        if reuse, let guess = pickReads.guess(agentID: agentID) {
            let read = try await redis.pipeline([["HGET", agentKey, "categories"], ["SMEMBERS", keys.queues], ["ZRANGE", keys.offers, "0", "-1"]]
                                                + guess.queues.map { headCommand($0, offered: guess.offeredCount) })
            let categories = read[0].string ?? ""
            let members = Set((read[1].array ?? []).compactMap(\.string))
            let offered = Set((read[2].array ?? []).compactMap(\.string))
            if categories == guess.categories && members == guess.members {
                pickReads.offered(offered.count)
                return FairestPickPlan(categories: categories, queues: guess.queues, offered: offered, heads: Array(read[3...]))
            }
        }
        let read = try await redis.pipeline([["HGET", agentKey, "categories"], ["SMEMBERS", keys.queues],
                                             ["HGETALL", keys.categories], ["ZRANGE", keys.offers, "0", "-1"]])
        let categories = read[0].string ?? ""
        let members = Set((read[1].array ?? []).compactMap(\.string))
        let tree = CategoryTree(hash: read[2].fieldMap)
        let offered = Set((read[3].array ?? []).compactMap(\.string))
        let queues = PickReadCache.queues(members: members, tree: tree, categories: categories)
        pickReads.remember(agentID: agentID, categories: categories, members: members, tree: tree, offeredCount: offered.count)
        let heads = queues.isEmpty ? [] : try await redis.pipeline(queues.map { headCommand($0, offered: offered.count) })
        return FairestPickPlan(categories: categories, queues: queues, offered: offered, heads: heads)
    }

    /// The waiting conversations of some categories (all when nil), oldest first.
    func waiting(category: String?) async throws -> [ConversationView] {
        let categories: [String]
        if let category { categories = [category] } else {
            categories = (try await redis.send("SMEMBERS", keys.queues).array ?? []).compactMap(\.string)
        }
        var ids: [(String, Double)] = []
        if !categories.isEmpty {
            let replies = try await redis.pipeline(categories.map { ["ZRANGE", keys.queue($0), "0", "-1", "WITHSCORES"] })
            for reply in replies {
                let items = reply.array ?? []
                var i = 0
                while i + 1 < items.count {
                    if let id = items[i].string, let score = items[i + 1].string.flatMap(Double.init) { ids.append((id, score)) }
                    i += 2
                }
            }
        }
        ids.sort { $0.1 < $1.1 }
        return try await conversations(ids.map(\.0))
    }

    // MARK: conversations

    /// One live conversation, or nil when Redis has none (never existed, or archived and expired).
    func conversation(_ id: String) async throws -> ConversationView? {
        let hash = try await redis.send("HGETALL", keys.conversation(id)).fieldMap
        return ConversationView(hash: hash, now: now)
    }

    /// Several live conversations in one round trip, in the given order (missing ones skipped).
    func conversations(_ ids: [String]) async throws -> [ConversationView] {
        guard !ids.isEmpty else { return [] }
        let now = self.now
        return try await redis.pipeline(ids.map { ["HGETALL", keys.conversation($0)] })
            .compactMap { ConversationView(hash: $0.fieldMap, now: now) }
    }

    /// Live conversations, newest first.
    func liveConversations(limit: Int) async throws -> [ConversationView] {
        let ids = (try await redis.send("ZREVRANGE", keys.liveConversations, "0", String(max(0, limit - 1))).array ?? []).compactMap(\.string)
        return try await conversations(ids)
    }

    /// Every message after `after` (exclusive), or all, read in pages: for tools and tests; routes
    /// and sockets read one bounded page (`messagePage`).
    func messages(_ id: String, after: String?) async throws -> [MessageView] {
        var messages: [MessageView] = []
        var after = after
        while true {
            let page = try await messagePage(id, after: after, count: 1000)
            messages += page.messages
            guard page.hasMore, let last = page.messages.last else { return messages }
            after = last.id
        }
    }

    struct Sent: Sendable {
        var messageID: String
        var duplicate: Bool
        /// The message view's JSON, when the sender asked for no echo (`origin`): its ACK carries it.
        /// Nil for a retry whose message has left the stream (archived and expired).
        var messageJSON: String? = nil
    }

    /// send.lua: store and publish one message. `attachmentIDs` (checked by `AttachmentRules.ids`)
    /// are claimed for this send first (the sender's own, unsent uploads to this conversation),
    /// carried by the message, and linked to it once stored; a refused send gives them back.
    /// `origin`: the sending socket's (`ConnectionHub.origin(of:)`) when it asked for no echo.
    func send(conversationID: String, sender: Caller, text: String, clientMsgID: String, isInternal: Bool,
              attachmentIDs: [String] = [], origin: String = "") async throws -> Sent {
        let id = conversationID
        // a supervisor writes (notes) only into its own team's conversations and the queue's (#16)
        if sender.role == .supervisor { try await requireTeamScope(sender, conversationID: id) }
        var claimed: [AttachmentView] = []
        if !attachmentIDs.isEmpty {
            guard let attachments else { throw HelpDeskError(.validationFailed, "attachments are not available here") }
            claimed = try await attachments.claim(ids: attachmentIDs, conversationID: id, sender: sender, clientMsgID: clientMsgID)
        }
        let sent: Sent
        do {
            let call = sendCall(sendTemplate(conversationID: id), sender: sender, text: text, clientMsgID: clientMsgID,
                                isInternal: isInternal, attachments: claimed, origin: origin)
            sent = try Self.sent(try await runSend(call), for: call)
        } catch {
            if let attachments, !attachmentIDs.isEmpty { try? await attachments.release(ids: attachmentIDs, clientMsgID: clientMsgID) }
            throw error
        }
        // If this fails the message is stored but its files are not linked yet: the error makes the
        // client retry the same client_msg_id, whose duplicate answer links them here.
        if let attachments, !attachmentIDs.isEmpty {
            try await attachments.markSent(ids: attachmentIDs, clientMsgID: clientMsgID, messageID: sent.messageID, isInternal: isInternal)
        }
        return sent
    }

    /// What stays the same in send.lua's calls for one conversation: its keys, its NEW_MESSAGE
    /// frame's start, and this store's limits. A socket keeps the last one it used (`FrameHandler`):
    /// built per message, the key strings and the limits' decimal text were a tenth of a node's
    /// allocations per chat message.
    struct SendTemplate: Sendable {
        let conversationID: String
        let keys: [String]
        let newMessagePrefix: String
        let maxMessages: String, interval: String, tolerance: String
    }

    func sendTemplate(conversationID id: String) -> SendTemplate {
        let budget = senderBudget
        return SendTemplate(conversationID: id, keys: [keys.conversation(id), keys.messages(id), keys.dedupe(id), keys.conversationChannel(id)],
                            newMessagePrefix: ServerFrame.newMessagePrefix(conversationID: id),
                            maxMessages: String(maxMessagesPerConversation), interval: budget.interval, tolerance: budget.tolerance)
    }

    /// One message's part of a send.lua call: its 4 keys and 12 arguments. A call is ARGV[1] (the
    /// clock override) and then the parts of one or more messages. `messageFields`: the message
    /// view but its id and time (`MessageView.writeFields`), for the ACK once Redis gave them.
    struct SendCall: Sendable {
        let keys: [String]
        let arguments: [String]
        let messageFields: String
        let isInternal: Bool
    }

    /// send.lua's keys and arguments for one message. The node writes the message's view, all but
    /// its id and time, into the NEW_MESSAGE frame it hands the script: the view is written by
    /// one code (Swift's), and Redis spends no time escaping JSON.
    func sendCall(_ template: SendTemplate, sender: Caller, text: String, clientMsgID: String, isInternal: Bool,
                  attachments: [AttachmentView] = [], origin: String = "") -> SendCall {
        var w = JSONWriter(capacity: 96 + text.utf8.count + sender.name.utf8.count + clientMsgID.utf8.count)
        MessageView.writeFields(to: &w, sender: MessageView.Sender(id: sender.id, role: sender.role.rawValue, name: sender.name), text: text,
                                clientMsgId: clientMsgID, isInternal: isInternal, attachments: attachments)
        let fields = w.text
        return SendCall(keys: template.keys,
                        arguments: [template.newMessagePrefix + fields, sender.id, sender.role.rawValue, sender.name, text, clientMsgID,
                                    isInternal ? "1" : "0", template.maxMessages, template.interval, template.tolerance,
                                    attachments.isEmpty ? "" : AttachmentView.json(attachments), origin],
                        messageFields: fields, isInternal: isInternal)
    }

    /// send.lua for one message through the registry (which loads the library if Redis lost it):
    /// the message's reply. The hot path batches messages instead (`FrameHandler.sendWithoutTask`).
    func runSend(_ call: SendCall) async throws -> RESPValue {
        let replies = try await scripts.run("send", keys: call.keys, arguments: [nowOverride] + call.arguments, on: redis)
        guard let list = replies.array, list.count == 1 else { throw RedisError(.unexpectedReply, "send: not one reply for one message") }
        return list[0]
    }

    /// send.lua's answer to `call`: the message's id, or the error it refused with (counted in the
    /// node's metrics). Without echo the reply's 4th element gives the ACK its message: a new
    /// message's time (its view is `call.messageFields` with id and time), or a retry's stream
    /// entry ('' when it is gone).
    static func sent(_ reply: RESPValue, for call: SendCall) throws -> Sent {
        let r = reply.array ?? []
        guard r.first?.string == "ok", r.count == 3 || r.count == 4, let messageID = r[1].string else { throw scriptError(r.count > 1 ? r[1].string : nil) }
        let duplicate = r[2].int == 1
        if !duplicate { (call.isInternal ? NodeMetrics.messagesInternal : NodeMetrics.messagesPublic).increment() }
        guard r.count == 4 else { return Sent(messageID: messageID, duplicate: duplicate) }
        // The message is stored from here on: nothing below throws (a throw would give back its
        // attachments). An ACK without its message is what a retry whose entry is gone gets too.
        var w = JSONWriter(capacity: 48 + call.messageFields.utf8.count)
        if duplicate {
            guard let stored = MessageView(streamEntry: r[3]) else { return Sent(messageID: messageID, duplicate: true) }
            stored.write(to: &w)
        } else {
            guard let sentAt = r[3].string.flatMap({ Int64($0) }) else { return Sent(messageID: messageID, duplicate: false) }
            w.raw("{"); w.json(call.messageFields)
            MessageView.writeIDAndTime(to: &w, id: messageID, sentAt: sentAt)
            w.raw("}")
        }
        return Sent(messageID: messageID, duplicate: duplicate, messageJSON: w.text)
    }

    /// send.lua's GCRA arguments in ms: the gap between messages and how far ahead a burst may run.
    var senderBudget: (interval: String, tolerance: String) {
        guard senderMessageRate > 0 else { return ("", "") }
        let interval = 1000 / senderMessageRate
        return (String(interval), String(interval * max(senderMessageBurst - 1, 0)))
    }

    /// close.lua: close, end its call, and queue for archiving with a new close generation. Ends an
    /// offer in flight; puts the agent into its wrap-up. Returns the agent's wrap-up end (Redis ms),
    /// nil without one.
    @discardableResult
    func close(conversationID: String, actor: Caller, resolution: String) async throws -> (agentID: String, wrapUpUntil: Int64)? {
        let id = conversationID
        // REST and socket closes both come here: a supervisor closes only its own team's (#16).
        try await requireTeamScope(actor, conversationID: id)
        var agentRead = ""
        let reply = try await runFresh("close") {
            let read = try await redis.send("HMGET", keys.conversation(id), "customer_email", "category_id", "agent_id", "offered_to", "account_id").array ?? []
            let email = read.first?.string ?? "", category = read.count > 1 ? read[1].string ?? "" : ""
            let agent = read.count > 2 ? read[2].string ?? "" : "", offered = read.count > 3 ? read[3].string ?? "" : ""
            let account = read.count > 4 ? read[4].string ?? "" : ""
            agentRead = agent
            return ([keys.conversation(id), keys.events(id), keys.call(id), keys.conversationChannel(id), customerKey(email: email, account: account),
                     keys.queue(category), keys.customersSeen, keys.liveConversations, keys.ringingCalls, keys.outbox, keys.stats,
                     keys.queueChannel, keys.agent(agent), keys.agentConversations(agent), keys.availableAgents, keys.presenceChannel,
                     keys.offers, keys.agent(offered), keys.userChannel(offered), keys.categories, keys.wrapUps, keys.userChannel(agent)],
                    [nowOverride, id, actor.id, actor.role.rawValue, resolution, email, category, agent, offered])
        }
        let r = reply.array ?? []
        guard r.first?.string == "ok" else { throw Self.scriptError(r.count > 1 ? r[1].string : nil) }
        guard r.count > 2, let until = r[2].string.flatMap({ Int64($0) }), until > 0, !agentRead.isEmpty else { return nil }
        return (agentRead, until)
    }

    /// transfer.lua: to another agent (`agentID`), or back to a queue (`category`, nil keeps it).
    /// Returns the conversation's status afterwards.
    func transfer(conversationID: String, actor: Caller, agentID: String?, category: String?, note: String) async throws -> String {
        let id = conversationID, target = agentID ?? "", newCategory = category ?? ""
        let reply = try await runFresh("transfer") {
            let read = try await redis.send("HMGET", keys.conversation(id), "agent_id", "category_id").array ?? []
            let old = read.first?.string ?? "", current = read.count > 1 ? read[1].string ?? "" : ""
            return ([keys.conversation(id), keys.events(id), keys.call(id), keys.conversationChannel(id), keys.ringingCalls,
                     keys.agent(old), keys.agentConversations(old), keys.availableAgents, keys.presenceChannel, keys.userChannel(old),
                     keys.agent(target), keys.agentConversations(target), keys.userChannel(target),
                     keys.queue(newCategory.isEmpty ? current : newCategory), keys.queues, keys.customersSeen, keys.queueChannel],
                    [nowOverride, id, actor.id, actor.role.rawValue, note, target, newCategory, old, current])
        }
        let r = reply.array ?? []
        guard r.first?.string == "ok" else { throw Self.scriptError(r.count > 1 ? r[1].string : nil) }
        return r.count > 1 ? r[1].string ?? "" : ""
    }

    /// escalate.lua: flags the conversation and tells the agent's supervisor (and admins).
    func escalate(conversationID: String, actor: Caller, note: String) async throws {
        let id = conversationID
        let reply = try await runFresh("escalate") {
            let agent = try await redis.send("HGET", keys.conversation(id), "agent_id").string ?? ""
            return ([keys.conversation(id), keys.events(id), keys.conversationChannel(id), keys.agent(agent), keys.presenceChannel],
                    [nowOverride, id, actor.id, actor.role.rawValue, note, agent])
        }
        let r = reply.array ?? []
        guard r.first?.string == "ok" else { throw Self.scriptError(r.count > 1 ? r[1].string : nil) }
    }

    /// reopen.lua: a closed conversation back in its queue; returns its position.
    func reopen(conversationID: String, actor: Caller) async throws -> Int {
        let id = conversationID
        let reply = try await runFresh("reopen") {
            let read = try await redis.send("HMGET", keys.conversation(id), "customer_email", "category_id", "account_id").array ?? []
            let email = read.first?.string ?? "", category = read.count > 1 ? read[1].string ?? "" : ""
            let customerKey = customerKey(email: email, account: read.count > 2 ? read[2].string ?? "" : "")
            let open = try await redis.send("HGET", customerKey, "conv").string
            return ([keys.conversation(id), keys.messages(id), keys.events(id), keys.dedupe(id), customerKey,
                     keys.conversation(open ?? id), keys.queue(category), keys.queues, keys.liveConversations, keys.customersSeen,
                     keys.queueChannel, keys.conversationChannel(id)],
                    [nowOverride, id, actor.id, actor.role.rawValue, email, category, open ?? ""])
        }
        let r = reply.array ?? []
        guard r.first?.string == "ok" else {
            if r.count > 1, r[1].string == "conflict" {
                throw HelpDeskError(.conflict, "only a closed conversation can be reopened, and only while its customer has no other open one")
            }
            if r.count > 1, r[1].string == "not_found" {
                throw HelpDeskError(.conflict, "this conversation is archived and can no longer be reopened; start a new chat")
            }
            throw Self.scriptError(r.count > 1 ? r[1].string : nil)
        }
        return r.count > 1 ? r[1].int ?? 0 : 0
    }

    enum Rated: Sendable, Equatable {
        /// Stored in the live hash; `closeEpoch` is the close generation it belongs to.
        case live(closeEpoch: String)
        /// Redis no longer holds the conversation (archived and expired, or never existed).
        case notLive
    }

    /// rate.lua: the customer's rating, once, after close: checked and written in one step.
    func rate(conversationID: String, rating: Int, comment: String) async throws -> Rated {
        let reply = try await scripts.run("rate", keys: [keys.conversation(conversationID)],
                                          arguments: [nowOverride, String(rating), comment], on: redis)
        let r = reply.array ?? []
        if r.first?.string == "ok" { return .live(closeEpoch: r.count > 1 ? r[1].string ?? "0" : "0") }
        switch r.count > 1 ? r[1].string : nil {
        case "not_found": return .notLive
        case "not_closed": throw HelpDeskError(.conflict, "a conversation can be rated once it is closed")
        case "already_rated": throw HelpDeskError(.conflict, "this conversation was already rated")
        case let code: throw Self.scriptError(code)
        }
    }

    /// Relays a typing indicator to the conversation's sockets without storing it (the same
    /// payload format as the scripts' frames: see lua/lib/protocol.lua).
    func publishTyping(conversationID: String, user: Caller, typing: Bool) async throws {
        let frame = ServerFrame.encode("TYPING", TypingData(conversationId: conversationID, userId: user.id, role: user.role.rawValue, typing: typing))
        let payload = PubSubEnvelope(kind: .event, audience: .everyone, key: "-", frame: Substring(frame)).payload
        try await redis.send("PUBLISH", keys.conversationChannel(conversationID), payload)
    }

    // MARK: presence

    /// agent_connect.lua: an agent's first socket on this node.
    /// Returns the agent's status (`online`, or `away` if it had chosen that). `-` keeps a field.
    func agentConnected(agentID: String, node: String, name: String, capacity: String, categories: String, supervisorID: String) async throws -> String {
        try await scripts.run("agent_connect", keys: [
            keys.agent(agentID), keys.agentNodes(agentID), keys.agents, keys.presence, keys.availableAgents, keys.presenceChannel,
        ], arguments: [nowOverride, agentID, node, name, capacity, categories, supervisorID], on: redis).string ?? "online"
    }

    /// An agent's current status as Redis has it.
    func agentStatus(_ agentID: String) async throws -> String {
        try await redis.send("HGET", keys.agent(agentID), "status").string ?? "offline"
    }

    /// agent_profile.lua: an admin changed an agent's capacity, categories (comma-separated ids)
    /// or supervisor (`""`: none); nil leaves a field. A live agent's routing follows at once and
    /// its sockets get PROFILE_UPDATED; an agent with no live state gets them at its next connect.
    func updateAgentProfile(agentID: String, capacity: Int?, categories: String?, supervisorID: String?) async throws {
        try await scripts.run("agent_profile", keys: [keys.agent(agentID), keys.availableAgents, keys.presenceChannel, keys.userChannel(agentID)],
                              arguments: [nowOverride, agentID, capacity.map(String.init) ?? "-", categories ?? "-", supervisorID ?? "-"], on: redis)
    }

    /// Ends a staff user's live sockets on every node (SESSION_ENDED, then a 1008 close): its
    /// account was deactivated or its role changed. An open socket would otherwise
    /// act with the old account until its access token expired.
    func endSessions(userID: String, reason: String) async throws {
        let frame = ServerFrame.encode(ServerEventName.sessionEnded.rawValue, ServerEventData.SessionEnded(reason: reason))
        let payload = PubSubEnvelope(kind: .ended, audience: .everyone, key: "-", frame: Substring(frame)).payload
        try await redis.send("PUBLISH", keys.userChannel(userID), payload)
    }

    /// The categories an agent serves now, as Redis has them (empty: all, or none known).
    func agentCategories(_ agentID: String) async throws -> Set<String> {
        CategoryTree.list(try await redis.send("HGET", keys.agent(agentID), "categories").string ?? "")
    }

    /// agent_disconnect.lua: an agent's last socket on this node closed.
    func agentDisconnected(agentID: String, node: String) async throws {
        try await scripts.run("agent_disconnect", keys: [keys.agent(agentID), keys.agentNodes(agentID), keys.availableAgents, keys.presenceChannel],
                              arguments: [nowOverride, agentID, node], on: redis)
    }

    /// agent_status.lua: online or away.
    func setStatus(agentID: String, status: String) async throws {
        let r = try await scripts.run("agent_status", keys: [keys.agent(agentID), keys.availableAgents, keys.presenceChannel],
                                      arguments: [nowOverride, agentID, status], on: redis).array ?? []
        guard r.first?.string == "ok" else {
            if r.count > 1, r[1].string == "not_connected" { throw HelpDeskError(.conflict, "connect a socket before setting a status") }
            throw Self.scriptError(r.count > 1 ? r[1].string : nil)
        }
    }

    /// node_heartbeat.lua: refreshes this node's sockets; returns the agents Redis no longer knows as connected here.
    func heartbeat(node: String, nodeTTL: Int, agents: [String], waitingConversations: [String]) async throws -> [String] {
        let reply = try await scripts.run("node_heartbeat",
            keys: [keys.nodes, keys.presence, keys.customersSeen] + agents.flatMap { [keys.agent($0), keys.agentNodes($0)] }
                + waitingConversations.map(keys.conversation),
            arguments: [nowOverride, node, String(nodeTTL), String(agents.count)] + agents + waitingConversations, on: redis)
        return (reply.array ?? []).compactMap(\.string)
    }

    /// Redis's clock in ms (or the test override), for choosing sweep candidates.
    func redisNow(_ time: RESPValue) -> Int64 {
        if let override = Int64(nowOverride) { return override }
        let parts = time.array ?? []
        let seconds = parts.first?.string.flatMap { Int64($0) } ?? 0
        let micros = parts.count > 1 ? parts[1].string.flatMap { Int64($0) } ?? 0 : 0
        return seconds * 1000 + micros / 1000
    }

    /// `[member, score, ...]` members whose score is at most `limit`.
    static func dueMembers(_ reply: RESPValue, atMost limit: Int64) -> [String] {
        let items = reply.array ?? []
        var out: [String] = []
        var i = 0
        while i + 1 < items.count {
            if let member = items[i].string, let score = items[i + 1].string.flatMap(Double.init), score <= Double(limit) { out.append(member) }
            i += 2
        }
        return out
    }

    /// Acts on absence; returns (agents gone offline, conversations requeued, customers abandoned).
    /// Candidates come from the presence and customers:seen sets (oldest first, by Redis's clock);
    /// agent_sweep.lua and customer_abandon.lua decide, so every node may sweep at once.
    func sweep(agentGrace: Int, nodeTTL: Int, customerGrace: Int) async throws -> (Int, Int, Int) {
        let read = try await redis.pipeline([["TIME"], ["ZRANGE", keys.presence, "0", "199", "WITHSCORES"],
                                             ["ZRANGE", keys.customersSeen, "0", "199", "WITHSCORES"]])
        let now = redisNow(read[0])
        var (offline, requeued, abandoned) = (0, 0, 0)
        for agentID in Self.dueMembers(read[1], atMost: now - Int64(nodeTTL)) {
            let reply = try await runFresh("agent_sweep") {
                let convs = (try await redis.send("SMEMBERS", keys.agentConversations(agentID)).array ?? []).compactMap(\.string)
                let categories = convs.isEmpty ? [] : try await redis.pipeline(convs.map { ["HGET", keys.conversation($0), "category_id"] }).map { $0.string ?? "" }
                let convKeys = zip(convs, categories).flatMap { id, category in
                    [keys.conversation(id), keys.events(id), keys.call(id), keys.conversationChannel(id), keys.queue(category)]
                }
                return ([keys.agent(agentID), keys.agentNodes(agentID), keys.agentConversations(agentID), keys.presence, keys.availableAgents,
                         keys.presenceChannel, keys.queues, keys.customersSeen, keys.ringingCalls, keys.queueChannel] + convKeys,
                        [nowOverride, agentID, String(agentGrace), String(nodeTTL)] + convs + categories)
            }
            let r = reply.array ?? []
            offline += r.first?.int ?? 0
            requeued += r.count > 1 ? r[1].int ?? 0 : 0
        }
        for conversationID in Self.dueMembers(read[2], atMost: now - Int64(customerGrace)) {
            let id = conversationID
            let reply = try await runFresh("customer_abandon") {
                let c = try await redis.send("HMGET", keys.conversation(id), "category_id", "customer_email", "account_id").array ?? []
                let category = c.first?.string ?? "", email = c.count > 1 ? c[1].string ?? "" : ""
                let account = c.count > 2 ? c[2].string ?? "" : ""
                return ([keys.conversation(id), keys.events(id), keys.queue(category), customerKey(email: email, account: account), keys.customersSeen,
                         keys.liveConversations, keys.outbox, keys.queueChannel, keys.conversationChannel(id)],
                        [nowOverride, id, String(customerGrace), category, email])
            }
            abandoned += reply.int ?? 0
        }
        return (offline, requeued, abandoned)
    }

    /// Every agent Redis knows, with status and load.
    func agents() async throws -> [[String: String]] {
        let ids = (try await redis.send("SMEMBERS", keys.agents).array ?? []).compactMap(\.string)
        guard !ids.isEmpty else { return [] }
        return try await redis.pipeline(ids.map { ["HGETALL", keys.agent($0)] }).map(\.fieldMap).filter { !$0.isEmpty }
    }

    /// Queue position (1-based) of a waiting conversation, or nil when it is not waiting.
    func positions(_ conversations: [(id: String, category: String)]) async throws -> [String: Int] {
        guard !conversations.isEmpty else { return [:] }
        let replies = try await redis.pipeline(conversations.map { ["ZRANK", keys.queue($0.category), $0.id] })
        var out: [String: Int] = [:]
        for (conversation, reply) in zip(conversations, replies) {
            if let rank = reply.int { out[conversation.id] = rank + 1 }
        }
        return out
    }

    /// Average handle time (ms) and agents online, for wait estimates.
    func waitInputs() async throws -> (handleMs: Int, agentsOnline: Int) {
        let replies = try await redis.pipeline([["HGET", keys.stats, "handle_ms_avg"], ["ZCARD", keys.availableAgents], ["ZCARD", keys.presence]])
        return (replies[0].int ?? 0, max(replies[1].int ?? 0, replies[2].int ?? 0))
    }

    /// Maps a script's error code to the API's error.
    static func scriptError(_ code: String?) -> HelpDeskError {
        switch code {
        case "already_picked": return HelpDeskError(.alreadyPicked, "someone else took this conversation")
        case "at_capacity": return HelpDeskError(.atCapacity, "the agent already has as many conversations as its capacity allows")
        case "not_online": return HelpDeskError(.conflict, "set your status to online to pick conversations")
        case "agent_offline": return HelpDeskError(.conflict, "that agent is offline")
        case "queue_empty": return HelpDeskError(.notFound, "nobody is waiting")
        case "not_found": return HelpDeskError(.notFound, "no such conversation")
        case "conversation_closed": return HelpDeskError(.conversationClosed, "the conversation is closed")
        case "conversation_full": return HelpDeskError(.conversationFull, "this conversation holds as many messages as it may; start a new chat")
        case "forbidden": return HelpDeskError(.forbidden, "you are not a participant of this conversation")
        case "rate_limited": return HelpDeskError(.rateLimited, "you are sending messages too fast; slow down")
        case "offered": return HelpDeskError(.conflict, "this customer is being offered to an agent right now; try again in a moment")
        case "offer_routing": return HelpDeskError(.conflict, "customers of this category are offered to agents, not picked")
        case "no_offer": return HelpDeskError(.conflict, "this offer is no longer open (answered, withdrawn or run out)")
        case "offer_expired": return HelpDeskError(.conflict, "this offer ran out")
        case "internal": return HelpDeskError(.internalError, "the script failed (Redis's log says why)")
        default:
            // a reply this node does not know (a script of another release?): logged, not sent
            LogLimiter.serverFailures.log(Logger(label: "helpdesk.scripts"), .error, "unexpected script reply", ["code": "\(code?.prefix(80) ?? "nil")"])
            return HelpDeskError(.internalError, "internal error")
        }
    }
}


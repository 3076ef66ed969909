import Foundation
import NIOConcurrencyHelpers
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer

/// What every agent of a routing test saw and did, and what the server's state looked like.
actor OfferLedger {
    struct Offer { let agent: Int; let conversation: String }
    private(set) var offers: [Offer] = []
    /// conversation -> agents whose ACCEPT_OFFER was acknowledged
    private(set) var accepted: [String: [Int]] = [:]
    private(set) var declined: [(agent: Int, conversation: String)] = []
    private(set) var ignored: [(agent: Int, conversation: String)] = []
    private(set) var expired: [(agent: Int, conversation: String, status: String?, redisStatus: String?)] = []
    private(set) var problems: [String] = []
    private var held: [Int: Int] = [:]
    private var pending: [Int: Int] = [:]
    let capacities: [Int]

    init(capacities: [Int]) { self.capacities = capacities }

    /// An offer reached agent `i`: what it holds and is offered must stay within its capacity.
    func offered(_ i: Int, _ conversation: String) {
        offers.append(Offer(agent: i, conversation: conversation))
        pending[i, default: 0] += 1
        if held[i, default: 0] + pending[i, default: 0] > capacities[i] {
            problems.append("agent \(i) offered \(conversation) while holding \(held[i, default: 0]) and offered \(pending[i, default: 0]) (capacity \(capacities[i]))")
        }
    }
    func acceptedBy(_ i: Int, _ conversation: String) {
        pending[i, default: 0] -= 1
        held[i, default: 0] += 1
        accepted[conversation, default: []].append(i)
    }
    func closing(_ i: Int) { held[i, default: 0] -= 1 }
    func declinedBy(_ i: Int, _ conversation: String) {
        pending[i, default: 0] -= 1
        declined.append((i, conversation))
    }
    func ignoredBy(_ i: Int, _ conversation: String) { ignored.append((i, conversation)) }
    func expiredFor(_ i: Int, _ conversation: String, status: String?, redisStatus: String?) {
        pending[i, default: 0] -= 1
        expired.append((i, conversation, status, redisStatus))
    }
    func problem(_ text: String) { problems.append(text) }
    var acceptedCount: Int { accepted.count }
    /// The agents offered `conversation`, in order.
    func offeredTo(_ conversation: String) -> [Int] { offers.filter { $0.conversation == conversation }.map(\.agent) }
}

@Suite("offer routing across nodes", .serialized)
struct OfferRoutingTests {
    static let base = ["HELPDESK_START_LIMIT_PER_IP": "1000", "HELPDESK_CUSTOMER_GRACE": "600", "HELPDESK_HEARTBEAT_INTERVAL": "0.3"]

    /// A category through the admin API; returns its id.
    static func category(_ node: TestCluster.Node, admin: String, _ body: [String: Any]) async throws -> Int {
        let (status, json) = try await HTTP.request("POST", node.url + "/api/v1/categories", token: admin, body: body)
        guard status == 201, let id = json["id"] as? Int else { throw TestSocketError.failed("category: \(status) \(json)") }
        return id
    }

    static func conversationID(_ frame: Frame) -> String? {
        (frame.data["conversation"] as? [String: Any])?["id"] as? String
    }

    static func eventTypes(_ redis: RedisClientBox, _ prefix: String, _ id: String) async throws -> [String] {
        try await redis.client.send("XRANGE", prefix + "conv:\(id):events", "-", "+").array?.compactMap { $0.array?[1].fieldMap["type"] } ?? []
    }

    @Test("30 customers, 10 agents on two nodes, capacities 1-3: each customer assigned once, nobody over capacity, longest idle first, declined and timed-out offers move on, the late agent is away")
    func thirtyCustomersTenAgents() async throws {
        let cluster = try await TestCluster(overrides: Self.base.merging(["HELPDESK_OFFER_TIMEOUT": "2"]) { $1 })
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let sales = try await Self.category(a, admin: admin.token, ["name": "Sales", "routing": "offer"])
        let redis = RedisClientBox(cluster.redis())

        let capacities = (0..<10).map { $0 % 3 + 1 }
        var agents: [(id: String, socket: TestSocket)] = []
        for i in 0..<10 {
            let node = i % 2 == 0 ? a : b
            let agent = try await cluster.staff("agent\(i)@example.com", capacity: capacities[i], on: node)
            agents.append((agent.id, try await TestSocket.connect(node.wsURL, token: agent.token, label: "agent\(i)")))
            // distinct idle-since times: agent 0 has been idle longest
            try await Task.sleep(for: .milliseconds(15))
        }
        let ledger = OfferLedger(capacities: capacities)
        let done = NIOLockedValueBox(false)

        // The server's own view, sampled all along: no agent's conversations plus offers above its capacity.
        let monitor = Task {
            while !done.withLockedValue({ $0 }) {
                let replies = try await redis.client.pipeline(agents.map { ["HMGET", cluster.prefix + "agent:\($0.id)", "active", "offered", "capacity"] })
                for (i, reply) in replies.enumerated() {
                    let f = (reply.array ?? []).map { Int($0.string ?? "") ?? 0 }
                    if f.count == 3, f[0] + f[1] > f[2] { await ledger.problem("Redis: agent \(i) holds \(f[0]) + offered \(f[1]) > \(f[2])") }
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }

        // Each agent answers its offers: agent 1 declines its first, agent 2 lets its first run out
        // (and goes back online once set away), everyone accepts the rest and closes each chat soon.
        let drivers = agents.enumerated().map { i, agent in
            Task {
                var declinedOnce = false, ignoredOnce = false
                while !done.withLockedValue({ $0 }) {
                    guard let frame = try? await agent.socket.next(nil, timeout: .milliseconds(300), where: {
                        $0.event == "CONVERSATION_OFFERED" || $0.event == "OFFER_REVOKED"
                    }) else { continue }
                    if frame.event == "OFFER_REVOKED" {
                        let conversation = frame.data["conversation_id"] as? String ?? ""
                        guard frame.data["reason"] as? String == "expired" else { continue }
                        let redisStatus = try? await redis.client.send("HGET", cluster.prefix + "agent:\(agent.id)", "status").string
                        await ledger.expiredFor(i, conversation, status: frame.data["status"] as? String, redisStatus: redisStatus)
                        if frame.data["status"] as? String == "away" {
                            _ = try? await agent.socket.request("SET_STATUS", ["status": "online"])
                        }
                        continue
                    }
                    guard let conversation = Self.conversationID(frame) else { await ledger.problem("offer without conversation: \(frame)"); continue }
                    await ledger.offered(i, conversation)
                    if i == 1 && !declinedOnce {
                        declinedOnce = true
                        let reply = try? await agent.socket.request("DECLINE_OFFER", ["conversation_id": conversation])
                        if reply?.event != "ACK" { await ledger.problem("decline failed: \(String(describing: reply))") }
                        await ledger.declinedBy(i, conversation)
                        continue
                    }
                    if i == 2 && !ignoredOnce {
                        ignoredOnce = true
                        await ledger.ignoredBy(i, conversation)
                        continue
                    }
                    guard let reply = try? await agent.socket.request("ACCEPT_OFFER", ["conversation_id": conversation]) else { continue }
                    guard reply.event == "ACK", Self.conversationID(reply) == conversation else {
                        await ledger.problem("agent \(i) could not accept \(conversation): \(reply)")
                        await ledger.declinedBy(i, conversation)
                        continue
                    }
                    await ledger.acceptedBy(i, conversation)
                    Task {
                        try await Task.sleep(for: .milliseconds(Int.random(in: 50...250)))
                        await ledger.closing(i)
                        let closed = try await agent.socket.request("CLOSE_CONVERSATION", ["conversation_id": conversation])
                        if closed.event != "ACK" { await ledger.problem("close of \(conversation) failed: \(closed)") }
                    }
                }
            }
        }

        // The first customer goes to the agent idle longest.
        var customers = [try await cluster.startChat(on: b, categoryID: sales).id]
        try await eventually("the first offer") { await !ledger.offers.isEmpty }
        let first = await ledger.offers[0]
        #expect(first.agent == 0 && first.conversation == customers[0], "longest idle first: \(first)")
        for i in 1..<30 { customers.append(try await cluster.startChat(on: i % 2 == 0 ? a : b, categoryID: sales).id) }

        try await eventually("all 30 assigned", timeout: .seconds(90)) { await ledger.acceptedCount == 30 }
        try await Task.sleep(for: .milliseconds(500))
        done.withLockedValue { $0 = true }
        for driver in drivers { _ = await driver.value }
        _ = try? await monitor.value

        let accepted = await ledger.accepted
        #expect(Set(accepted.keys) == Set(customers), "every customer assigned")
        for (conversation, by) in accepted { #expect(by.count == 1, "\(conversation) assigned to \(by)") }
        for id in customers {
            let assigned = try await Self.eventTypes(redis, cluster.prefix, id).filter { $0 == "assigned" }.count
            #expect(assigned == 1, "\(id) has \(assigned) assignments in its history")
        }
        let problems = await ledger.problems
        #expect(problems.isEmpty, "\(problems)")

        // the declined offer went to someone else
        let declined = try #require(await ledger.declined.first { $0.agent == 1 })
        let declinedTo = await ledger.offeredTo(declined.conversation)
        let afterDecline = declinedTo.drop { $0 != 1 }.dropFirst()
        #expect(afterDecline.first.map { $0 != 1 } == true, "after agent 1 declined, offered to \(declinedTo)")
        #expect(accepted[declined.conversation]?.first != 1)
        // the ignored one ran out: agent 2 was set away, and the customer went to someone else
        let ignored = try #require(await ledger.ignored.first)
        #expect(ignored.agent == 2)
        let expiry = try #require(await ledger.expired.first { $0.agent == 2 && $0.conversation == ignored.conversation })
        #expect(expiry.status == "away" && expiry.redisStatus == "away")
        let ignoredTo = await ledger.offeredTo(ignored.conversation)
        let expiries = await ledger.expired
        let afterExpiry = ignoredTo.drop { $0 != 2 }.dropFirst()
        #expect(afterExpiry.first.map { $0 != 2 } == true,
                "after agent 2's offer ran out, offered to \(ignoredTo); accepted by \(accepted[ignored.conversation] ?? []); expiries \(expiries)")
        #expect(try await redis.client.send("ZCARD", cluster.prefix + "offers").int == 0)
        for agent in agents { await agent.socket.close() }
    }

    @Test("a node killed mid-offer: the offer still runs out (another node's clock check) and goes to the next agent")
    func nodeKilledMidOffer() async throws {
        let cluster = try await TestCluster(overrides: Self.base.merging(["HELPDESK_OFFER_TIMEOUT": "1"]) { $1 })
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: b)
        let sales = try await Self.category(b, admin: admin.token, ["name": "Sales", "routing": "offer"])
        let doomed = try await NodeProcess.start(cluster, nodeID: "node-k")
        defer { doomed.kill() }
        let x = try await cluster.staff("xena@example.com", capacity: 1, on: b)
        let y = try await cluster.staff("yuri@example.com", capacity: 1, on: b)
        let xSocket = try await TestSocket.connect(doomed.wsURL, token: x.token, label: "x on the doomed node")
        try await Task.sleep(for: .milliseconds(20))
        let ySocket = try await TestSocket.connect(b.wsURL, token: y.token, label: "y on node-b")

        // The customer arrives on the doomed node: that node makes the offer (to x, idle longest) and holds its timer.
        let (status, json) = try await HTTP.request("POST", doomed.url + "/api/v1/conversations",
                                                    body: ["name": "Kim", "email": "kim@example.com", "category_id": sales])
        #expect(status == 201)
        let id = try #require(json["conversation_id"] as? String)
        let offer = try await xSocket.next("CONVERSATION_OFFERED")
        #expect(Self.conversationID(offer) == id)
        let offeredAt = ContinuousClock.now
        doomed.kill()

        let moved = try await ySocket.next("CONVERSATION_OFFERED", timeout: .seconds(10))
        #expect(Self.conversationID(moved) == id)
        #expect(ContinuousClock.now - offeredAt >= .milliseconds(900), "not before x's offer ran out")
        let redis = cluster.redis()
        #expect(try await redis.send("HGET", cluster.prefix + "agent:\(x.id)", "status").string == "away", "x let it run out")
        #expect(try await redis.send("HGET", cluster.prefix + "conv:\(id)", "offered_to").string == y.id)
        let accepted = try await ySocket.request("ACCEPT_OFFER", ["conversation_id": id])
        #expect(accepted.event == "ACK" && (accepted.data["conversation"] as? [String: Any])?["status"] as? String == "active")
        let history = try await Self.eventTypes(RedisClientBox(redis), cluster.prefix, id)
        #expect(history == ["created", "offered", "offer_expired", "offered", "assigned"])
        await ySocket.close(); await xSocket.close()
    }

    @Test("a customer who leaves the queue while on offer ends the offer (OFFER_REVOKED closed) and the agent's room goes to the next")
    func cancelWhileOffered() async throws {
        let cluster = try await TestCluster(overrides: Self.base.merging(["HELPDESK_OFFER_TIMEOUT": "20"]) { $1 })
        let a = try await cluster.startNode("node-a")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let sales = try await Self.category(a, admin: admin.token, ["name": "Sales", "routing": "offer"])
        let agent = try await cluster.staff("olive@example.com", capacity: 1, on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        let first = try await cluster.startChat(on: a, categoryID: sales)
        #expect(Self.conversationID(try await socket.next("CONVERSATION_OFFERED")) == first.id)
        // the agent's one place is on offer: the second customer waits
        let second = try await cluster.startChat(on: a, categoryID: sales)
        let customer = try await TestSocket.connect(a.wsURL, token: first.token, label: "customer")
        #expect(try await customer.request("CANCEL", ["conversation_id": first.id]).event == "ACK")
        let revoked = try await socket.next("OFFER_REVOKED")
        #expect(revoked.data["conversation_id"] as? String == first.id)
        #expect(revoked.data["reason"] as? String == "closed")
        #expect(Self.conversationID(try await socket.next("CONVERSATION_OFFERED")) == second.id)
        let redis = cluster.redis()
        #expect(try await redis.send("HGET", a.services.keys.agent(agent.id), "offered").string == "1")
        #expect(try await redis.send("ZSCORE", a.services.keys.offers, first.id).string == nil)
        await customer.close()
        await socket.close()
    }

    @Test("wrap-up holds offers for its time; END_WRAP_UP ends it early; presence shows wrap-up and offers")
    func wrapUpHoldsOffers() async throws {
        let cluster = try await TestCluster(overrides: Self.base.merging(["HELPDESK_OFFER_TIMEOUT": "5"]) { $1 })
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let sales = try await Self.category(a, admin: admin.token, ["name": "Sales", "routing": "offer", "wrap_up_s": 2])
        let agent = try await cluster.staff("wendy@example.com", capacity: 2, on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")

        func serveOne() async throws -> String {
            let chat = try await cluster.startChat(on: b, categoryID: sales)
            let offer = try await socket.next("CONVERSATION_OFFERED")
            #expect(Self.conversationID(offer) == chat.id)
            let (_, presence) = try await HTTP.requestArray("GET", a.url + "/api/v1/presence", token: admin.token)
            #expect(presence.first { $0["agent_id"] as? String == agent.id }?["offers"] as? Int == 1, "the offer shows in presence")
            #expect(try await socket.request("ACCEPT_OFFER", ["conversation_id": chat.id]).event == "ACK")
            #expect(try await socket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
            let started = try await socket.next("WRAP_UP_STARTED")
            #expect(started.data["conversation_id"] as? String == chat.id)
            return chat.id
        }

        _ = try await serveOne()
        let closedAt = ContinuousClock.now
        let (_, presence) = try await HTTP.requestArray("GET", b.url + "/api/v1/presence", token: admin.token)
        let until = presence.first { $0["agent_id"] as? String == agent.id }?["wrap_up_until"] as? Int
        #expect(until != nil, "presence shows the wrap-up")
        // a customer arrives during the wrap-up: no offer until it is over
        let waiting = try await cluster.startChat(on: b, categoryID: sales)
        try await Task.sleep(for: .milliseconds(1200))
        #expect(socket.count("CONVERSATION_OFFERED") == 0, "no offer during wrap-up")
        let ended = try await socket.next("WRAP_UP_ENDED", timeout: .seconds(5))
        #expect(ended.data["reason"] as? String == "elapsed")
        let offer = try await socket.next("CONVERSATION_OFFERED", timeout: .seconds(3))
        #expect(Self.conversationID(offer) == waiting.id)
        #expect(ContinuousClock.now - closedAt >= .milliseconds(1900))
        #expect(try await socket.request("ACCEPT_OFFER", ["conversation_id": waiting.id]).event == "ACK")
        #expect(try await socket.request("CLOSE_CONVERSATION", ["conversation_id": waiting.id]).event == "ACK")
        _ = try await socket.next("WRAP_UP_STARTED")

        // Ready before the time is up: END_WRAP_UP, and the next customer is offered at once.
        let next = try await cluster.startChat(on: a, categoryID: sales)
        try await Task.sleep(for: .milliseconds(300))
        #expect(socket.count("CONVERSATION_OFFERED") == 0)
        let ready = try await socket.request("END_WRAP_UP")
        #expect(ready.event == "ACK" && ready.data["ended"] as? Bool == true)
        let readyAt = ContinuousClock.now
        #expect(try await socket.next("WRAP_UP_ENDED").data["reason"] as? String == "ready")
        #expect(Self.conversationID(try await socket.next("CONVERSATION_OFFERED")) == next.id)
        #expect(ContinuousClock.now - readyAt < .milliseconds(1000))
        // a reconnecting page is told of the offer waiting for it
        let again = try await TestSocket.connect(b.wsURL, token: agent.token, label: "agent again")
        #expect(Self.conversationID(try await again.next("CONVERSATION_OFFERED")) == next.id)
        #expect(try await again.request("DECLINE_OFFER", ["conversation_id": next.id]).event == "ACK")
        _ = try await socket.next("OFFER_REVOKED")
        await socket.close(); await again.close()
    }

    @Test("skills by subtree: PICK, offers, GET /queue and QUEUE_UPDATED agree; the uncategorised queue is everyone's, by pick and by offer")
    func subtreeAndUncategorised() async throws {
        let cluster = try await TestCluster(overrides: Self.base.merging(["HELPDESK_OFFER_TIMEOUT": "20"]) { $1 })
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let billing = try await Self.category(a, admin: admin.token, ["name": "Billing"])
        let refunds = try await Self.category(a, admin: admin.token, ["name": "Refunds", "parent_id": billing])
        let technical = try await Self.category(a, admin: admin.token, ["name": "Technical"])
        let salesCat = try await Self.category(b, admin: admin.token, ["name": "Sales", "routing": "offer"])
        let renewals = try await Self.category(b, admin: admin.token, ["name": "Renewals", "parent_id": salesCat, "routing": "offer"])
        let bill = try await cluster.staff("bill@example.com", capacity: 5, on: a)
        let sally = try await cluster.staff("sally@example.com", capacity: 5, on: a)
        for (agent, category) in [(bill, billing), (sally, salesCat)] {
            let (status, _) = try await HTTP.request("PATCH", a.url + "/api/v1/users/\(agent.id)", token: admin.token, body: ["category_ids": [category]])
            #expect(status == 200)
        }
        // Bill (Billing only) is idle longest: Renewals must still go to Sally (Sales, its parent).
        let billSocket = try await TestSocket.connect(a.wsURL, token: bill.token, label: "bill")
        try await Task.sleep(for: .milliseconds(20))
        let sallySocket = try await TestSocket.connect(b.wsURL, token: sally.token, label: "sally")

        let refund = try await cluster.startChat(on: b, categoryID: refunds)
        let tech = try await cluster.startChat(on: b, categoryID: technical)
        let general = try await cluster.startChat(on: a)
        let renewal = try await cluster.startChat(on: a, categoryID: renewals)

        let offer = try await sallySocket.next("CONVERSATION_OFFERED")
        #expect(Self.conversationID(offer) == renewal.id)
        #expect(billSocket.count("CONVERSATION_OFFERED") == 0)

        // the queue list: what each may pick
        let (_, billQueue) = try await HTTP.requestArray("GET", b.url + "/api/v1/queue", token: bill.token)
        #expect(billQueue.compactMap { $0["id"] as? String } == [refund.id, general.id])
        let (_, sallyQueue) = try await HTTP.requestArray("GET", b.url + "/api/v1/queue", token: sally.token)
        #expect(sallyQueue.compactMap { $0["id"] as? String } == [general.id], "offer-routed customers are offered, not listed")
        let (_, all) = try await HTTP.requestArray("GET", b.url + "/api/v1/queue", token: admin.token)
        #expect(Set(all.compactMap { $0["id"] as? String }) == [refund.id, tech.id, general.id, renewal.id])
        // ... and the live events agree
        try await eventually("queue events") { billSocket.count("QUEUE_UPDATED") >= 2 && sallySocket.count("QUEUE_UPDATED") >= 1 }
        try await Task.sleep(for: .milliseconds(300))
        let billSaw = Set(billSocket.drain("QUEUE_UPDATED").compactMap(Self.conversationID))
        #expect(billSaw == [refund.id, general.id])
        let sallySaw = Set(sallySocket.drain("QUEUE_UPDATED").compactMap(Self.conversationID))
        #expect(sallySaw == [general.id])
        // PICK: Refunds (under Billing) and the uncategorised customer, then nothing (Technical is not Bill's)
        #expect(try await billSocket.request("PICK", ["conversation_id": tech.id]).code == "forbidden")
        #expect(try await billSocket.request("PICK", ["conversation_id": renewal.id]).code == "conflict")
        #expect(Self.conversationID(try await billSocket.request("PICK")) == refund.id)
        #expect(Self.conversationID(try await billSocket.request("PICK")) == general.id)
        #expect(try await billSocket.request("PICK").code == "not_found")
        #expect(try await sallySocket.request("ACCEPT_OFFER", ["conversation_id": renewal.id]).event == "ACK")

        // The uncategorised queue by offer: served by every agent, Bill too (Sally is away).
        let (patched, zero) = try await HTTP.request("PATCH", a.url + "/api/v1/categories/0", token: admin.token, body: ["routing": "offer"])
        #expect(patched == 200 && zero["routing"] as? String == "offer" && zero["id"] as? Int == 0)
        #expect(try await sallySocket.request("SET_STATUS", ["status": "away"]).event == "ACK")
        let general2 = try await cluster.startChat(on: b)
        let offered = try await billSocket.next("CONVERSATION_OFFERED")
        #expect(Self.conversationID(offered) == general2.id)
        #expect(try await billSocket.request("PICK", ["conversation_id": general2.id]).code == "conflict", "on offer: not pickable")
        #expect(try await billSocket.request("ACCEPT_OFFER", ["conversation_id": general2.id]).event == "ACK")
        // Technical has nobody: never offered, still waiting
        #expect(try await cluster.redis().send("HGET", cluster.prefix + "conv:\(tech.id)", "status").string == "waiting")
        await billSocket.close(); await sallySocket.close()
    }
}

/// A Redis client shared by test tasks.
struct RedisClientBox: @unchecked Sendable {
    let client: RedisClient
    init(_ client: RedisClient) { self.client = client }
}

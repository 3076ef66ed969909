import Foundation
import HelpDeskCore
import RedisClient
import TestSupport
import Testing
@testable import HelpDeskServer

@Suite("Lua scripts: Redis's contract and the fixes made in them", .serialized)
struct ScriptContractTests {
    static let luaDirectory = TestEnvironment.repositoryRoot + "/lua"

    static func luaFiles() throws -> [(name: String, text: String)] {
        let files = FileManager.default
        var out: [(String, String)] = []
        for directory in [luaDirectory, luaDirectory + "/lib"] {
            for name in try files.contentsOfDirectory(atPath: directory).filter({ $0.hasSuffix(".lua") }).sorted() {
                out.append((directory.hasSuffix("lib") ? "lib/" + name : name, try String(contentsOfFile: directory + "/" + name, encoding: .utf8)))
            }
        }
        return out
    }

    @Test("no script builds a key name: every redis.call names its key from KEYS or a variable, never a concatenation")
    func noKeyBuiltInLua() throws {
        let call = try Regex(#"redis\.p?call\(\s*'([A-Za-z]+)'\s*,\s*([^,)]*)"#)
        for (name, text) in try Self.luaFiles() {
            for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).hasPrefix("--") {
                for match in line.matches(of: call) {
                    let firstArgument = String(match.output[2].substring ?? "")
                    #expect(!firstArgument.contains(".."), "\(name): key built by concatenation: \(line)")
                    #expect(!firstArgument.hasPrefix("'") && !firstArgument.hasPrefix("\""), "\(name): literal key name: \(line)")
                }
            }
            // the prefix argument is gone: names come from RedisKeys.swift only
            #expect(!text.contains("P .. '"), "\(name) builds names from a prefix")
            if !name.hasPrefix("lib/") { #expect(text.contains("-- KEYS"), "\(name) does not document its KEYS") }
        }
    }

    @Test("one script per operation: presence.lua and call.lua are split")
    func onePerOperation() throws {
        let names = Set(try Self.luaFiles().map(\.name))
        #expect(!names.contains("presence.lua") && !names.contains("call.lua"))
        for name in ["agent_connect", "agent_disconnect", "agent_status", "node_heartbeat", "agent_sweep", "customer_abandon",
                     "call_invite", "call_accept", "call_reject", "call_end", "call_signal", "call_expire", "escalate", "rate",
                     "takeover", "cancel", "offer", "offer_accept", "offer_end", "wrap_up_end", "categories_sync", "agent_profile"] {
            #expect(names.contains(name + ".lua"), "\(name).lua missing")
        }
    }

    /// An agent 101 with an active chat (and the customer as a caller).
    static func activeChat(_ f: ScriptFixture, email: String = "cleo@example.com") async throws -> (id: String, customer: Caller) {
        _ = try await f.store.agentConnected(agentID: "101", node: "n1", name: "Ann", capacity: "3", categories: "", supervisorID: "900")
        _ = try await f.store.agentConnected(agentID: "102", node: "n1", name: "Bob", capacity: "3", categories: "", supervisorID: "900")
        let queued = try await f.store.enqueue(name: "Cleo", email: email, categoryID: "7", subject: "Hi", priority: "normal")
        _ = try await f.store.pick(agentID: "101", conversationID: queued.conversationID, mode: "pick", actorID: "101")
        return (queued.conversationID, ScriptFixture.customer(queued.customerID))
    }

    @Test("pick.lua answers with the assigned conversation itself (no HGETALL after it)")
    func pickReturnsTheConversation() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        _ = try await f.store.agentConnected(agentID: "101", node: "n1", name: "Ann", capacity: "1", categories: "", supervisorID: "-")
        let queued = try await f.store.enqueue(name: "Cleo", email: "c@example.com", categoryID: "7", subject: "Hi", priority: "normal")
        let id = queued.conversationID
        let reply = try await f.store.scripts.run("pick", keys: [
            f.keys.agent("101"), f.keys.agentConversations("101"), f.keys.availableAgents, f.keys.customersSeen, f.keys.queueChannel,
            f.keys.presenceChannel, f.keys.userChannel("101"), f.keys.queues, f.keys.categories, f.keys.offers, f.keys.queue("7"),
            f.keys.conversation(id), f.keys.events(id), f.keys.conversationChannel(id),
        ], arguments: ["", "101", id, "pick", "101", "", "1", "7", id], on: f.redis).array ?? []
        #expect(reply.first?.string == "ok" && reply[1].string == id)
        let hash = try #require(reply.count > 2 ? reply[2].fieldMap : nil)
        #expect(hash["status"] == "active" && hash["agent_id"] == "101" && hash["customer_email"] == "c@example.com")
    }

    @Test("a script given keys for data that changed answers stale and writes nothing")
    func staleWritesNothing() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let (id, _) = try await Self.activeChat(f)
        // close.lua told the conversation's agent is 102 (it is 101): stale, still active
        let reply = try await f.store.scripts.run("close", keys: [
            f.keys.conversation(id), f.keys.events(id), f.keys.call(id), f.keys.conversationChannel(id), f.keys.customer("cleo@example.com"),
            f.keys.queue("7"), f.keys.customersSeen, f.keys.liveConversations, f.keys.ringingCalls, f.keys.outbox, f.keys.stats,
            f.keys.queueChannel, f.keys.agent("102"), f.keys.agentConversations("102"), f.keys.availableAgents, f.keys.presenceChannel,
        ], arguments: ["", id, "900", "supervisor", "", "cleo@example.com", "7", "102"], on: f.redis)
        #expect(reply == .array([.bulkString(Array("err".utf8)), .bulkString(Array("stale".utf8))]))
        #expect(try await f.redis.send("HGET", f.keys.conversation(id), "status").string == "active")
        // LiveStore reads the agent itself, so the same close goes through
        try await f.store.close(conversationID: id, actor: ScriptFixture.supervisor, resolution: "")
        #expect(try await f.redis.send("HGET", f.keys.conversation(id), "status").string == "closed")
    }

    @Test("issue 10 #5: close and abandon start a new close generation and the outbox entry carries it")
    func closeEpoch() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let (id, customer) = try await Self.activeChat(f)
        try await f.store.close(conversationID: id, actor: ScriptFixture.agent("101"), resolution: "done")
        _ = try await f.store.reopen(conversationID: id, actor: customer)
        try await f.store.close(conversationID: id, actor: ScriptFixture.supervisor, resolution: "")
        let waiting = try await f.store.enqueue(name: "Dan", email: "dan@example.com", categoryID: "7", subject: "Hi", priority: "normal")
        #expect(try await f.store.sweep(agentGrace: 600_000, nodeTTL: 600_000, customerGrace: 0).2 == 1)
        let fields = try await f.redis.send("XRANGE", f.keys.outbox, "-", "+").array?.compactMap { $0.array?[1].fieldMap } ?? []
        #expect(fields.map { $0["conversation_id"] ?? "" } == [id, id, waiting.conversationID])
        #expect(fields.map { $0["epoch"] ?? "" } == ["1", "2", "1"])
        #expect(try await f.redis.send("HGET", f.keys.conversation(id), "close_epoch").string == "2")
    }

    @Test("issue 10 #6: a transfer's note reaches staff only; the customer gets the event without it")
    func transferNoteStaffOnly() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let (id, customer) = try await Self.activeChat(f)
        _ = try await f.published()
        _ = try await f.store.transfer(conversationID: id, actor: ScriptFixture.agent("101"), agentID: "102", category: nil, note: "secret: VIP")
        _ = try await f.store.transfer(conversationID: id, actor: ScriptFixture.agent("102", "Bob"), agentID: nil, category: nil, note: "secret 2")
        let onChannel = try await f.published().map { try Published(channel: $0.channel, payload: $0.payload) }
            .filter { $0.channel == "ch:conv:" + id }
        let transferred = onChannel.filter { $0.event == "CONVERSATION_TRANSFERRED" }
        #expect(transferred.count == 4)
        for p in transferred {
            // what a customer's socket receives: audience a, or u with its id
            let toCustomer = p.audience == "a" || (p.audience == "u" && p.key == customer.id)
            #expect(toCustomer == (p.data["note"] == nil), "\(p)")
            #expect(!p.frame.contains("secret") || p.audience == "s", "\(p)")
        }
        #expect(transferred.filter { $0.audience == "u" && $0.key == customer.id }.count == 2)
    }

    @Test("issue 10 #7: transfer, requeue and close end a running or ringing call for both sides and clear it")
    func movesEndTheCall() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let ann = ScriptFixture.agent("101"), bob = ScriptFixture.agent("102", "Bob")
        let (id, customer) = try await Self.activeChat(f)

        func callEndsFor(_ who: [String], _ body: () async throws -> Void) async throws {
            _ = try await f.published()
            try await body()
            let ends = try await f.published().map { try Published(channel: $0.channel, payload: $0.payload) }.filter { $0.event == "CALL_END" }
            #expect(Set(ends.map(\.key)) == Set(who) && ends.allSatisfy { $0.audience == "u" }, "\(ends)")
            #expect(try await f.redis.send("EXISTS", f.keys.call(id)).int == 0)
            #expect(try await f.redis.send("ZSCORE", f.keys.ringingCalls, id).string == nil)
        }
        // running call, transfer to another agent
        try await f.store.call("invite", conversationID: id, callID: "k1", caller: customer, extra: ["audio", "45000"])
        try await f.store.call("accept", conversationID: id, callID: "k1", caller: ann)
        try await callEndsFor([customer.id, "101"]) {
            _ = try await f.store.transfer(conversationID: id, actor: ann, agentID: "102", category: nil, note: "")
        }
        // ringing call, transfer back to the queue
        try await f.store.call("invite", conversationID: id, callID: "k2", caller: bob, extra: ["audio", "45000"])
        try await callEndsFor([customer.id, "102"]) {
            _ = try await f.store.transfer(conversationID: id, actor: bob, agentID: nil, category: nil, note: "")
        }
        // a new call is possible afterwards (the conversation is not "busy" forever)
        _ = try await f.store.pick(agentID: "101", conversationID: id, mode: "pick", actorID: "101")
        try await f.store.call("invite", conversationID: id, callID: "k3", caller: ann, extra: ["audio", "45000"])
        // requeue: the agent's node is gone past its grace
        try await f.store.agentDisconnected(agentID: "101", node: "n1")
        try await f.store.agentDisconnected(agentID: "102", node: "n1")
        try await Task.sleep(for: .milliseconds(20))
        try await callEndsFor([customer.id, "101"]) {
            let requeued = try await f.store.sweep(agentGrace: 0, nodeTTL: 1, customerGrace: 600_000).1
            #expect(requeued == 1)
        }
        // close (a running call)
        _ = try await f.store.agentConnected(agentID: "102", node: "n1", name: "Bob", capacity: "3", categories: "", supervisorID: "900")
        _ = try await f.store.pick(agentID: "102", conversationID: id, mode: "pick", actorID: "102")
        try await f.store.call("invite", conversationID: id, callID: "k4", caller: customer, extra: ["audio", "45000"])
        try await f.store.call("accept", conversationID: id, callID: "k4", caller: bob)
        try await callEndsFor([customer.id, "102"]) {
            try await f.store.close(conversationID: id, actor: bob, resolution: "")
        }
    }

    @Test("issue 11: takeover.lua checks the team with the change, answers stale on a changed agent, frees the former agent")
    func takeOverScript() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let (id, _) = try await Self.activeChat(f)  // agent 101, whose supervisor is 900
        func state() async throws -> [String] {
            [try await f.redis.send("HGET", f.keys.conversation(id), "agent_id").string ?? "-",
             try await f.redis.send("HGET", f.keys.agent("101"), "active").string ?? "-"]
        }
        // another team's supervisor: refused by the script itself, nothing written
        let tom = Caller(id: "901", role: .supervisor, name: "Tom")
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.takeOver(conversationID: id, actor: tom) }
        #expect(try await state() == ["101", "1"])
        // told the agent is 102 (it is 101): stale, nothing written
        let reply = try await f.store.scripts.run("takeover", keys: [
            f.keys.conversation(id), f.keys.events(id), f.keys.call(id), f.keys.conversationChannel(id), f.keys.ringingCalls,
            f.keys.agent("102"), f.keys.agentConversations("102"), f.keys.availableAgents, f.keys.presenceChannel,
            f.keys.userChannel("102"), f.keys.userChannel("900"),
        ], arguments: ["", id, "900", "supervisor", "Sue", "102"], on: f.redis)
        #expect(reply == .array([.bulkString(Array("err".utf8)), .bulkString(Array("stale".utf8))]))
        #expect(try await state() == ["101", "1"])
        // the team's supervisor
        _ = try await f.published()
        #expect(try await f.store.takeOver(conversationID: id, actor: ScriptFixture.supervisor) == "101")
        #expect(try await state() == ["900", "0"])
        #expect(try await f.redis.send("SISMEMBER", f.keys.agentConversations("101"), id).int == 0)
        #expect(try await f.redis.send("HGET", f.keys.conversation(id), "agent_name").string == "Sue")
        let frames = try await f.published().map { try Published(channel: $0.channel, payload: $0.payload) }
        #expect(frames.contains { $0.channel == "ch:user:101" && $0.event == "CONVERSATION_TRANSFERRED" })
        #expect(frames.contains { $0.channel == "ch:conv:" + id && $0.kind == "moved" && $0.key == "900" && $0.data["taken_over"] as? Bool == true })
        #expect(frames.contains { $0.channel == "ch:user:900" && $0.event == "CONVERSATION_ASSIGNED" })
        #expect(frames.contains { $0.channel == "ch:presence" && $0.data["agent_id"] as? String == "101" && $0.data["active"] as? Int == 0 })
        // twice: already its own
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.takeOver(conversationID: id, actor: ScriptFixture.supervisor) }
    }

    @Test("issue 11: cancel.lua ends its own customer's waiting conversation only, as abandoned, into the outbox")
    func cancelScript() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let queued = try await f.store.enqueue(name: "Cleo", email: "cleo@example.com", categoryID: "7", subject: "Hi", priority: "normal")
        let other = try await f.store.enqueue(name: "Dan", email: "dan@example.com", categoryID: "7", subject: "Hi", priority: "normal")
        let id = queued.conversationID
        await #expect(throws: HelpDeskError.self) { try await f.store.cancel(conversationID: id, customer: ScriptFixture.customer(other.customerID)) }
        await #expect(throws: HelpDeskError.self) { try await f.store.cancel(conversationID: id, customer: ScriptFixture.agent("101")) }
        #expect(try await f.redis.send("HGET", f.keys.conversation(id), "status").string == "waiting")
        try await f.store.cancel(conversationID: id, customer: ScriptFixture.customer(queued.customerID))
        let hash = try await f.redis.send("HGETALL", f.keys.conversation(id)).fieldMap
        #expect(hash["status"] == "abandoned" && hash["resolution"] == "abandoned" && hash["closed_by"] == queued.customerID)
        #expect(try await f.redis.send("ZSCORE", f.keys.queue("7"), id).string == nil)
        #expect(try await f.redis.send("HGET", f.keys.customer("cleo@example.com"), "conv").string == nil)
        let outbox = try await f.redis.send("XRANGE", f.keys.outbox, "-", "+").array?.compactMap { $0.array?[1].fieldMap } ?? []
        #expect(outbox.map { $0["conversation_id"] ?? "" } == [id])
        let events = try await f.redis.send("XRANGE", f.keys.events(id), "-", "+").array?.compactMap { $0.array?[1].fieldMap } ?? []
        #expect(events.last?["type"] == "abandoned" && events.last?["data"]?.contains("cancelled") == true)
        await #expect(throws: HelpDeskError.self) { try await f.store.cancel(conversationID: id, customer: ScriptFixture.customer(queued.customerID)) }
        #expect(try await f.redis.send("XLEN", f.keys.outbox).int == 1)
    }

    @Test("send.lua with several messages: each is answered on its own, a Lua error in one (a key of the wrong type) refuses only that one")
    func sendBatch() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let (first, cleo) = try await Self.activeChat(f)
        let (second, dora) = try await Self.activeChat(f, email: "dora@example.com")
        // the first conversation's dedupe key is a string: HMGET on it raises WRONGTYPE inside send
        _ = try await f.redis.send("SET", f.keys.dedupe(first), "not a hash")
        let a = f.store.sendCall(f.store.sendTemplate(conversationID: first), sender: cleo, text: "one", clientMsgID: UUID().uuidString, isInternal: false)
        let b = f.store.sendCall(f.store.sendTemplate(conversationID: second), sender: dora, text: "two", clientMsgID: UUID().uuidString, isInternal: false)
        let repeated = f.store.sendCall(f.store.sendTemplate(conversationID: second), sender: dora, text: "two", clientMsgID: b.arguments[5], isInternal: false)
        let reply = try await f.store.scripts.run("send", keys: a.keys + b.keys + repeated.keys,
                                                  arguments: [""] + a.arguments + b.arguments + repeated.arguments, on: f.redis)
        let replies = try #require(reply.array)
        #expect(replies.count == 3)
        #expect(replies[0].array?.compactMap(\.string) == ["err", "internal"])
        #expect(throws: HelpDeskError.self) { try LiveStore.sent(replies[0], for: a) }
        let stored = try LiveStore.sent(replies[1], for: b)
        #expect(!stored.duplicate)
        // a repeat within the same call sees the message stored before it
        let again = try LiveStore.sent(replies[2], for: repeated)
        #expect(again.duplicate && again.messageID == stored.messageID)
        #expect(try await f.store.messages(second, after: nil).map(\.text) == ["two"])
        #expect(try await f.store.messages(first, after: nil).isEmpty)
        // a frame that is not a NEW_MESSAGE's start (a node of another release) is refused, not published
        let foreign = f.store.sendCall(f.store.sendTemplate(conversationID: second), sender: dora, text: "three", clientMsgID: UUID().uuidString, isInternal: false)
        let refused = try await f.store.scripts.run("send", keys: foreign.keys, arguments: [""] + [second] + foreign.arguments.dropFirst(), on: f.redis)
        #expect(refused.array?.first?.array?.compactMap(\.string) == ["err", "internal"])
        #expect(try await f.store.messages(second, after: nil).map(\.text) == ["two"])
        // the layout is checked: arguments that do not match the keys are refused as a whole
        await #expect(throws: RedisError.self) {
            try await f.store.scripts.run("send", keys: b.keys, arguments: [""] + b.arguments.dropLast(), on: f.redis)
        }
    }

    @Test("send.lua: a message that fails after it was stored (a Lua error past the XADD) is answered as stored, with its entry for an ACK without echo, never refused")
    func sendFailsAfterStore() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let (id, cleo) = try await Self.activeChat(f)
        // the repository's send.lua with an error injected right after the message is stored
        let plain = try RedisScripts(directory: Self.luaDirectory)
        let publish = "  -- internal notes reach staff sockets only\n"
        let send = try #require(plain.sources["send"])
        try #require(send.contains(publish), "send.lua changed: move the injected error")
        var sources = plain.sources
        sources["send"] = send.replacingOccurrences(of: publish, with: "  if text == 'fail after store' then error('injected') end\n" + publish)
        let failing = RedisScripts(sources: sources, prelude: plain.prelude)
        defer { Task { _ = try? await f.redis.send("FUNCTION", "DELETE", failing.libraryName) } }
        let template = f.store.sendTemplate(conversationID: id)
        let withoutEcho = f.store.sendCall(template, sender: cleo, text: "fail after store", clientMsgID: UUID().uuidString, isInternal: false, origin: "n.1")
        let withEcho = f.store.sendCall(template, sender: cleo, text: "fail after store", clientMsgID: UUID().uuidString, isInternal: false)
        let replies = try #require(try await failing.run("send", keys: withoutEcho.keys + withEcho.keys,
                                                         arguments: [""] + withoutEcho.arguments + withEcho.arguments, on: f.redis).array)
        let stored = try await f.store.messages(id, after: nil)
        #expect(stored.map(\.text) == ["fail after store", "fail after store"])
        // answered as a retry would be: the sender must not send it again under a new id
        let first = try LiveStore.sent(replies[0], for: withoutEcho)
        #expect(first.duplicate && first.messageID == stored[0].id)
        let view = try Wire.decoder.decode(MessageView.self, from: Data(try #require(first.messageJSON).utf8))
        #expect(view.id == stored[0].id && view.text == "fail after store" && view.clientMsgId == withoutEcho.arguments[5])
        #expect(replies[1].array?.count == 3)
        let second = try LiveStore.sent(replies[1], for: withEcho)
        #expect(second.duplicate && second.messageID == stored[1].id && second.messageJSON == nil)
    }

    @Test("the scripts write at most hd.LOG_LINES_PER_SECOND warnings to Redis's log a second, across calls; the next second logs again")
    func scriptWarningsLimited() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let plain = try RedisScripts(directory: Self.luaDirectory)
        // ARGV: now (ms), lines to log; answers how many were written
        let probe = RedisScripts(sources: ["log_probe": """
            local written = 0
            for i = 1, tonumber(ARGV[2]) do
              if hd.log_warning(tonumber(ARGV[1]), 'log probe ' .. i) then written = written + 1 end
            end
            return written
            """], prelude: plain.prelude)
        _ = try? await f.redis.send("FUNCTION", "DELETE", probe.libraryName)
        defer { Task { _ = try? await f.redis.send("FUNCTION", "DELETE", probe.libraryName) } }
        let second = 1_700_000_000_000
        #expect(try await probe.run("log_probe", keys: [], arguments: [String(second), "25"], on: f.redis).int == 10)
        // the same second in another call: the budget is spent
        #expect(try await probe.run("log_probe", keys: [], arguments: [String(second + 999), "3"], on: f.redis).int == 0)
        #expect(try await probe.run("log_probe", keys: [], arguments: [String(second + 1000), "12"], on: f.redis).int == 10)
    }

    @Test("a node loads only a lua/ of its own layout (lua/LAYOUT): another number, or none, is refused with a clear error, and such a node does not start")
    func scriptLayout() async throws {
        #expect(try ScriptLibrary.load(directory: Self.luaDirectory).sources["send"] != nil)
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("lua-layout-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: Self.luaDirectory, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try "\(ScriptLibrary.layout + 1)\n".write(toFile: copy + "/LAYOUT", atomically: true, encoding: .utf8)
        #expect { try ScriptLibrary.load(directory: copy) } throws: { error in
            "\(error)".contains("layout \(ScriptLibrary.layout + 1), this binary calls layout \(ScriptLibrary.layout)")
        }
        try FileManager.default.removeItem(atPath: copy + "/LAYOUT")
        #expect { try ScriptLibrary.load(directory: copy) } throws: { error in "\(error)".contains("LAYOUT is missing") }
        // and a node given that lua/ does not start
        let cluster = try await TestCluster(overrides: ["HELPDESK_LUA_DIR": copy])
        defer { Task { await cluster.shutdown() } }
        await #expect { _ = try await cluster.startNode() } throws: { error in "\(error)".contains("LAYOUT is missing") }
    }

    /// Every script's contract header (from its `-- KEYS` line to the end of that comment block:
    /// KEYS, ARGV, what it returns), as of each `ScriptLibrary.layout`. When this test fails, a
    /// header changed: if the scripts' KEYS or ARGV changed meaning, raise `ScriptLibrary.layout`
    /// and `lua/LAYOUT` (so a node refuses a `lua/` of the other contract); either way, pin the
    /// digest the failure names under the layout it belongs to.
    static let contractDigests: [Int: String] = [
        1: "aa6654691f3114c5b3287abc5ec3609830fe8cd72a9dc2bdbab2786fc4f6c52a",
    ]

    /// SHA-256 (hex) of every top-level script's name and contract header, in name order.
    static func contractDigest(of directory: String) throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".lua") }.sorted()
        var text = ""
        for name in names {
            var header: [Substring] = []
            for line in try String(contentsOfFile: directory + "/" + name, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
                if header.isEmpty && !line.hasPrefix("-- KEYS") { continue }
                guard line.hasPrefix("--") else { break }
                header.append(line)
            }
            text += name + "\n" + header.joined(separator: "\n") + "\n"
        }
        return Crypto.sha256(Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test("every script's KEYS/ARGV header is the one pinned for this binary's layout, so a changed contract cannot ship under the old lua/LAYOUT")
    func contractPinnedToLayout() throws {
        let digest = try Self.contractDigest(of: Self.luaDirectory)
        #expect(Self.contractDigests[ScriptLibrary.layout] == digest,
                "a script's KEYS/ARGV header changed: if its contract did, raise ScriptLibrary.layout and lua/LAYOUT; then pin \(digest) for that layout in ScriptContractTests.contractDigests")
        // and an edited header is noticed
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("lua-contract-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: Self.luaDirectory, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let send = try String(contentsOfFile: copy + "/send.lua", encoding: .utf8)
        try send.replacingOccurrences(of: "-- ARGV: 1 now override", with: "-- ARGV: 1 clock override").write(toFile: copy + "/send.lua", atomically: true, encoding: .utf8)
        #expect(try Self.contractDigest(of: copy) != digest)
    }

    @Test("send.lua's answer without echo: the ACK's message is the node's fields with the stored id and time; an answer without a usable time or entry still acknowledges the stored message, without its view")
    func sentMessageView() throws {
        let call = LiveStore.SendCall(keys: [], arguments: [], messageFields: #""sender":{"id":"u1","role":"customer","name":"Cleo"},"text":"hi","client_msg_id":"m1","internal":false"#,
                                      isInternal: false)
        func reply(_ parts: RESPValue...) -> RESPValue { .array(parts) }
        func bulk(_ s: String) -> RESPValue { .bulkString(Array(s.utf8)) }
        let stored = try LiveStore.sent(reply(bulk("ok"), bulk("5-0"), .integer(0), bulk("1700000000000")), for: call)
        let view = try Wire.decoder.decode(MessageView.self, from: Data(try #require(stored.messageJSON).utf8))
        #expect(view == MessageView(id: "5-0", sender: .init(id: "u1", role: "customer", name: "Cleo"), text: "hi", sentAt: 1_700_000_000_000,
                                    clientMsgId: "m1", isInternal: false))
        // a time that is not a number, and a retry whose entry is gone: acknowledged, no view
        let odd = try LiveStore.sent(reply(bulk("ok"), bulk("6-0"), .integer(0), bulk("soon")), for: call)
        #expect(odd.messageID == "6-0" && !odd.duplicate && odd.messageJSON == nil)
        let gone = try LiveStore.sent(reply(bulk("ok"), bulk("4-0"), .integer(1), bulk("")), for: call)
        #expect(gone.messageID == "4-0" && gone.duplicate && gone.messageJSON == nil)
    }

    @Test("issue 10 #12: times come from Redis's clock, not from a node whose clock is an hour ahead")
    func redisClock() async throws {
        let ahead: @Sendable () -> Date = { Date().addingTimeInterval(3600) }
        let f = try await ScriptFixture(clock: ahead)
        defer { Task { await f.finish() } }
        let (id, customer) = try await Self.activeChat(f)
        _ = try await f.store.send(conversationID: id, sender: customer, text: "hi", clientMsgID: "1", isInternal: false)
        try await f.store.call("invite", conversationID: id, callID: "t1", caller: customer, extra: ["audio", "45000"])
        try await f.store.close(conversationID: id, actor: ScriptFixture.agent("101"), resolution: "")
        let time = try await f.redis.send("TIME").array ?? []
        let redisNow = (Int64(time[0].string ?? "") ?? 0) * 1000
        let hash = try await f.redis.send("HGETALL", f.keys.conversation(id)).fieldMap
        let message = try await f.store.messages(id, after: nil).first
        for (what, value) in [("created_at", Int64(hash["created_at"] ?? "")), ("assigned_at", Int64(hash["assigned_at"] ?? "")),
                              ("closed_at", Int64(hash["closed_at"] ?? "")), ("sent_at", message?.sentAt)] {
            let value = try #require(value, "\(what) missing")
            #expect(abs(value - redisNow) < 60_000, "\(what) is \(value - redisNow) ms off Redis's clock")
        }
        // the node's clock does not drive presence either: a fresh heartbeat is not swept
        #expect(try await f.store.heartbeat(node: "n1", nodeTTL: 15_000, agents: ["102"], waitingConversations: []).isEmpty)
        let swept = try await f.store.sweep(agentGrace: 60_000, nodeTTL: 15_000, customerGrace: 60_000)
        #expect(swept.0 == 0 && swept.1 == 0 && swept.2 == 0)
    }

    @Test("issue 10 #22: ten ratings sent at once: exactly one is stored")
    func ratingIsAtomic() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let (id, _) = try await Self.activeChat(f)
        await #expect(throws: HelpDeskError.self) { _ = try await f.store.rate(conversationID: id, rating: 5, comment: "") }
        try await f.store.close(conversationID: id, actor: ScriptFixture.agent("101"), resolution: "")
        let store = f.store
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for i in 1...10 { group.addTask { (try? await store.rate(conversationID: id, rating: i % 5 + 1, comment: "r\(i)")) != nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 1)
        #expect(try await f.store.rate(conversationID: "00000000-0000-0000-0000-000000000000", rating: 3, comment: "") == .notLive)
    }
}

import Foundation
import HelpDeskCore
import RedisClient
import TestSupport
import Testing
@testable import HelpDeskServer

/// The frames the scripts publish, decoded into HelpDeskProtocol's types (a missing or mistyped
/// field fails), plus the checks those types are too lenient for.
enum Wire {
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    /// Decodes a frame's data as the protocol type of its event; records an issue for an unknown event.
    static func decode(_ event: String, _ frame: String) throws {
        func d<T: Decodable & Sendable>(_: T.Type) throws { _ = try decoder.decode(ServerEnvelope<T>.self, from: Data(frame.utf8)) }
        switch ServerEventName(rawValue: event) {
        case .newMessage?: try d(ServerEventData.NewMessage.self)
        case .conversationAssigned?: try d(ServerEventData.Assigned.self)
        case .queueUpdated?: try d(ServerEventData.QueueUpdated.self)
        case .presenceUpdated?: try d(PresenceView.self)
        case .conversationClosed?: try d(ServerEventData.Closed.self)
        case .conversationRequeued?: try d(ServerEventData.Requeued.self)
        case .conversationTransferred?: try d(ServerEventData.Transferred.self)
        case .conversationReopened?: try d(ServerEventData.Reopened.self)
        case .conversationEscalated?: try d(ServerEventData.Escalated.self)
        case .typing?: try d(ServerEventData.Typing.self)
        case .conversationOffered?: try d(ServerEventData.Offered.self)
        case .offerRevoked?: try d(ServerEventData.OfferRevoked.self)
        case .wrapUpStarted?: try d(ServerEventData.WrapUpStarted.self)
        case .wrapUpEnded?: try d(ServerEventData.WrapUpEnded.self)
        case .categoriesUpdated?: try d(ServerEventData.CategoriesUpdated.self)
        case .profileUpdated?: try d(ServerEventData.ProfileUpdated.self)
        case .callInvite?, .callAccept?, .callReject?, .callEnd?, .rtcSignal?:
            let call = try decoder.decode(ServerEnvelope<ServerEventData.Call>.self, from: Data(frame.utf8)).data
            if event != "CALL_END" { #expect(call.from != nil, "\(event) without from") }
            if event == "CALL_INVITE" { #expect(call.media != nil) }
            if event == "CALL_END" { #expect(call.reason != nil && call.durationS != nil) }
        default: Issue.record("unknown event \(event)")
        }
    }

    /// The fields a conversation view may have; every view carries the required ones.
    static let conversationFields: Set<String> = ["id", "status", "customer", "agent", "category_id", "subject", "priority", "created_at",
                                                   "enqueued_at", "assigned_at", "first_response_at", "closed_at", "resolution", "escalated"]
    static let conversationRequired: Set<String> = ["id", "status", "customer", "category_id", "subject", "priority", "created_at", "enqueued_at", "escalated"]
}

@Suite("Lua golden frames", .serialized)
struct LuaGoldenTests {
    /// Everything JSON escapes, or might: quotes, a backslash, a slash, control characters,
    /// U+2028 (a line break to JavaScript), non-ASCII.
    static let awkwardText = "ü \"q\" \\ / \t\n\u{01}\u{1F} \u{2028} 日本"
    /// Checks one payload's header against the routing rules (lua/lib/protocol.lua) and decodes its frame.
    static func check(_ p: Published, supervisors: [String: String] = [:]) throws {
        #expect(!p.frame.contains("\n"))
        #expect(["a", "s", "u"].contains(p.audience), "\(p)")
        if p.audience == "u" { #expect(p.key != "-" && !p.key.isEmpty, "\(p)") }
        if p.channel.hasPrefix("ch:conv:") {
            let conversation = String(p.channel.dropFirst("ch:conv:".count))
            #expect(p.data["conversation_id"] as? String == conversation, "\(p)")
            switch p.kind {
            case "msg":
                #expect(p.event == "NEW_MESSAGE")
                // the key is the message's id, then '/<origin>' when its sender asked for no echo
                let id = String(p.key.split(separator: "/", maxSplits: 1)[0])
                #expect(StreamID(id) != nil && (p.data["message"] as? [String: Any])?["id"] as? String == id, "\(p)")
                let internalNote = (p.data["message"] as? [String: Any])?["internal"] as? Bool
                #expect(p.audience == (internalNote == true ? "s" : "a"), "\(p)")
            case "assigned":
                #expect(p.event == "CONVERSATION_ASSIGNED" && p.audience == "a")
                #expect((p.data["agent"] as? [String: Any])?["id"] as? String == p.key, "\(p)")
            case "closed":
                #expect(p.event == "CONVERSATION_CLOSED" && p.key == "-" && p.audience == "a", "\(p)")
            case "moved":
                #expect(["CONVERSATION_REQUEUED", "CONVERSATION_TRANSFERRED", "CONVERSATION_REOPENED"].contains(p.event), "\(p)")
                #expect(p.key == ((p.data["agent"] as? [String: Any])?["id"] as? String ?? "-"), "\(p)")
            case "event":
                #expect(!["NEW_MESSAGE", "CONVERSATION_ASSIGNED", "CONVERSATION_CLOSED", "CONVERSATION_REQUEUED", "CONVERSATION_REOPENED"].contains(p.event), "\(p)")
                if p.audience != "u" { #expect(p.key == "-", "\(p)") }
                // a transfer's customer copy carries no note
                if p.event == "CONVERSATION_TRANSFERRED" { #expect(p.audience == "u" && p.data["note"] == nil, "\(p)") }
            default:
                Issue.record("kind \(p.kind) on a conversation channel: \(p)")
            }
            if p.data["note"] != nil { #expect(p.audience == "s", "a note outside staff: \(p)") }
        } else if p.channel == "ch:queue" && p.event == "CATEGORIES_UPDATED" {
            #expect(p.kind == "queue" && p.audience == "a" && p.key == "-", "\(p)")
        } else if p.channel == "ch:queue" {
            #expect(p.kind == "queue" && p.audience == "a" && p.event == "QUEUE_UPDATED", "\(p)")
            #expect((p.data["conversation"] as? [String: Any])?["category_id"] as? String == p.key, "\(p)")
            // a node batching queue changes takes the data object's bytes as they are: it must find
            // them, and a QUEUE_CHANGES frame made of them must decode
            let bytes = Array(p.frame.utf8)
            let range = bytes.withUnsafeBytes { QueueChangesFrame.changeRange(in: $0) }
            #expect(range != nil, "QUEUE_UPDATED not in the shape QUEUE_CHANGES needs: \(p)")
            if let range {
                let batch = String(decoding: QueueChangesFrame.frame([Array(bytes[range]), Array(bytes[range])]), as: UTF8.self)
                let changes = try Wire.decoder.decode(ServerEnvelope<ServerEventData.QueueChanges>.self, from: Data(batch.utf8)).data.changes
                #expect(changes.count == 2 && changes.allSatisfy { $0.conversation.id == (p.data["conversation"] as? [String: Any])?["id"] as? String }, "\(p)")
            }
        } else if p.channel == "ch:presence" {
            #expect(p.kind == "presence" && p.audience == "a", "\(p)")
            #expect(["PRESENCE_UPDATED", "CONVERSATION_ESCALATED"].contains(p.event), "\(p)")
            if p.event == "PRESENCE_UPDATED", let agent = p.data["agent_id"] as? String {
                #expect(p.key == (supervisors[agent] ?? "-"), "\(p)")
            }
        } else if p.channel.hasPrefix("ch:user:") {
            #expect(["user", "profile"].contains(p.kind) && p.key == "-" && p.audience == "a", "\(p)")
            #expect((p.kind == "profile") == (p.event == "PROFILE_UPDATED"), "\(p)")
        } else {
            Issue.record("unexpected channel \(p)")
        }
        try Wire.decode(p.event, p.frame)
        // one conversation shape everywhere, without e-mail
        for case let view as [String: Any] in [p.data["conversation"]] {
            let fields = Set(view.keys)
            #expect(fields.isSubset(of: Wire.conversationFields), "\(p): \(fields.subtracting(Wire.conversationFields))")
            #expect(Wire.conversationRequired.isSubset(of: fields), "\(p): missing \(Wire.conversationRequired.subtracting(fields))")
            #expect((view["customer"] as? [String: Any])?["email"] == nil, "\(p)")
        }
    }

    @Test("every script runs with only the keys it is given, and every frame it publishes has a valid header and decodes")
    func golden() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let store = f.store
        let (ann, bob) = (ScriptFixture.agent("101"), ScriptFixture.agent("102", "Bob"))
        let supervisors = ["101": "900"]

        #expect(try await store.agentConnected(agentID: "101", node: "n1", name: "Ann", capacity: "2", categories: "", supervisorID: "900") == "online")
        #expect(try await store.agentConnected(agentID: "102", node: "n1", name: "Bob", capacity: "2", categories: "7,8", supervisorID: "-") == "online")

        let a = try await store.enqueue(name: "Cleo", email: "cleo@example.com", categoryID: "7", subject: "Billing", priority: "normal")
        #expect(a.created && a.position == 1)
        let again = try await store.enqueue(name: "Cleo", email: "cleo@example.com", categoryID: "7", subject: "Billing", priority: "normal",
                                            resume: a.conversationID)
        #expect(!again.created && again.conversationID == a.conversationID && again.position == 1)
        let b = try await store.enqueue(name: "Dan", email: "dan@example.com", categoryID: "8", subject: "Login", priority: "high")
        let cleo = ScriptFixture.customer(a.customerID), dan = ScriptFixture.customer(b.customerID)

        // b has the higher priority: the fairest pick
        let picked = try await store.pick(agentID: "101", conversationID: nil, mode: "pick", actorID: "101")
        #expect(picked.id == b.conversationID && picked.agent?.id == "101" && picked.status == "active")
        let assigned = try await store.pick(agentID: "101", conversationID: a.conversationID, mode: "assign", actorID: "900")
        #expect(assigned.id == a.conversationID && assigned.customer.email == "cleo@example.com")

        let id = a.conversationID
        _ = try await store.send(conversationID: id, sender: cleo, text: "hello\nthere \"quoted\"", clientMsgID: "m1", isInternal: false)
        _ = try await store.send(conversationID: id, sender: ann, text: "a note", clientMsgID: "n1", isInternal: true)
        #expect(try await store.send(conversationID: id, sender: cleo, text: "hello", clientMsgID: "m1", isInternal: false).duplicate)
        // without echo the ACK carries the message: the node's fields with the time send.lua
        // answers; a retry's is read back from the stream (MessageView(streamEntry:)): the same message
        let quiet = try await store.send(conversationID: id, sender: cleo, text: Self.awkwardText, clientMsgID: "q1", isInternal: false, origin: "n.1")
        let retry = try await store.send(conversationID: id, sender: cleo, text: "other", clientMsgID: "q1", isInternal: false, origin: "n.1")
        let first = try Wire.decoder.decode(MessageView.self, from: Data(try #require(quiet.messageJSON).utf8))
        let resent = try Wire.decoder.decode(MessageView.self, from: Data(try #require(retry.messageJSON).utf8))
        #expect(retry.duplicate && first == resent && first.id == quiet.messageID && first.text == Self.awkwardText && first.sentAt > 0)
        // an internal note with a file, without echo: the node's frame carries both, as the ACK does
        let file = AttachmentView(id: "f-1", name: "a \"b\"\n.pdf", size: 12, contentType: "application/pdf")
        let filed = store.sendCall(store.sendTemplate(conversationID: id), sender: ann, text: "see file", clientMsgID: "f1", isInternal: true,
                                   attachments: [file], origin: "n.2")
        let filedSent = try LiveStore.sent(try await store.runSend(filed), for: filed)
        let filedView = try Wire.decoder.decode(MessageView.self, from: Data(try #require(filedSent.messageJSON).utf8))
        #expect(filedView.attachments == [file] && filedView.isInternal && filedView.id == filedSent.messageID)
        try await store.publishTyping(conversationID: id, user: ann, typing: true)

        try await store.call("invite", conversationID: id, callID: "c1", caller: cleo, extra: ["audio", "45000"])
        try await store.call("accept", conversationID: id, callID: "c1", caller: ann)
        try await store.call("signal", conversationID: id, callID: "c1", caller: ann, extra: [#"{"type":"offer","sdp":"v=0"}"#])
        try await store.call("end", conversationID: id, callID: "c1", caller: cleo)
        try await store.call("invite", conversationID: id, callID: "c2", caller: ann, extra: ["video", "45000"])
        try await store.call("reject", conversationID: id, callID: "c2", caller: cleo)

        try await store.escalate(conversationID: id, actor: ann, note: "angry")
        try await store.call("invite", conversationID: id, callID: "c3", caller: cleo, extra: ["audio", "45000"])
        #expect(try await store.transfer(conversationID: id, actor: ann, agentID: "102", category: nil, note: "billing expert") == "active")
        #expect(try await store.transfer(conversationID: id, actor: bob, agentID: nil, category: "8", note: "wrong team") == "waiting")
        _ = try await store.pick(agentID: "102", conversationID: nil, mode: "pick", actorID: "102")

        try await store.setStatus(agentID: "101", status: "away")
        try await store.setStatus(agentID: "101", status: "online")
        try await store.call("invite", conversationID: id, callID: "c4", caller: bob, extra: ["audio", "45000"])
        try await store.call("accept", conversationID: id, callID: "c4", caller: cleo)
        try await store.close(conversationID: id, actor: bob, resolution: "solved")
        #expect(try await store.rate(conversationID: id, rating: 5, comment: "great") == .live(closeEpoch: "1"))
        _ = try await store.reopen(conversationID: id, actor: cleo)
        try await store.close(conversationID: id, actor: ScriptFixture.supervisor, resolution: "")

        // issue 11: a supervisor takes over its agent's chat (with a running call) and closes it;
        // a waiting customer leaves the queue
        let t = try await store.enqueue(name: "Fay", email: "fay@example.com", categoryID: "7", subject: "Help", priority: "normal")
        _ = try await store.pick(agentID: "101", conversationID: t.conversationID, mode: "pick", actorID: "101")
        try await store.call("invite", conversationID: t.conversationID, callID: "t1", caller: ann, extra: ["audio", "45000"])
        #expect(try await store.takeOver(conversationID: t.conversationID, actor: ScriptFixture.supervisor) == "101")
        try await store.close(conversationID: t.conversationID, actor: ScriptFixture.supervisor, resolution: "done")
        let g = try await store.enqueue(name: "Gus", email: "gus@example.com", categoryID: "8", subject: "Bye", priority: "normal")
        try await store.cancel(conversationID: g.conversationID, customer: ScriptFixture.customer(g.customerID))

        // an unanswered call past its deadline ends as missed
        let c = try await store.enqueue(name: "Eve", email: "eve@example.com", categoryID: "7", subject: "Other", priority: "low")
        _ = try await store.pick(agentID: "102", conversationID: c.conversationID, mode: "pick", actorID: "102")
        try await store.call("invite", conversationID: c.conversationID, callID: "c6", caller: bob, extra: ["audio", "0"])
        #expect(try await store.expireCalls() == 1)

        // presence: a heartbeat, then the node is gone: the sweep takes both agents offline and
        // requeues their chats (b's ringing call ends), then abandons them once their customers are gone too
        try await store.call("invite", conversationID: b.conversationID, callID: "c5", caller: dan, extra: ["audio", "45000"])
        #expect(try await store.heartbeat(node: "n1", nodeTTL: 60_000, agents: ["101", "102", "103"], waitingConversations: [a.conversationID]) == ["103"])
        try await store.agentDisconnected(agentID: "101", node: "n1")
        try await Task.sleep(for: .milliseconds(20))
        let (offline, requeued, _) = try await store.sweep(agentGrace: 0, nodeTTL: 1, customerGrace: 600_000)
        #expect(offline == 2 && requeued == 2)
        let (_, _, abandoned) = try await store.sweep(agentGrace: 0, nodeTTL: 600_000, customerGrace: 0)
        #expect(abandoned == 2)

        // an admin's change to a live agent: no categories (an empty list, not an object), then some;
        // an agent with no live state publishes nothing
        try await store.updateAgentProfile(agentID: "102", capacity: 2, categories: "", supervisorID: nil)
        try await store.updateAgentProfile(agentID: "102", capacity: nil, categories: "7,8", supervisorID: "")
        try await store.updateAgentProfile(agentID: "999", capacity: 1, categories: "7", supervisorID: nil)

        let published = try await f.published().map { try Published(channel: $0.channel, payload: $0.payload) }
        for p in published { try Self.check(p, supervisors: supervisors) }
        let profiles = published.filter { $0.event == "PROFILE_UPDATED" }
        #expect(profiles.map(\.channel) == ["ch:user:102", "ch:user:102"])
        #expect(profiles.map { $0.data["category_ids"] as? [String] } == [[], ["7", "8"]])
        #expect(profiles.map { $0.data["capacity"] as? Int } == [2, 2])
        // a chat message has one view whoever writes it: the frame Redis published (the node's
        // fields, the id and time send.lua appended), the ACK's message and the stream's entry
        let quietFrame = try #require(published.first { $0.kind == "msg" && $0.key.hasPrefix(quiet.messageID + "/") })
        let relayed = try Wire.decoder.decode(ServerEnvelope<ServerEventData.NewMessage>.self, from: Data(quietFrame.frame.utf8)).data.message
        #expect(relayed == first)
        #expect(try await store.messages(id, after: nil).first { $0.id == quiet.messageID } == first)
        let filedFrame = try #require(published.first { $0.kind == "msg" && $0.key.hasPrefix(filedSent.messageID + "/") })
        #expect(filedFrame.audience == "s")
        #expect(try Wire.decoder.decode(ServerEnvelope<ServerEventData.NewMessage>.self, from: Data(filedFrame.frame.utf8)).data.message == filedView)
        #expect(try await store.messages(id, after: nil).first { $0.id == filedSent.messageID } == filedView)
        let events = Set(published.map(\.event))
        let expected: Set<String> = ["NEW_MESSAGE", "CONVERSATION_ASSIGNED", "QUEUE_UPDATED", "PRESENCE_UPDATED", "CONVERSATION_CLOSED",
                                     "CONVERSATION_REQUEUED", "CONVERSATION_TRANSFERRED", "CONVERSATION_REOPENED", "CONVERSATION_ESCALATED",
                                     "TYPING", "CALL_INVITE", "CALL_ACCEPT", "CALL_REJECT", "CALL_END", "RTC_SIGNAL", "PROFILE_UPDATED"]
        #expect(events == expected, "missing \(expected.subtracting(events))")
        let kinds = Set(published.map(\.kind))
        #expect(kinds == ["msg", "assigned", "closed", "moved", "event", "queue", "presence", "user", "profile"])
        // the missed call of the expiry and the abandon are among them
        #expect(published.contains { $0.event == "CALL_END" && $0.data["reason"] as? String == "missed" && $0.data["call_id"] as? String == "c6" })
        #expect(published.contains { $0.event == "CONVERSATION_CLOSED" && $0.data["resolution"] as? String == "abandoned" })
        #expect(published.contains { $0.event == "CONVERSATION_TRANSFERRED" && $0.data["taken_over"] as? Bool == true })
        #expect(published.contains { $0.event == "CONVERSATION_CLOSED" && ($0.data["closed_by"] as? [String: Any])?["role"] as? String == "customer" })
    }

    @Test("the key guard itself fails a script that touches a key it was not given")
    func guardCatchesUndeclaredKeys() async throws {
        let f = try await ScriptFixture()
        defer { Task { await f.finish() } }
        let scripts = RedisScripts(sources: ["bad": "redis.call('SET', KEYS[1], 1)\nreturn redis.call('GET', KEYS[1] .. ':x')"],
                                   prelude: ScriptFixture.keyGuard, callPreamble: ScriptFixture.keyGuardCall)
        let error = await #expect(throws: RedisError.self) {
            try await scripts.run("bad", keys: [f.prefix + "k"], arguments: [], on: f.redis)
        }
        #expect(error?.message.contains("undeclared key") == true)
        _ = try await f.redis.send("DEL", f.prefix + "k")
    }
}

import HelpDeskCore
import Testing
@testable import HelpDeskServer

/// Routing decisions of one conversation, without sockets or Redis: frames are plain strings.
@Suite("Conversation fan-out")
struct ConversationFanoutTests {
    typealias Fanout = ConversationFanout<String>

    static let customer = (socket: 1, user: "c1")
    static let agent = (socket: 2, user: "7")
    static let supervisor = (socket: 3, user: "9")

    func message(_ id: String, isInternal: Bool = false) -> Fanout.Routed {
        .init(kind: .message, audience: isInternal ? .staff : .everyone, key: id, frame: "m" + id)
    }

    func sent(_ actions: [Fanout.Action]) -> [String] {
        actions.compactMap { if case .send(let socket, let frame) = $0 { return "\(socket):\(frame)" } else { return nil } }
    }

    func dropped(_ actions: [Fanout.Action]) -> [Int] {
        actions.compactMap { if case .dropped(let socket) = $0 { return socket } else { return nil } }
    }

    func live(_ members: [(Int, String, Role)]) -> Fanout {
        var fanout = Fanout()
        for (socket, user, role) in members {
            fanout.join(socket: socket, userID: user, role: role, followsMessages: true, after: nil)
            _ = fanout.goLive(socket: socket, historyEnd: nil)
        }
        return fanout
    }

    @Test("live frames racing a JOIN are held back, then delivered once, after the history")
    func joinRacesLiveFrames() {
        var fanout = Fanout()
        fanout.join(socket: 1, userID: "c1", role: .customer, followsMessages: true, after: StreamID("5-0"))
        // While the history (6-0 and 7-0) is read, 7-0 and 8-0 are published.
        #expect(sent(fanout.deliver(message("7-0"))).isEmpty)
        #expect(sent(fanout.deliver(message("8-0"))).isEmpty)
        let actions = fanout.goLive(socket: 1, historyEnd: StreamID("7-0"))
        #expect(sent(actions) == ["1:m8-0"])
        // Live from now on; a repeat of an old id (Redis replays after a resubscribe) is dropped.
        #expect(sent(fanout.deliver(message("8-0"))).isEmpty)
        #expect(sent(fanout.deliver(message("9-0"))) == ["1:m9-0"])
    }

    @Test("resume: a JOIN with last_message_id skips what the client has")
    func resume() {
        var fanout = Fanout()
        fanout.join(socket: 1, userID: "c1", role: .customer, followsMessages: true, after: StreamID("10-3"))
        #expect(sent(fanout.deliver(message("10-2"))).isEmpty)
        #expect(sent(fanout.deliver(message("10-4"))).isEmpty)
        // An empty history page: the cursor stays at the client's last id.
        #expect(sent(fanout.goLive(socket: 1, historyEnd: nil)) == ["1:m10-4"])
        #expect(sent(fanout.deliver(message("10-3"))).isEmpty)
    }

    @Test("no echo: the socket that sent a message (its header's origin) does not get it again, its other sockets do")
    func noEchoToTheSender() {
        var fanout = live([(1, "c1", .customer), (4, "c1", .customer), (2, "7", .agent)])
        var own = message("5-0")
        own.sender = 1
        #expect(sent(fanout.deliver(own)).sorted() == ["2:m5-0", "4:m5-0"])
        // It counts as given to the sender: a replay of it (after a resubscribe) is dropped there
        // too, and the next message reaches everyone.
        #expect(sent(fanout.deliver(message("5-0"))).isEmpty)
        #expect(sent(fanout.deliver(message("6-0"))).sorted() == ["1:m6-0", "2:m6-0", "4:m6-0"])
        // Held back while the sender's JOIN reads its history: skipped when it goes live.
        fanout.join(socket: 1, userID: "c1", role: .customer, followsMessages: true, after: StreamID("6-0"))
        var next = message("7-0")
        next.sender = 1
        #expect(sent(fanout.deliver(next)).sorted() == ["2:m7-0", "4:m7-0"])
        #expect(sent(fanout.goLive(socket: 1, historyEnd: nil)).isEmpty)
        #expect(sent(fanout.deliver(message("8-0"))).sorted() == ["1:m8-0", "2:m8-0", "4:m8-0"])
    }

    @Test("no echo, the sender alone on its node: nothing is sent and the frame is never made, only its cursor moves; with anyone else (or a JOIN under way) the frame is made once")
    func senderAlone() {
        var made = 0
        /// Delivers message `id` sent by `socket` without echo; `made` counts the frames made.
        func own(_ fanout: inout Fanout, _ id: String, from socket: Int) -> [String] {
            let routing = Fanout.Routing(kind: .message, audience: .everyone, key: id, sender: socket)
            return sent(fanout.deliver(routing) { made += 1; return "m" + id })
        }
        var fanout = live([(1, "c1", .customer)])
        #expect(own(&fanout, "5-0", from: 1).isEmpty && made == 0)
        #expect(sent(fanout.deliver(message("5-0"))).isEmpty, "the cursor moved past 5-0")
        #expect(sent(fanout.deliver(message("6-0"))) == ["1:m6-0"])
        #expect(own(&fanout, "5-0", from: 1).isEmpty && made == 0)
        #expect(sent(fanout.deliver(message("6-0"))).isEmpty, "an older id does not move the cursor back")
        #expect(sent(fanout.deliver(message("7-0"))) == ["1:m7-0"])
        #expect(own(&fanout, "8-0", from: 2) == ["1:m8-0"] && made == 1, "not a member: the member gets it")
        fanout.join(socket: 2, userID: "7", role: .agent, followsMessages: true, after: nil)
        _ = fanout.goLive(socket: 2, historyEnd: nil)
        #expect(own(&fanout, "9-0", from: 1) == ["2:m9-0"] && made == 2, "someone else follows: made once, for it")
        var joining = Fanout()
        joining.join(socket: 1, userID: "c1", role: .customer, followsMessages: true, after: nil)
        #expect(own(&joining, "1-0", from: 1).isEmpty && made == 3, "its JOIN holds frames back: made and held")
        #expect(sent(joining.goLive(socket: 1, historyEnd: nil)).isEmpty, "and skipped when it goes live")
    }

    @Test("pub/sub lost: live members hold every frame until their client re-joins; the re-join's history fills the gap and nothing jumps it")
    func holdAfterLoss() {
        var fanout = live([(1, "c1", .customer), (2, "7", .agent)])
        fanout.join(socket: 3, userID: "c1", role: .customer, followsMessages: false, after: nil)  // follows events only
        _ = fanout.goLive(socket: 3, historyEnd: nil)
        #expect(sent(fanout.deliver(message("5-0"))).sorted() == ["1:m5-0", "2:m5-0"])
        fanout.holdLive()
        // 6-0 was published while the connection was down (lost); 7-0 comes after the reconnect.
        let assigned = Fanout.Routed(kind: .assigned, audience: .everyone, key: "7", frame: "assigned")
        #expect(sent(fanout.deliver(message("7-0"))).isEmpty, "no cursor jumps the gap")
        #expect(sent(fanout.deliver(assigned)) == ["3:assigned"], "an events-only member still gets events")
        let typing = Fanout.Routed(kind: .event, audience: .everyone, key: nil, frame: "typing")
        #expect(sent(fanout.deliver(typing)) == ["3:typing"])
        // RESYNC: the client re-joins from 5-0, the last it has; its history brings 6-0 and 7-0.
        // The event held meanwhile is not in any history: it is delivered, the held 7-0 is not.
        fanout.join(socket: 1, userID: "c1", role: .customer, followsMessages: true, after: StreamID("5-0"))
        #expect(sent(fanout.deliver(message("8-0"))).isEmpty, "published during the history read")
        #expect(sent(fanout.goLive(socket: 1, historyEnd: StreamID("7-0"))) == ["1:assigned", "1:typing", "1:m8-0"])
        #expect(sent(fanout.deliver(message("9-0"))) == ["1:m9-0"], "socket 2 still holds: it has not re-joined")
    }

    @Test("internal notes and staff-only frames never reach the customer")
    func staffOnlyAudience() {
        var fanout = live([(1, "c1", .customer), (2, "7", .agent), (3, "9", .supervisor)])
        #expect(Set(sent(fanout.deliver(message("1-0", isInternal: true)))) == ["2:m1-0", "3:m1-0"])
        let note = Fanout.Routed(kind: .event, audience: .staff, key: nil, frame: "note")
        #expect(Set(sent(fanout.deliver(note))) == ["2:note", "3:note"])
        #expect(Set(sent(fanout.deliver(message("2-0")))) == ["1:m2-0", "2:m2-0", "3:m2-0"])
    }

    @Test("a frame for one user goes to that user's sockets only")
    func oneUserAudience() {
        var fanout = live([(1, "c1", .customer), (2, "7", .agent), (4, "7", .agent)])
        let signal = Fanout.Routed(kind: .event, audience: .user, key: "7", frame: "sig")
        #expect(Set(sent(fanout.deliver(signal))) == ["2:sig", "4:sig"])
    }

    @Test("a socket that only follows events gets no messages until its JOIN")
    func followOnlyGetsNoMessages() {
        var fanout = Fanout()
        fanout.join(socket: 1, userID: "c1", role: .customer, followsMessages: false, after: nil)
        _ = fanout.goLive(socket: 1, historyEnd: nil)
        #expect(sent(fanout.deliver(message("1-0"))).isEmpty)
        let assigned = Fanout.Routed(kind: .assigned, audience: .everyone, key: "7", frame: "assigned")
        let actions = fanout.deliver(assigned)
        #expect(sent(actions) == ["1:assigned"])
        #expect(actions.contains { if case .leftQueue = $0 { true } else { false } })
    }

    @Test("a transfer drops the former agent after telling it; the new agent and the customer stay")
    func transferDropsFormerAgent() {
        var fanout = live([(1, "c1", .customer), (2, "7", .agent), (3, "9", .supervisor), (5, "8", .agent)])
        let moved = Fanout.Routed(kind: .moved, audience: .everyone, key: "8", frame: "transferred")
        let actions = fanout.deliver(moved)
        #expect(Set(sent(actions)) == ["1:transferred", "2:transferred", "3:transferred", "5:transferred"])
        #expect(dropped(actions) == [2])
        #expect(!fanout.follows(socket: 2) && fanout.follows(socket: 5) && fanout.follows(socket: 3))
        #expect(sent(fanout.deliver(message("3-0"))).count == 3)
    }

    @Test("a member held past pendingLimit stops following and is reported as overflowed (its node sends it RESYNC)")
    func overflow() {
        var fanout = live([(1, "c1", .customer), (2, "7", .agent)])
        fanout.holdLive()
        var overflowed: [Int] = []
        for n in 1...(Fanout.pendingLimit + 1) {
            for case .overflowed(let socket) in fanout.deliver(message("\(n)-0")) { overflowed.append(socket) }
        }
        #expect(overflowed.sorted() == [1, 2])
        #expect(fanout.isEmpty)
    }

    @Test("a requeue drops every agent and re-checks the customers' queue positions")
    func requeueDropsAgents() {
        var fanout = live([(1, "c1", .customer), (2, "7", .agent)])
        let moved = Fanout.Routed(kind: .moved, audience: .everyone, key: nil, frame: "requeued")
        let actions = fanout.deliver(moved)
        #expect(dropped(actions) == [2])
        #expect(actions.contains { if case .maybeQueued(let sockets) = $0 { sockets == [1] } else { false } })
    }

    @Test("leaving: the last member empties the conversation")
    func leave() {
        var fanout = live([(1, "c1", .customer), (2, "7", .agent)])
        let first = fanout.leave(socket: 1), last = fanout.leave(socket: 2)
        #expect(!first && last)
        #expect(fanout.isEmpty)
    }

    @Test("subscription counts: subscribe on the first holder, unsubscribe after the last")
    func subscriptionCounts() {
        var counts = SubscriptionCounts()
        let steps = [counts.retain("a"), counts.retain("a"), counts.release("a"), counts.release("a"), counts.release("a")]
        #expect(steps == [true, false, false, true, false])
        #expect(counts.channels == 0)
    }
}

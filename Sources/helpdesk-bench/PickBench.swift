import ArgumentParser
import HelpDeskProtocol
import Foundation
import NIOCore
import NIOPosix

/// Racing picks: M waiting customers, A agents spread over the nodes, each agent sending PICK
/// (no conversation id: the fairest) again as soon as its previous one is answered, until the
/// queue is empty. Reports picks per second, every frame the agents got, and double assignments
/// checked twice: across the ACKs, and against the server's own record afterwards.
struct Pick: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Picks per second of agents racing over one queue.")

    @Option(name: .customLong("node"), help: "Base URL of a node (repeat; agents are spread over them).") var nodes: [String] = []
    @Option(help: "An admin account, to create the bench agents.") var adminEmail = "admin@example.com"
    @Option var adminPassword: String
    @Option(help: "Waiting customers.") var customers = 2_000
    @Option(help: "Racing agents.") var agents = 40
    @Option(help: "Each agent's capacity (the server allows 1…50).") var capacity = 50
    @Option(help: "Event-loop threads of the load generator.") var threads = 1
    @Option(help: "What the agents' sockets ask for: batched (QUEUE_CHANGES, as the pages do) or single (a QUEUE_UPDATED per change).")
    var queueChanges = QueueChangesFrame.batched
    @Option(name: .customLong("node-pid"), help: "A node process whose CPU to report (repeat).") var nodePids: [Int32] = []
    @Option(help: "The Redis server process whose CPU to report.") var redisPid: Int32?

    func validate() throws {
        guard [QueueChangesFrame.batched, QueueChangesFrame.single].contains(queueChanges) else {
            throw ValidationError("--queue-changes is batched or single, not \(queueChanges)")
        }
    }

    func run() async throws {
        lineBufferedOutput()
        let nodeURLs = nodes.isEmpty ? ["http://127.0.0.1:8081", "http://127.0.0.1:8082"] : nodes
        let addresses = try nodeURLs.map(NodeAddress.init)
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        let admin = try await HTTP.login(nodeURLs[0], adminEmail, adminPassword)
        print("pick: creating \(agents) agents and \(customers) waiting customers over \(nodeURLs.count) nodes…")
        let accounts = try await HTTP.concurrently(agents, width: 4) { [capacity] i in
            try await HTTP.agent(nodeURLs[i % nodeURLs.count], admin: admin, email: "pick-\(run)-\(i)@example.com",
                                 name: "Picker \(i)", capacity: capacity)
        }
        let chats = try await HTTP.concurrently(customers, width: 16) { i in
            try await HTTP.startChat(nodeURLs[i % nodeURLs.count], name: "Waiting \(i)", email: "pick-\(run)-c\(i)@example.com").id
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var pickers: [Picker] = []
        for (i, account) in accounts.enumerated() {
            let address = addresses[i % addresses.count]
            let picker = Picker(agentID: account.id)
            let socket = try await BenchSocket.connect(on: group.next(), host: address.host, port: address.port,
                                                       path: "/ws?\(QueueChangesFrame.parameter)=\(queueChanges)", token: account.token,
                                                       configure: { socket in
                                                           socket.onFrame = { kind, bytes, _ in picker.frame(kind, bytes) }
                                                           socket.onClose = { picker.closed() }
                                                       }).get()
            try await socket.hello.get()
            picker.socket = socket
            pickers.append(picker)
        }
        // Let the connects' presence updates settle, so they are not counted as pick traffic.
        try await Task.sleep(for: .seconds(1))
        // this process too: the load generator shares the cores with the nodes and Redis
        let generator = getpid()
        let pids = nodePids + (redisPid.map { [$0] } ?? []) + [generator]
        let before = CPUSample.take(pids)
        let started = NIODeadline.now()
        let done = pickers.map { picker in picker.socket!.loop.flatSubmit { picker.start() } }
        let finishedAt = try await EventLoopFuture.whenAllSucceed(done, on: group.next()).get()
        let after = CPUSample.take(pids)
        let elapsed = Double((finishedAt.max() ?? started).uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        // Frames still under way after the last answer count too.
        try await Task.sleep(for: .milliseconds(500))

        var winners: [String: [String]] = [:]
        var frames = 0, errors = 0, retries = 0, closed = 0
        for picker in pickers {
            let result = try await picker.socket!.loop.submit { (picker.picked, picker.frames, picker.errors, picker.retries, picker.closedEarly) }.get()
            for id in result.0 { winners[id, default: []].append(picker.agentID) }
            frames += result.1; errors += result.2; retries += result.3
            if result.4 { closed += 1 }
        }
        let picks = winners.values.reduce(0) { $0 + $1.count }
        let doubleInAcks = winners.values.filter { $0.count > 1 }.count
        // The server's record: each conversation active, with the one agent whose ACK said so.
        let recorded = try await HTTP.concurrently(chats.count, width: 16) { [nodeURLs] i in
            let view = try await HTTP.json("GET", nodeURLs[0] + "/api/v1/conversations/\(chats[i])", token: admin)
            let agent = (view["agent"] as? [String: Any])?["id"].map { "\($0)" } ?? (view["agent_id"].map { "\($0)" } ?? "")
            return (status: view["status"] as? String ?? "?", agent: agent)
        }
        var mismatched = 0, stillWaiting = 0
        for (id, record) in zip(chats, recorded) {
            if record.status == "waiting" { stillWaiting += 1 }
            if let agents = winners[id], agents.count == 1 {
                if record.status != "active" || record.agent != agents[0] { mismatched += 1 }
            } else if winners[id] == nil && record.status != "waiting" {
                mismatched += 1  // assigned, yet no agent was told
            }
        }
        let perSecond = Double(picks) / elapsed
        print("pick: \(picks) picks in \(fmt(elapsed, 2)) s: \(fmt(perSecond, 0)) picks/s; \(stillWaiting) still waiting")
        print("pick: double assignments: \(doubleInAcks) in ACKs, \(mismatched) against the server's record; errors \(errors) (retried \(retries)); sockets the server closed during the race: \(closed)")
        print("pick: frames the agents received meanwhile: \(frames) (\(fmt(Double(frames) / Double(Swift.max(picks, 1)), 1)) per pick)")
        var cpuLine = "pick: CPU s:"
        for pid in nodePids { cpuLine += " node \(pid) \(fmt(before.used(until: after, pid), 2))," }
        if let redisPid { cpuLine += " redis \(fmt(before.used(until: after, redisPid), 2))," }
        cpuLine += " load generator \(fmt(before.used(until: after, generator), 2))"
        print(cpuLine)
        print("summary pick agents=\(agents) customers=\(customers) queue_changes=\(queueChanges) picks=\(picks) picks_per_s=\(fmt(perSecond, 0)) "
              + "double_acks=\(doubleInAcks) double_server=\(mismatched) waiting=\(stillWaiting) frames=\(frames) closed=\(closed)")
        for picker in pickers { _ = try? await picker.socket?.close().get() }
        try await group.shutdownGracefully()
        if doubleInAcks > 0 || mismatched > 0 || closed > 0 { throw ExitCode(1) }
    }
}

/// One racing agent: a PICK in flight at a time, the next sent the moment the answer arrives.
///
/// `@unchecked Sendable`: used only on its socket's event loop (frame callbacks run there; the
/// bench reaches it through `loop.submit`), after `socket` is set before the race begins.
final class Picker: @unchecked Sendable {
    let agentID: String
    var socket: BenchSocket?
    private(set) var picked: [String] = []
    private var framesAtStart = 0
    /// Frames of every kind this agent's socket received since the race began.
    var frames: Int { (socket?.framesReceived ?? 0) - framesAtStart }
    private(set) var errors = 0
    private(set) var retries = 0
    private var counting = false
    private var finished: EventLoopPromise<NIODeadline>?

    init(agentID: String) { self.agentID = agentID }

    /// The server closed the socket before the race ended (e.g. past its error budget): this
    /// agent is done, rather than waiting for an answer that will not come.
    private(set) var closedEarly = false
    private var socketGone = false

    func closed() {
        socketGone = true
        if finished != nil { finish(closed: true) }
    }

    func start() -> EventLoopFuture<NIODeadline> {
        let promise = socket!.loop.makePromise(of: NIODeadline.self)
        finished = promise
        if socketGone {
            finish(closed: true)
        } else {
            counting = true
            framesAtStart = socket!.framesReceived
            socket!.send(#"{"event":"PICK","data":{},"ref":"p"}"#)
        }
        return promise.futureResult
    }

    /// This agent's race is over: an empty queue, a full agent, too many errors, or a closed socket.
    private func finish(closed: Bool) {
        if closed { closedEarly = true }
        counting = false
        finished?.succeed(.now())
        finished = nil
    }

    /// The data of a PICK's ACK; decoded only for ACKs (one per pick), never for the other frames.
    private struct Ack: Decodable {
        struct Body: Decodable {
            struct Conversation: Decodable { let id: String }
            let conversation: Conversation
        }
        let data: Body
    }

    func frame(_ kind: FrameKind, _ bytes: UnsafeRawBufferPointer) {
        guard counting else { return }
        switch kind {
        case .ack:
            if let ack = try? JSONDecoder().decode(Ack.self, from: Data(bytes)) { picked.append(ack.data.conversation.id) }
            socket!.send(#"{"event":"PICK","data":{},"ref":"p"}"#)
        case .error:
            let code = FrameScan.errorCode(in: bytes)
            // Today's server answers an empty queue with not_found; queue_empty is the script's word.
            if code == "queue_empty" || code == "not_found" || code == "at_capacity" || errors >= 1_000 {
                finish(closed: false)
            } else {
                errors += 1
                retries += 1
                socket!.send(#"{"event":"PICK","data":{},"ref":"p"}"#)
            }
        default:
            break
        }
    }
}

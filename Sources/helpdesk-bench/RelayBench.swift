import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix

/// Chat relay across nodes: N conversations, the customer's socket on one node, the agent's on
/// another. Open loop (`--rate` per conversation, sends spread evenly over the interval) or
/// closed loop (`--max`: each conversation keeps `--in-flight` messages under way, which finds
/// the highest delivered rate). Latency is customer write → agent read, for messages sent in
/// the measured window; CPU of the given processes is read from /proc at the window's ends.
struct Relay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delivered messages per second, latency and CPU per message of the chat relay.")

    @Option(help: "Base URL of the node customers use.") var customerNode = "http://127.0.0.1:8081"
    @Option(help: "Base URL of the node agents use.") var agentNode = "http://127.0.0.1:8082"
    @Option(help: "An admin account, to create the bench agents.") var adminEmail = "admin@example.com"
    @Option var adminPassword: String
    @Option(help: "Concurrent conversations.") var conversations = 50
    @Option(help: "Messages per second sent in each conversation (open loop).") var rate = 10.0
    @Flag(help: "Closed loop: send as fast as messages are delivered, to find the maximum rate.") var max = false
    @Option(help: "Messages under way per conversation with --max.") var inFlight = 4
    @Option(help: "Seconds of the measured window.") var duration = 10.0
    @Option(help: "Seconds of sending before the window opens.") var warmup = 2.0
    @Flag(help: "Send every conversation's message at the same instant (how the old bench paced), instead of spreading them.") var aligned = false
    @Option(help: "Event-loop threads of the load generator.") var threads = 1
    @Flag(inversion: .prefixedNo, help: "Ask for the sender's own copy of each message as NEW_MESSAGE (the pages send echo: false and take it from the ACK).")
    var echo = false
    @Option(name: .customLong("node-pid"), help: "A node process whose CPU to report (repeat).") var nodePids: [Int32] = []
    @Option(help: "The Redis server process whose CPU to report.") var redisPid: Int32?
    @Option(help: "A label for the summary line.") var label = ""

    func run() async throws {
        lineBufferedOutput()
        let customerAddress = try NodeAddress(customerNode), agentAddress = try NodeAddress(agentNode)
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        let admin = try await HTTP.login(agentNode, adminEmail, adminPassword)
        print("relay: setting up \(conversations) conversations (customer on \(customerNode), agent on \(agentNode))…")
        let accounts = try await HTTP.concurrently(conversations, width: 8) { [agentNode, customerNode] i in
            let email = "bench-\(run)-\(i)@example.com"
            let agent = try await HTTP.agent(agentNode, admin: admin, email: email, name: "Bench \(i)", capacity: 1)
            let chat = try await HTTP.startChat(customerNode, name: "Bench customer \(i)", email: "c-" + email)
            return (agent: agent.token, chat: chat)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let sampler = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loops = Array(group.makeIterator())
        var pairs: [RelayPair] = []
        for (i, account) in accounts.enumerated() {
            // Both sockets of a conversation on one loop: a delivery can trigger the next send
            // (closed loop) without a thread hop.
            let loop = loops[i % loops.count]
            let pair = RelayPair(loop: loop, conversationID: account.chat.id, echo: echo)
            let agent = try await BenchSocket.connect(on: loop, host: agentAddress.host, port: agentAddress.port, token: account.agent,
                                                      configure: { socket in socket.onFrame = { pair.agentFrame($0, $1, $2) } }).get()
            let customer = try await BenchSocket.connect(on: loop, host: customerAddress.host, port: customerAddress.port,
                                                         token: account.chat.token,
                                                         configure: { socket in socket.onFrame = { pair.customerFrame($0, $1, $2) } }).get()
            try await agent.hello.get()
            try await customer.hello.get()
            pair.agent = agent
            pair.customer = customer
            let id = account.chat.id
            agent.send(#"{"event":"PICK","data":{"conversation_id":"\#(id)"}}"#)
            agent.send(#"{"event":"JOIN_CONVERSATION","data":{"conversation_id":"\#(id)"}}"#)
            customer.send(#"{"event":"JOIN_CONVERSATION","data":{"conversation_id":"\#(id)"}}"#)
            try await agent.expectAcks(2).get()
            try await customer.expectAcks(1).get()
            pairs.append(pair)
        }

        let now = NIODeadline.now().uptimeNanoseconds
        let start = now + 200_000_000
        let windowStart = start + UInt64(warmup * 1e9)
        let windowEnd = windowStart + UInt64(duration * 1e9)
        let interval = UInt64(1e9 / rate)
        let mode = max ? "max, \(inFlight) in flight per conversation" : "\(rate) msg/s per conversation, \(aligned ? "aligned" : "spread")"
        print("relay: \(mode); warmup \(warmup) s, window \(duration) s…")
        for (i, pair) in pairs.enumerated() {
            let plan = RelayPlan(start: start, windowStart: windowStart, windowEnd: windowEnd,
                                 interval: interval, phase: aligned ? 0 : interval * UInt64(i) / UInt64(pairs.count),
                                 inFlight: max ? inFlight : 0)
            pair.loop.execute { pair.begin(plan) }
        }
        let pids = nodePids + (redisPid.map { [$0] } ?? []) + [getpid()]
        let sampleLoop = sampler.next()
        let before = try await sampleLoop.scheduleTask(deadline: .uptimeNanoseconds(windowStart)) { CPUSample.take(pids) }.futureResult.get()
        let after = try await sampleLoop.scheduleTask(deadline: .uptimeNanoseconds(windowEnd)) { CPUSample.take(pids) }.futureResult.get()
        // Let what is under way arrive before counting losses.
        try await Task.sleep(for: .seconds(2))

        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var totals = RelayCounts()
        for pair in pairs {
            let (counts, pairHistogram) = try await pair.loop.submit { (pair.counts, pair.histogram) }.get()
            totals.add(counts)
            histogram.add(pairHistogram)
        }
        let window = Double(windowEnd - windowStart) / 1e9
        let delivered = Double(totals.deliveredInWindow) / window
        let nodeCPU = nodePids.map { before.used(until: after, $0) }
        let nodeSum = nodeCPU.reduce(0, +)
        let redisCPU = redisPid.map { before.used(until: after, $0) }
        let benchCPU = before.used(until: after, getpid())
        func ms(_ value: UInt64) -> String { String(format: "%.2f", Double(value) / 1000) }
        let lost = totals.sentTotal - totals.deliveredTotal
        print("sent \(totals.sentInWindow) and delivered \(totals.deliveredInWindow) in the \(window) s window: \(Int(delivered)) msg/s delivered")
        print("lost: \(lost) of \(totals.sentTotal) sent in all; server errors: \(totals.errors)")
        print("latency ms (messages sent in the window): p50 \(ms(histogram.valueAtPercentile(50))), p90 \(ms(histogram.valueAtPercentile(90))), "
              + "p99 \(ms(histogram.valueAtPercentile(99))), max \(ms(histogram.max))")
        var cpuLine = "CPU s in the window:"
        for (pid, seconds) in zip(nodePids, nodeCPU) { cpuLine += String(format: " node %d %.2f,", pid, seconds) }
        if let redisCPU { cpuLine += String(format: " redis %.2f,", redisCPU) }
        cpuLine += String(format: " bench %.2f", benchCPU)
        print(cpuLine)
        let perCore = nodeSum > 0 ? Double(totals.deliveredInWindow) / nodeSum : .nan
        let redisMicros = redisCPU.map { $0 * 1e6 / Double(totals.deliveredInWindow) } ?? .nan
        if !nodePids.isEmpty { print(String(format: "delivered messages per node-core-second: %.0f (node CPU µs per message: %.1f)", perCore, 1e6 / perCore)) }
        if redisCPU != nil { print(String(format: "Redis CPU µs per delivered message: %.1f", redisMicros)) }
        print("summary relay label=\(label.isEmpty ? "-" : label) mode=\(max ? "max" : "rate") echo=\(echo) conversations=\(conversations) "
              + "delivered_per_s=\(fmt(delivered, 0)) p50_ms=\(ms(histogram.valueAtPercentile(50))) p90_ms=\(ms(histogram.valueAtPercentile(90))) "
              + "p99_ms=\(ms(histogram.valueAtPercentile(99))) max_ms=\(ms(histogram.max)) lost=\(lost) node_cpu_s=\(fmt(nodeSum, 2)) "
              + "redis_cpu_s=\(fmt(redisCPU ?? .nan, 2)) bench_cpu_s=\(fmt(benchCPU, 2)) msgs_per_node_core_s=\(fmt(perCore, 0)) "
              + "redis_us_per_msg=\(fmt(redisMicros, 1))")
        for pair in pairs {
            _ = try? await pair.customer?.close().get()
            _ = try? await pair.agent?.close().get()
        }
        try await group.shutdownGracefully()
        try await sampler.shutdownGracefully()
        if lost > 0 { throw ExitCode(1) }
    }
}

/// When a conversation sends: open loop every `interval` from `start + phase`, or closed loop
/// with `inFlight` messages under way; until `windowEnd`.
struct RelayPlan: Sendable {
    var start: UInt64
    var windowStart: UInt64
    var windowEnd: UInt64
    var interval: UInt64
    var phase: UInt64
    var inFlight: Int
}

/// Counters of one conversation (or the sum of all).
struct RelayCounts: Sendable {
    var sentTotal = 0
    var deliveredTotal = 0
    var sentInWindow = 0
    /// Messages that reached the agent while the window was open (the delivered rate).
    var deliveredInWindow = 0
    var errors = 0

    mutating func add(_ other: RelayCounts) {
        sentTotal += other.sentTotal; deliveredTotal += other.deliveredTotal
        sentInWindow += other.sentInWindow; deliveredInWindow += other.deliveredInWindow; errors += other.errors
    }
}

/// One conversation's sockets, its send schedule and its measurements.
///
/// `@unchecked Sendable`: it is used only on `loop`: its sockets' callbacks run there, and the
/// bench reaches it only through `loop.execute` / `loop.submit`.
final class RelayPair: @unchecked Sendable {
    let loop: EventLoop
    let conversationID: String
    var customer: BenchSocket?
    var agent: BenchSocket?
    private(set) var counts = RelayCounts()
    private(set) var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    private var plan = RelayPlan(start: 0, windowStart: 0, windowEnd: 0, interval: 0, phase: 0, inFlight: 0)
    private var sequence = 0
    private var underWay = 0
    /// The frame up to the send time, prebuilt: a send appends digits and writes.
    private let head: [UInt8]
    private var scratch: [UInt8] = []

    init(loop: EventLoop, conversationID: String, echo: Bool) {
        self.loop = loop
        self.conversationID = conversationID
        self.head = Array(#"{"event":"SEND_MESSAGE","data":{"conversation_id":"\#(conversationID)","echo":\#(echo),"client_msg_id":"b"#.utf8)
        scratch.reserveCapacity(head.count + 64)
    }

    func begin(_ plan: RelayPlan) {
        self.plan = plan
        if plan.inFlight > 0 {
            loop.scheduleTask(deadline: .uptimeNanoseconds(plan.start)) {
                for _ in 0..<plan.inFlight { self.sendOne() }
            }
        } else {
            scheduleNext()
        }
    }

    /// Open loop: the n-th message is due at start + phase + n × interval; a late loop sends at
    /// once, and the ones after it keep their schedule. The latency counts from the write (the
    /// time is taken right before it), so a send the generator itself made late on the shared
    /// box is not counted as the server's.
    private func scheduleNext() {
        let due = plan.start + plan.phase + UInt64(sequence) * plan.interval
        guard due < plan.windowEnd else { return }
        loop.scheduleTask(deadline: .uptimeNanoseconds(due)) {
            self.sendOne()
            self.scheduleNext()
        }
    }

    /// Builds and writes one SEND_MESSAGE whose text is the monotonic time (ns) taken right
    /// before the write.
    private func sendOne() {
        guard let customer else { return }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: head)
        appendDigits(UInt64(sequence))
        scratch.append(contentsOf: #"","text":""#.utf8)
        let sentAt = NIODeadline.now().uptimeNanoseconds
        appendDigits(sentAt)
        scratch.append(contentsOf: #""}}"#.utf8)
        scratch.withUnsafeBytes { customer.sendOnLoop($0) }
        sequence += 1
        underWay += 1
        counts.sentTotal += 1
        if sentAt >= plan.windowStart && sentAt < plan.windowEnd { counts.sentInWindow += 1 }
    }

    private func appendDigits(_ value: UInt64) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(48 + rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            for i in stride(from: count - 1, through: 0, by: -1) { scratch.append(buffer[i]) }
        }
    }

    func agentFrame(_ kind: FrameKind, _ bytes: UnsafeRawBufferPointer, _ receivedAt: UInt64) {
        switch kind {
        case .newMessage:
            guard let sentAt = FrameScan.textNumber(in: bytes), sentAt <= receivedAt else { return }
            counts.deliveredTotal += 1
            underWay -= 1
            if receivedAt >= plan.windowStart && receivedAt < plan.windowEnd { counts.deliveredInWindow += 1 }
            if sentAt >= plan.windowStart && sentAt < plan.windowEnd {
                _ = histogram.record((receivedAt - sentAt) / 1000)
            }
            if plan.inFlight > 0 && NIODeadline.now().uptimeNanoseconds < plan.windowEnd { sendOne() }
        case .error:
            counts.errors += 1
        default:
            break
        }
    }

    func customerFrame(_ kind: FrameKind, _ bytes: UnsafeRawBufferPointer, _ receivedAt: UInt64) {
        if kind == .error { counts.errors += 1 }
    }
}

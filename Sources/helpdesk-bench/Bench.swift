import ArgumentParser
import Foundation
import Histogram
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `helpdesk-bench`: load generators that measure a running deployment from the outside.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "helpdesk-bench",
        abstract: "Load generators for HelpDesk nodes.",
        subcommands: [Relay.self])
}

/// Chat relay across nodes: N conversations with the customer on one node and the agent on
/// another; customers send at a set rate; the agents' sockets time each message end to end.
struct Relay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Messages per second and end-to-end latency of the chat relay.")

    @Option(help: "Base URL of the node customers use.") var customerNode = "http://127.0.0.1:8081"
    @Option(help: "Base URL of the node agents use.") var agentNode = "http://127.0.0.1:8082"
    @Option(help: "An admin account, to create the bench agents.") var adminEmail = "admin@example.com"
    @Option var adminPassword: String
    @Option(help: "Concurrent conversations.") var conversations = 50
    @Option(help: "Messages per second sent in each conversation.") var rate = 10.0
    @Option(help: "Seconds of sending.") var duration = 10.0

    func run() async throws {
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        let admin = try await HTTP.login(agentNode, adminEmail, adminPassword)
        print("setting up \(conversations) conversations (customer on \(customerNode), agent on \(agentNode))…")
        var pairs: [(customer: BenchSocket, agent: BenchSocket, id: String)] = []
        for i in 0..<conversations {
            let email = "bench-\(run)-\(i)@example.com"
            _ = try await HTTP.json("POST", agentNode + "/api/v1/users", token: admin,
                                    body: ["email": email, "name": "Bench \(i)", "password": "bench-password", "role": "agent", "capacity": 1])
            let agentToken = try await HTTP.login(agentNode, email, "bench-password")
            let chat = try await HTTP.json("POST", customerNode + "/api/v1/conversations", body: ["name": "Bench customer \(i)", "email": "c-" + email])
            guard let id = chat["conversation_id"] as? String, let customerToken = chat["customer_token"] as? String else {
                throw ValidationError("could not start a chat: \(chat)")
            }
            let agent = try await BenchSocket.connect(Self.ws(agentNode), token: agentToken)
            let customer = try await BenchSocket.connect(Self.ws(customerNode), token: customerToken)
            try await agent.send(["event": "PICK", "data": ["conversation_id": id]])
            try await agent.send(["event": "JOIN_CONVERSATION", "data": ["conversation_id": id]])
            try await customer.send(["event": "JOIN_CONVERSATION", "data": ["conversation_id": id]])
            pairs.append((customer, agent, id))
        }
        try await Task.sleep(for: .seconds(1))
        for pair in pairs { pair.agent.startTiming() }

        print("sending \(rate) msg/s in each of \(conversations) conversations for \(duration) s…")
        let start = ContinuousClock.now
        let interval = Duration.seconds(1 / rate)
        let perConversation = Int(rate * duration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for pair in pairs {
                group.addTask {
                    var next = ContinuousClock.now
                    for n in 0..<perConversation {
                        let sent = DispatchTime.now().uptimeNanoseconds
                        try await pair.customer.send(["event": "SEND_MESSAGE", "data": [
                            "conversation_id": pair.id, "text": "\(sent)", "client_msg_id": "b\(n)"]])
                        next = next.advanced(by: interval)
                        try await Task.sleep(until: next, clock: .continuous)
                    }
                }
            }
            try await group.waitForAll()
        }
        let sendingTime = ContinuousClock.now - start
        try await Task.sleep(for: .seconds(2))
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var delivered = 0
        var lastArrival: UInt64 = 0
        for pair in pairs {
            let (latencies, last) = pair.agent.results()
            for microseconds in latencies { _ = histogram.record(microseconds) }
            delivered += latencies.count
            lastArrival = max(lastArrival, last)
        }
        let seconds = Double(sendingTime.components.seconds) + Double(sendingTime.components.attoseconds) / 1e18
        let sent = perConversation * conversations
        func ms(_ p: Double) -> String { String(format: "%.2f", Double(histogram.valueAtPercentile(p)) / 1000) }
        print("sent \(sent), delivered \(delivered) (\(sent - delivered) missing) in \(String(format: "%.1f", seconds)) s")
        print("delivered: \(String(format: "%.0f", Double(delivered) / seconds)) msg/s")
        print("latency ms: p50 \(ms(50)), p90 \(ms(90)), p99 \(ms(99)), max \(String(format: "%.2f", Double(histogram.max) / 1000))")
        for pair in pairs {
            try? await pair.agent.send(["event": "CLOSE_CONVERSATION", "data": ["conversation_id": pair.id, "resolution": "bench"]])
        }
        try await Task.sleep(for: .milliseconds(500))
        for pair in pairs { await pair.customer.close(); await pair.agent.close() }
        if delivered < sent { throw ExitCode(1) }
    }

    static func ws(_ base: String) -> String {
        base.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://") + "/ws"
    }
}

/// A WebSocket client that records, for each NEW_MESSAGE, the time since the sender's timestamp.
final class BenchSocket: @unchecked Sendable {
    private let lock = NIOLock()
    private var writer: WebSocketOutboundWriter?
    private var timing = false
    private var latencies: [UInt64] = []
    private var lastArrival: UInt64 = 0
    private var task: Task<Void, Never>?

    static func connect(_ url: String, token: String) async throws -> BenchSocket {
        let socket = BenchSocket()
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20)
        configuration.additionalHeaders = [.authorization: "Bearer \(token)"]
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Bool.self)
        socket.task = Task {
            _ = try? await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                socket.lock.withLock { socket.writer = outbound }
                readyContinuation.yield(true)
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message, text.contains("\"NEW_MESSAGE\"") else { continue }
                    socket.received(text)
                }
            }
            readyContinuation.yield(false)
        }
        for await ok in ready {
            guard ok else { throw ValidationError("could not connect to \(url)") }
            break
        }
        return socket
    }

    private func received(_ text: String) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let message = (json["data"] as? [String: Any])?["message"] as? [String: Any],
              let sent = (message["text"] as? String).flatMap(UInt64.init), sent <= now else { return }
        lock.withLock {
            guard timing else { return }
            latencies.append((now - sent) / 1000)
            lastArrival = now
        }
    }

    func startTiming() { lock.withLock { timing = true } }
    func results() -> ([UInt64], UInt64) { lock.withLock { (latencies, lastArrival) } }

    func send(_ object: [String: Any]) async throws {
        guard let writer = lock.withLock({ writer }) else { throw ValidationError("not connected") }
        try await writer.write(.text(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)))
    }

    func close() async {
        try? await lock.withLock({ writer })?.close(.normalClosure, reason: "bench done")
        _ = await task?.value
    }
}

enum HTTP {
    static func json(_ method: String, _ url: String, token: String? = nil, body: [String: Any]) async throws -> [String: Any] {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, _) = try await URLSession.shared.data(for: request)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    static func login(_ node: String, _ email: String, _ password: String) async throws -> String {
        let reply = try await json("POST", node + "/api/v1/auth/login", body: ["email": email, "password": password])
        guard let token = reply["access_token"] as? String else { throw ValidationError("login of \(email) failed: \(reply)") }
        return token
    }
}

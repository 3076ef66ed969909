import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers
import NIOWebSocket
import TestSupport

/// A frame the server sent, parsed.
struct Frame: @unchecked Sendable, CustomStringConvertible {
    let event: String
    let data: [String: Any]
    let ref: String?
    let raw: String

    var description: String { raw.count > 300 ? String(raw.prefix(300)) + "…" : raw }
    var code: String? { data["code"] as? String }
    var message: [String: Any]? { data["message"] as? [String: Any] }
}

/// A real WebSocket client for tests: connects with a bearer token, collects every frame, sends frames.
final class TestSocket: @unchecked Sendable {
    private let lock = NIOLock()
    private var frames: [Frame] = []
    private var writer: WebSocketOutboundWriter?
    private var task: Task<Void, Never>?
    private(set) var closeCode: WebSocketErrorCode?
    /// For agents: the presence status HELLO reported.
    private(set) var helloStatus: String?
    private var closed = false
    let label: String

    private init(label: String) { self.label = label }

    /// Connects and waits for HELLO.
    static func connect(_ url: String, token: String, label: String = "socket") async throws -> TestSocket {
        let socket = TestSocket(label: label)
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Bool.self)
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 21)
        configuration.additionalHeaders = [.authorization: "Bearer \(token)"]
        var logger = Logger(label: label)
        logger.logLevel = .error
        socket.task = Task {
            do {
                let close = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                    socket.lock.withLock { socket.writer = outbound }
                    readyContinuation.yield(true)
                    for try await message in inbound.messages(maxSize: 1 << 21) {
                        if case .text(let text) = message { socket.append(text) }
                    }
                }
                socket.lock.withLock { socket.closeCode = close?.closeCode; socket.closed = true }
            } catch {
                socket.lock.withLock { socket.closed = true }
            }
            readyContinuation.yield(false)
            readyContinuation.finish()
        }
        for await ok in ready {
            guard ok else { throw TestSocketError.failed("\(label): connection failed") }
            break
        }
        let hello = try await socket.next("HELLO")
        socket.helloStatus = (hello.data["user"] as? [String: Any])?["status"] as? String
        return socket
    }

    /// Opens a socket the server should refuse after the upgrade (no HELLO): the close code and
    /// reason it gets, or nil code when the server sent a HELLO instead.
    static func refusal(_ url: String, token: String) async throws -> (code: WebSocketErrorCode?, reason: String?) {
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 21)
        configuration.additionalHeaders = [.authorization: "Bearer \(token)"]
        var logger = Logger(label: "refusal")
        logger.logLevel = .error
        let hello = NIOLockedValueBox(false)
        let (configured, quiet) = (configuration, logger)
        let close = try await withTimeout(.seconds(10), "the server's close") {
            let (configuration, logger) = (configured, quiet)
            return try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                for try await message in inbound.messages(maxSize: 1 << 21) {
                    if case .text(let text) = message, text.contains(#""event":"HELLO""#) {
                        hello.withLockedValue { $0 = true }
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                }
            }
        }
        if hello.withLockedValue({ $0 }) { return (nil, nil) }
        return (close?.closeCode, close?.reason)
    }

    private func append(_ text: String) {
        guard let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return }
        let frame = Frame(event: json["event"] as? String ?? "", data: json["data"] as? [String: Any] ?? [:], ref: json["ref"] as? String, raw: text)
        lock.withLock { frames.append(frame) }
    }

    /// Sends one client event.
    func send(_ event: String, _ data: [String: Any] = [:], ref: String? = nil) async throws {
        var object: [String: Any] = ["event": event, "data": data]
        if let ref { object["ref"] = ref }
        try await sendRaw(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    func sendRaw(_ text: String) async throws {
        guard let writer = lock.withLock({ writer }) else { throw TestSocketError.failed("not connected") }
        try await writer.write(.text(text))
    }

    /// Waits for (and removes) the first frame matching; fails after `timeout`.
    func next(_ event: String? = nil, timeout: Duration = .seconds(10), where predicate: @escaping (Frame) -> Bool = { _ in true }) async throws -> Frame {
        let deadline = ContinuousClock.now + timeout
        while true {
            let found: Frame? = lock.withLock {
                guard let index = frames.firstIndex(where: { (event == nil || $0.event == event) && predicate($0) }) else { return nil }
                return frames.remove(at: index)
            }
            if let found { return found }
            if ContinuousClock.now > deadline {
                let seen = lock.withLock { frames.map(\.event) }
                throw TestSocketError.failed("\(label): no \(event ?? "frame") within \(timeout); buffered: \(seen.suffix(20))")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The ACK or ERROR answering `ref`.
    func reply(_ ref: String, timeout: Duration = .seconds(10)) async throws -> Frame {
        try await next(nil, timeout: timeout) { ($0.event == "ACK" || $0.event == "ERROR") && $0.ref == ref }
    }

    /// Sends and waits for the answer.
    func request(_ event: String, _ data: [String: Any] = [:], timeout: Duration = .seconds(10)) async throws -> Frame {
        let ref = UUID().uuidString
        try await send(event, data, ref: ref)
        return try await reply(ref, timeout: timeout)
    }

    /// Removes and returns every buffered frame of `event` (all when nil).
    func drain(_ event: String? = nil) -> [Frame] {
        lock.withLock {
            let taken = frames.filter { event == nil || $0.event == event }
            frames.removeAll { event == nil || $0.event == event }
            return taken
        }
    }

    func count(_ event: String) -> Int { lock.withLock { frames.filter { $0.event == event }.count } }

    /// The buffered frames of `event`, in order, left in place.
    func frames(_ event: String) -> [Frame] { lock.withLock { frames.filter { $0.event == event } } }

    var isClosed: Bool { lock.withLock { closed } }

    /// Waits until the server closed the socket.
    func waitClosed(timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !isClosed {
            if ContinuousClock.now > deadline { throw TestSocketError.failed("\(label): still open") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func close() async {
        let writer = lock.withLock { self.writer }
        try? await writer?.close(.normalClosure, reason: "test done")
        _ = await task?.value
    }
}

enum TestSocketError: Error, CustomStringConvertible {
    case failed(String)
    var description: String { if case .failed(let m) = self { return m }; return "" }
}

import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A small pool of pipelined connections, used round robin.
///
/// Because every connection pipelines, callers never wait for a free connection; the pool only
/// spreads load and replaces a connection that broke (on its next use), so the client heals by
/// itself when Redis comes back.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    private let slots: [NIOLockedValueBox<Task<RedisConnection, any Error>?>]
    /// Each slot's connection once it is up, for callers that cannot wait (`readyConnection`).
    private let ready: [NIOLockedValueBox<RedisConnection?>]
    private let next = NIOLockedValueBox(0)
    /// The group's event loops: slot `i` connects on `loops[i % loops.count]`, so a caller on an
    /// event loop can use a connection of its own loop (`readyConnection(_:on:)`).
    private let loops: [any EventLoop]

    public init(
        configuration: RedisConfiguration,
        poolSize: Int = 4,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "redis")
    ) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.slots = (0..<max(1, poolSize)).map { _ in NIOLockedValueBox(nil) }
        self.ready = (0..<max(1, poolSize)).map { _ in NIOLockedValueBox(nil) }
        self.loops = Array(eventLoopGroup.makeIterator())
    }

    /// A live connection without waiting, nil when its slot is not up (then use `connection()`):
    /// one of the slots that connect on `loop`, so that the reply comes on the caller's own event
    /// loop and answering it needs no hop to another thread (a wake-up of a sleeping loop costs
    /// more than the reply's handling). The slot depends only on `key` and `loop`, so the same key
    /// on the same loop keeps its connection while it lives, and Redis runs its commands in order.
    public func readyConnection(_ key: Int, on loop: any EventLoop) -> RedisConnection? {
        let count = loops.count
        let index: Int
        if count > 1, ready.count >= count, let position = loops.firstIndex(where: { $0 === loop }) {
            // Slots position, position + count, position + 2 count, … connect on this loop.
            let onLoop = (ready.count - position + count - 1) / count
            index = position + count * Int(UInt(bitPattern: key) % UInt(onLoop))
        } else {
            // One loop, a pool smaller than the group, or a loop of another group.
            index = Int(UInt(bitPattern: key) % UInt(ready.count))
        }
        guard let connection = ready[index].withLockedValue({ $0 }), connection.isActive else { return nil }
        return connection
    }

    /// A live connection from the pool, connecting (or reconnecting) its slot if needed.
    public func connection() async throws -> RedisConnection {
        let index = next.withLockedValue { value in
            defer { value = (value + 1) % slots.count }
            return value
        }
        let slot = slots[index]
        let configuration = self.configuration
        let group: any EventLoopGroup = loops.isEmpty ? eventLoopGroup : loops[index % loops.count]
        let task: Task<RedisConnection, any Error> = slot.withLockedValue { current in
            if let current { return current }
            let task = Task { try await RedisConnection.connect(configuration: configuration, eventLoopGroup: group) }
            current = task
            return task
        }
        do {
            let connection = try await task.value
            if connection.isActive {
                ready[index].withLockedValue { $0 = connection }
                return connection
            }
        } catch {
            // Let the next caller try a fresh connect instead of repeating this failure forever.
            slot.withLockedValue { if $0 == task { $0 = nil } }
            throw error
        }
        // The connection broke since it was made: replace it once. Callers that saw the same broken
        // connection at the same time share one replacement (a second one would be handed out but
        // never kept, and never closed).
        let fresh: Task<RedisConnection, any Error> = slot.withLockedValue { current in
            if let current, current != task { return current }
            let fresh = Task { try await RedisConnection.connect(configuration: configuration, eventLoopGroup: group) }
            current = fresh
            return fresh
        }
        do {
            let connection = try await fresh.value
            ready[index].withLockedValue { $0 = connection }
            return connection
        } catch {
            slot.withLockedValue { if $0 == fresh { $0 = nil } }
            throw error
        }
    }

    /// Sends one command; an error reply is thrown as `RedisError(.serverError)`.
    @discardableResult
    public func send(_ arguments: [String]) async throws -> RESPValue {
        do {
            return try await connection().send(arguments)
        } catch let error as RedisError {
            Self.count(error)
            throw error
        }
    }

    /// Sends one command given as separate arguments.
    @discardableResult
    public func send(_ arguments: String...) async throws -> RESPValue {
        try await send(arguments)
    }

    /// Sends several commands in one write on one connection; error replies come back as `.error` values.
    public func pipeline(_ commands: [[String]]) async throws -> [RESPValue] {
        do {
            return try await connection().pipeline(commands)
        } catch let error as RedisError {
            Self.count(error)
            throw error
        }
    }

    /// `helpdesk_redis_errors_total{kind}`: failed commands by `RedisError.Code` (connection_closed,
    /// timeout, server_error, ...). A missing function is not counted: the script registry loads
    /// its library and retries (and a library already loaded is what it wanted).
    public static func count(_ error: RedisError) {
        if RedisScripts.isMissingFunction(error) || error.message.contains("already exists") { return }
        Counter(label: "helpdesk_redis_errors_total", dimensions: [("kind", errorKind(error.code))]).increment()
    }

    /// The label value of an error code (snake case, as Prometheus labels usually are).
    public static func errorKind(_ code: RedisError.Code) -> String {
        switch code {
        case .serverError: return "server_error"
        case .protocolError: return "protocol_error"
        case .connectionClosed: return "connection_closed"
        case .timeout: return "timeout"
        case .invalidArgument: return "invalid_argument"
        case .unexpectedReply: return "unexpected_reply"
        }
    }

    /// Closes every pooled connection.
    public func close() async {
        for slot in slots {
            let task = slot.withLockedValue { current -> Task<RedisConnection, any Error>? in
                defer { current = nil }
                return current
            }
            if let connection = try? await task?.value { await connection.close() }
        }
        for slot in ready { slot.withLockedValue { $0 = nil } }
    }
}

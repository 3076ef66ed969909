import NIOConcurrencyHelpers
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One request on the wire: `count` encoded commands and the promise for their replies, in order.
struct RedisRequest {
    var bytes: ByteBuffer
    var count: Int
    var promise: EventLoopPromise<[RESPValue]>
}

/// Matches replies to requests in order, so any number of commands can be in flight on one connection.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var remaining: Int
        var replies: [RESPValue]
        let promise: EventLoopPromise<[RESPValue]>
        /// When the reply must have come (the request's send time plus the command timeout).
        let deadline: NIODeadline
    }

    private var pending = CircularBuffer<Pending>(initialCapacity: 16)
    private var closedError: RedisError?
    private let commandTimeout: TimeAmount
    /// One timer per connection, due at the deadline of the oldest request. Replies come in order,
    /// so only the oldest request can be overdue; a timer per request would cost the event loop a
    /// linear-time cancellation per reply (its scheduled-task heap removes by search), which with
    /// thousands of commands in flight stalls every other channel of that loop for seconds.
    private var timer: Scheduled<Void>?

    init(commandTimeout: TimeAmount) {
        self.commandTimeout = commandTimeout
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let closedError {
            request.promise.fail(closedError)
            promise?.fail(closedError)
            return
        }
        pending.append(Pending(remaining: request.count, replies: [], promise: request.promise, deadline: .now() + commandTimeout))
        pending[pending.index(before: pending.endIndex)].replies.reserveCapacity(request.count)
        if timer == nil { armTimer(context: context) }
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    private func armTimer(context: ChannelHandlerContext) {
        guard let head = pending.first else {
            timer = nil
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: head.deadline) {
            let (handler, context) = bound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard let head = pending.first else { return }
        if head.deadline <= .now() {
            // A reply that never comes leaves the stream out of step: fail everything and close.
            failAll(RedisError(.timeout, "no reply from Redis within \(commandTimeout)"))
            context.close(promise: nil)
        } else {
            armTimer(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard !pending.isEmpty else {
            // A reply nobody asked for means we lost track of the stream: drop the connection.
            context.fireErrorCaught(RedisError(.protocolError, "unexpected reply"))
            context.close(promise: nil)
            return
        }
        let head = pending.startIndex
        if pending[head].remaining == 1 {
            // The last reply (for a single command the only one): appended to the request taken out
            // of the queue, whose array is then unique (no copy, no regrowth).
            var done = pending.removeFirst()
            done.replies.append(value)
            done.promise.succeed(done.replies)
        } else {
            pending[head].replies.append(value)
            pending[head].remaining -= 1
        }
        // A primary demoted by a failover answers writes with READONLY: drop the connection so the
        // next use reconnects (through Sentinel, to the new primary).
        if case .error(let message) = value, message.hasPrefix("READONLY") {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        failAll(RedisError(.connectionClosed, "connection to Redis closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error as? RedisError ?? RedisError(.connectionClosed, "\(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        if closedError == nil { closedError = error }
        while let p = pending.popFirst() { p.promise.fail(error) }
    }
}

/// A pipelined connection to Redis: any number of tasks may send on it at once; replies come back in order.
public final class RedisConnection: Sendable {
    let channel: any Channel
    private let writes: CoalescedWrites
    let configuration: RedisConfiguration

    /// The event loop its replies are handled on.
    public var eventLoop: any EventLoop { channel.eventLoop }

    init(channel: any Channel, configuration: RedisConfiguration) {
        self.channel = channel
        self.configuration = configuration
        self.writes = CoalescedWrites(maxBatchesInFlight: configuration.maxBatchesInFlight)
    }

    /// Opens a connection, authenticates and selects the database.
    public static func connect(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RedisConnection {
        let channel = try await Self.bootstrap(configuration: configuration, eventLoopGroup: eventLoopGroup) { channel in
            try channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(RESPDecoder()), RedisCommandHandler(commandTimeout: TimeAmount(configuration.commandTimeout))])
        }
        let connection = RedisConnection(channel: channel, configuration: configuration)
        do {
            try await connection.handshake()
        } catch {
            try? await channel.close()
            throw error
        }
        return connection
    }

    static func bootstrap(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup,
        handlers: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> any Channel {
        let timeout = TimeAmount(configuration.connectTimeout)
        let target = try await primary(of: configuration, eventLoopGroup: eventLoopGroup)
        do {
            return try await ClientBootstrap(group: eventLoopGroup)
                .connectTimeout(timeout)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try handlers(channel) }
                }
                .connect(host: target.host, port: target.port)
                .get()
        } catch {
            throw RedisError(.connectionClosed, "cannot connect to Redis at \(target.host):\(target.port): \(error)")
        }
    }

    /// Where to connect: host:port, or the primary that the first answering sentinel names now.
    /// Every (re)connect asks again, so pools and the subscriber follow a failover by themselves.
    static func primary(of configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup) async throws -> RedisConfiguration.Endpoint {
        guard let master = configuration.masterName, !configuration.sentinels.isEmpty else {
            return .init(host: configuration.host, port: configuration.port)
        }
        var lastError: (any Error)?
        for sentinel in configuration.sentinels {
            do {
                var direct = RedisConfiguration(host: sentinel.host, port: sentinel.port, connectTimeout: configuration.connectTimeout,
                                                commandTimeout: configuration.connectTimeout)
                direct.password = nil
                let connection = try await RedisConnection.connect(configuration: direct, eventLoopGroup: eventLoopGroup)
                defer { Task { await connection.close() } }
                let reply = try await connection.send(["SENTINEL", "get-master-addr-by-name", master])
                if let parts = reply.array, parts.count == 2, let host = parts[0].string, let port = parts[1].int {
                    return .init(host: host, port: port)
                }
                lastError = RedisError(.unexpectedReply, "sentinel \(sentinel.host):\(sentinel.port) does not know master \(master)")
            } catch {
                lastError = error
            }
        }
        throw RedisError(.connectionClosed, "no sentinel named a primary for \(master): \(lastError.map { "\($0)" } ?? "")")
    }

    /// The AUTH and SELECT a connection needs before its first command.
    static func handshakeCommands(_ configuration: RedisConfiguration) -> [[String]] {
        var commands: [[String]] = []
        if let password = configuration.password {
            if let user = configuration.username { commands.append(["AUTH", user, password]) } else { commands.append(["AUTH", password]) }
        }
        if configuration.database != 0 { commands.append(["SELECT", String(configuration.database)]) }
        return commands
    }

    private func handshake() async throws {
        let commands = Self.handshakeCommands(configuration)
        guard !commands.isEmpty else { return }
        for reply in try await pipeline(commands) {
            if case .error(let message) = reply { throw RedisError(.serverError, message) }
        }
    }

    /// True while the TCP connection is open.
    public var isActive: Bool { channel.isActive }

    /// Sends one command; an error reply is thrown as `RedisError(.serverError)`.
    @discardableResult
    public func send(_ arguments: [String]) async throws -> RESPValue {
        let reply = try await pipeline([arguments])[0]
        if case .error(let message) = reply { throw RedisError(.serverError, message) }
        return reply
    }

    /// Sends several commands in one write; returns their replies in order, error replies as `.error` values.
    public func pipeline(_ commands: [[String]]) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        return try await submit(commands).get()
    }

    /// Sends commands without waiting: the future holds their replies (on this connection's event
    /// loop), error replies as `.error` values. Commands sent through one connection run in the
    /// order they were sent.
    public func submit(_ commands: [[String]]) -> EventLoopFuture<[RESPValue]> {
        // Nothing to send, so no reply would ever complete it (and it would take the next one's).
        guard !commands.isEmpty else { return channel.eventLoop.makeSucceededFuture([]) }
        var bytes = channel.allocator.buffer(capacity: commands.reduce(0) { $0 + RESPCommandEncoder.encodedLength($1) })
        for command in commands { RESPCommandEncoder.encode(command, into: &bytes) }
        let promise = channel.eventLoop.makePromise(of: [RESPValue].self)
        let request = RedisRequest(bytes: bytes, count: commands.count, promise: promise)
        // The command handler fails the promise (and closes) if no reply comes within the command timeout.
        writes.enqueue(request, on: channel)
        return promise.futureResult
    }

    /// One call of a function whose calls Redis takes in batches (lua/send.lua): the calls made on
    /// this connection within one event-loop tick, with the same function and `shared` leading
    /// arguments, go out as one `FCALL` (at most `maxBatchCalls` of its configuration each): its keys are each
    /// call's keys in turn, its arguments `shared` then each call's arguments in turn, and its reply
    /// the list of the calls' replies, in order. Redis then pays the call's own cost once per batch
    /// instead of once per call (BENCHMARKS.md). Every call of a function must have as many keys
    /// and arguments as the others, which the function checks. The future holds this call's reply
    /// (on this connection's event loop); an error reply to the whole batch (the function is
    /// missing, or raised an error) is every call's reply, as `.error`.
    public func submitBatched(function: String, shared: [String], keys: [String], arguments: [String]) -> EventLoopFuture<RESPValue> {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        writes.enqueue(BatchedCall(keys: keys, arguments: arguments, promise: promise), function: function, shared: shared,
                       maximum: configuration.maxBatchCalls, on: channel)
        return promise.futureResult
    }

    /// Closes the connection; commands still in flight fail.
    public func close() async {
        try? await channel.close()
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Requests from many tasks within one event-loop tick go out in one flush (one syscall), instead
/// of one `writeAndFlush` each: under load, dozens of EVALSHA share a write. Batched calls
/// (`submitBatched`) of the same tick become one request each batch, written after the tick's
/// other requests.
///
/// Batches also wait while `maxBatchesInFlight` of them are unanswered, and go out when a reply
/// comes: a Redis that falls behind then gets the calls of many ticks in a few full `FCALL`s
/// rather than one small `FCALL` per tick piling up unread in its socket (a profile of the relay
/// showed 300–400 KB waiting there in the slow windows). Only batched calls wait: their callers
/// keep their own order by awaiting the reply (a socket's next non-message frame waits for its
/// messages in flight), so a plain request that overtakes a waiting batch breaks no order.
final class CoalescedWrites: @unchecked Sendable {
    private let lock = NIOLock()
    private var pending: [RedisRequest] = []
    private var batches: [CallBatch] = []
    /// The batch being written, swapped with `pending` (and `batches`) so that neither array is
    /// reallocated per tick. Only the event loop's write task touches them.
    private var writing: [RedisRequest] = []
    private var writingBatches: [CallBatch] = []
    private var scheduled = false
    /// 0: batches never wait.
    private let maxBatchesInFlight: Int
    /// Batch requests written and not answered yet (changed on the event loop, under `lock`).
    private var batchesInFlight = 0

    init(maxBatchesInFlight: Int) {
        self.maxBatchesInFlight = maxBatchesInFlight
    }

    func enqueue(_ request: RedisRequest, on channel: any Channel) {
        let schedule: Bool = lock.withLock {
            pending.append(request)
            defer { scheduled = true }
            return !scheduled
        }
        if schedule { scheduleWrite(on: channel) }
    }

    func enqueue(_ call: BatchedCall, function: String, shared: [String], maximum: Int, on channel: any Channel) {
        let schedule: Bool = lock.withLock {
            // Only the newest batch takes more calls: joining an older one would run this call
            // before calls enqueued ahead of it.
            if let last = batches.indices.last, batches[last].function == function, batches[last].shared == shared,
               batches[last].calls.count < maximum {
                batches[last].calls.append(call)
            } else {
                batches.append(CallBatch(function: function, shared: shared, calls: [call]))
            }
            // Waiting batches go out with the next reply, which schedules the write.
            if maxBatchesInFlight > 0 && batchesInFlight >= maxBatchesInFlight { return false }
            defer { scheduled = true }
            return !scheduled
        }
        if schedule { scheduleWrite(on: channel) }
    }

    /// On the event loop, when a batch's reply (or its failure) came: the waiting batches may go.
    private func batchAnswered(on channel: any Channel) {
        let schedule: Bool = lock.withLock {
            batchesInFlight -= 1
            guard !batches.isEmpty, !scheduled else { return false }
            scheduled = true
            return true
        }
        if schedule { scheduleWrite(on: channel) }
    }

    private func scheduleWrite(on channel: any Channel) {
        channel.eventLoop.execute {
            let active = channel.isActive
            self.lock.withLock {
                self.scheduled = false
                swap(&self.pending, &self.writing)
                // A closed channel takes the waiting batches too, to fail them.
                if !active || self.maxBatchesInFlight == 0 || self.batchesInFlight < self.maxBatchesInFlight {
                    swap(&self.batches, &self.writingBatches)
                    if active { self.batchesInFlight += self.writingBatches.count }
                }
            }
            defer {
                self.writing.removeAll(keepingCapacity: true)
                self.writingBatches.removeAll(keepingCapacity: true)
            }
            // While the channel is active, a write reaches the command handler, which fails the
            // request itself if the connection then closes; before that nothing would answer it.
            guard active else {
                let closed = RedisError(.connectionClosed, "connection to Redis closed")
                for request in self.writing { request.promise.fail(closed) }
                for batch in self.writingBatches { for call in batch.calls { call.promise.fail(closed) } }
                return
            }
            for request in self.writing {
                channel.write(request, promise: nil)
            }
            for batch in self.writingBatches {
                let request = batch.request(on: channel)
                request.promise.futureResult.whenComplete { _ in self.batchAnswered(on: channel) }
                channel.write(request, promise: nil)
            }
            channel.flush()
        }
    }
}

/// One call of a batch (`RedisConnection.submitBatched`).
struct BatchedCall {
    let keys: [String]
    let arguments: [String]
    let promise: EventLoopPromise<RESPValue>
}

/// Calls of one function with the same leading arguments, from one event-loop tick.
public struct CallBatch {
    let function: String
    let shared: [String]
    var calls: [BatchedCall]

    init(function: String, shared: [String], calls: [BatchedCall]) {
        self.function = function
        self.shared = shared
        self.calls = calls
    }

    /// FCALLs written for batches, and the calls they carried, since the process started (tests;
    /// their ratio is the mean batch size).
    public static let written = Atomic<Int>(0)
    public static let callsWritten = Atomic<Int>(0)

    /// The batch's one `FCALL`, whose reply is split among the calls' promises.
    func request(on channel: any Channel) -> RedisRequest {
        Self.written.wrappingAdd(1, ordering: .relaxed)
        Self.callsWritten.wrappingAdd(calls.count, ordering: .relaxed)
        var keyCount = 0, argumentCount = 0
        for call in calls {
            keyCount += call.keys.count
            argumentCount += call.arguments.count
        }
        var command: [String] = []
        command.reserveCapacity(3 + keyCount + shared.count + argumentCount)
        command.append("FCALL")
        command.append(function)
        command.append(String(keyCount))
        for call in calls { command.append(contentsOf: call.keys) }
        command.append(contentsOf: shared)
        for call in calls { command.append(contentsOf: call.arguments) }
        var bytes = channel.allocator.buffer(capacity: RESPCommandEncoder.encodedLength(command))
        RESPCommandEncoder.encode(command, into: &bytes)
        let promise = channel.eventLoop.makePromise(of: [RESPValue].self)
        let calls = self.calls, function = self.function
        promise.futureResult.whenComplete { result in
            switch result {
            case .success(let replies):
                let reply = replies.first ?? .null
                if case .error = reply {
                    for call in calls { call.promise.succeed(reply) }
                } else if let each = reply.array, each.count == calls.count {
                    for (call, reply) in zip(calls, each) { call.promise.succeed(reply) }
                } else {
                    let error = RedisError(.unexpectedReply, "\(function): \(calls.count) calls in one batch, a reply that is not a list of \(calls.count)")
                    for call in calls { call.promise.fail(error) }
                }
            case .failure(let error):
                for call in calls { call.promise.fail(error) }
            }
        }
        return RedisRequest(bytes: bytes, count: 1, promise: promise)
    }
}

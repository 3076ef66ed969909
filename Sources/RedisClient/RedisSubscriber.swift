import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// What the pub/sub connection reports to its reader.
public enum RedisPubSubEvent: Sendable, Equatable {
    /// A message on a channel subscribed by name.
    case message(channel: String, payload: String)
    /// A message matched by a pattern subscription.
    case patternMessage(pattern: String, channel: String, payload: String)
    /// The connection came back after a loss and every subscription was renewed. Messages published
    /// while it was down are lost: readers resync from the streams.
    case reconnected
}

/// Hands every decoded reply of the pub/sub connection to a sink without doing any work on the read path.
final class PubSubForwarder: ChannelInboundHandler {
    typealias InboundIn = RESPValue
    let sink: @Sendable (RESPValue?) -> Void

    init(sink: @escaping @Sendable (RESPValue?) -> Void) { self.sink = sink }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        sink(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        sink(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// The dedicated pub/sub connection: it keeps the wanted channels and patterns, reconnects with
/// backoff when the connection drops and subscribes to all of them again by itself.
///
/// Run it as a `Service`; read `events` from one task and fan out from there.
public final class RedisSubscriber: Service, Sendable {
    private struct State {
        var channels: Set<String> = []
        var patterns: Set<String> = []
        var connection: (any Channel)?
        /// Callers waiting for Redis to confirm a (p)subscribe, keyed "subscribe:<name>" or "psubscribe:<name>".
        var waiters: [String: [CheckedContinuation<Void, any Error>]] = [:]
        /// When set, messages go here, on the connection's event loop, instead of to `events`.
        var messageHandler: MessageHandler?
        /// Called before each reconnect after a loss (see `setLossHandler`).
        var lossHandler: (@Sendable () -> Void)?
    }

    public let configuration: RedisConfiguration
    public let events: AsyncStream<RedisPubSubEvent>
    private let eventsContinuation: AsyncStream<RedisPubSubEvent>.Continuation
    private let state = NIOLockedValueBox(State())
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let backoff: ClosedRange<Duration>

    public init(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "redis.pubsub"),
        backoff: ClosedRange<Duration> = .milliseconds(50) ... .seconds(2)
    ) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.backoff = backoff
        (self.events, self.eventsContinuation) = AsyncStream.makeStream(of: RedisPubSubEvent.self)
    }

    /// Subscribes to channels; returns once Redis has confirmed each (throws if the connection is down,
    /// the channels stay wanted and are subscribed when it returns).
    public func subscribe(_ channels: [String]) async throws {
        try await add(channels, kind: "subscribe")
    }

    /// Subscribes to glob patterns; returns once Redis confirmed them.
    public func psubscribe(_ patterns: [String]) async throws {
        try await add(patterns, kind: "psubscribe")
    }

    /// Drops channels; no confirmation is awaited (a late message for them is simply not wanted).
    public func unsubscribe(_ channels: [String]) {
        remove(channels, kind: "unsubscribe")
    }

    /// Drops patterns.
    public func punsubscribe(_ patterns: [String]) {
        remove(patterns, kind: "punsubscribe")
    }

    /// Hands every message (channel, payload bytes) to `handler` as it is read, on the connection's
    /// event loop, instead of queueing it in `events`: no task switch per message, and no queue
    /// in node memory that a burst could grow. The handler must not block.
    public func setMessageHandler(_ handler: @escaping MessageHandler) {
        state.withLockedValue { $0.messageHandler = handler }
    }

    /// Called at each reconnect attempt after a loss (after the backoff wait), before the new
    /// connection can deliver anything. What was published meanwhile is gone: a reader that cannot tell the gap from the
    /// messages after it (a cursor that only moves forward) must stop delivering here, not at
    /// `.reconnected`, which comes only after the renewed subscriptions already carry messages.
    public func setLossHandler(_ handler: @escaping @Sendable () -> Void) {
        state.withLockedValue { $0.lossHandler = handler }
    }

    /// A message's channel and payload, as the reader holds them: valid only during the call.
    public typealias MessageHandler = @Sendable (_ channel: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer) -> Void

    /// The channels currently wanted.
    public var subscribedChannels: Set<String> { state.withLockedValue { $0.channels } }

    private func add(_ names: [String], kind: String) async throws {
        let names = Array(Set(names))
        guard !names.isEmpty else { return }
        // Wanted from now on, even if this call fails: the run loop subscribes on (re)connect.
        state.withLockedValue { state in
            for name in names {
                if kind == "subscribe" { state.channels.insert(name) } else { state.patterns.insert(name) }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for name in names {
                group.addTask {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        // Written under the lock, so it is ordered after the handshake `run` writes.
                        let connected = self.state.withLockedValue { state -> Bool in
                            if kind == "subscribe" { state.channels.insert(name) } else { state.patterns.insert(name) }
                            guard let connection = state.connection else { return false }
                            state.waiters["\(kind):\(name)", default: []].append(continuation)
                            connection.writeAndFlush(RESPCommandEncoder.encode([kind.uppercased(), name]), promise: nil)
                            return true
                        }
                        guard connected else {
                            continuation.resume(throwing: RedisError(.connectionClosed, "pub/sub connection is down; will subscribe on reconnect"))
                            return
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    private func remove(_ names: [String], kind: String) {
        guard !names.isEmpty else { return }
        state.withLockedValue { state in
            for name in names {
                if kind == "unsubscribe" { state.channels.remove(name) } else { state.patterns.remove(name) }
            }
            // Written under the lock, like a subscribe: a SUBSCRIBE of the same channel asked for
            // after this call reaches Redis after this UNSUBSCRIBE, not before it.
            state.connection?.writeAndFlush(RESPCommandEncoder.encode([kind.uppercased()] + names), promise: nil)
        }
    }

    /// Connects, subscribes, reads; on loss waits (exponential backoff) and starts over, until shut down.
    public func run() async throws {
        var delay = backoff.lowerBound
        var connectedBefore = false
        await withGracefulShutdownHandler {
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                var connected: (any Channel)?
                if connectedBefore { state.withLockedValue { $0.lossHandler }?() }
                do {
                    let (replies, repliesContinuation) = AsyncStream.makeStream(of: RESPValue?.self)
                    let channel = try await RedisConnection.bootstrap(configuration: configuration, eventLoopGroup: eventLoopGroup) { channel in
                        try channel.pipeline.syncOperations.addHandlers([
                            // Messages go straight from the reader to the handler on this event
                            // loop; the rest (confirmations, and messages while no handler is set)
                            // to this loop's reader below.
                            ByteToMessageHandler(RESPDecoder(messageTap: { channel, payload in
                                guard let handler = self.state.withLockedValue({ $0.messageHandler }) else { return false }
                                handler(channel, payload)
                                return true
                            })),
                            PubSubForwarder { value in repliesContinuation.yield(value) },
                        ])
                    }
                    connected = channel
                    var bytes = channel.allocator.buffer(capacity: 256)
                    for command in RedisConnection.handshakeCommands(configuration) { RESPCommandEncoder.encode(command, into: &bytes) }
                    let handshakeCount = RedisConnection.handshakeCommands(configuration).count
                    // Publish the connection and write the handshake and the renewals under the lock:
                    // a concurrent `add` then writes its SUBSCRIBE after them (never before AUTH), and
                    // every channel wanted by then is either in this batch or sent by `add` itself.
                    let (renewing, written) = state.withLockedValue { state in
                        state.connection = channel
                        if !state.channels.isEmpty { RESPCommandEncoder.encode(["SUBSCRIBE"] + state.channels, into: &bytes) }
                        if !state.patterns.isEmpty { RESPCommandEncoder.encode(["PSUBSCRIBE"] + state.patterns, into: &bytes) }
                        let renewing = Set(state.channels.map { "subscribe:\($0)" } + state.patterns.map { "psubscribe:\($0)" })
                        return (renewing, channel.writeAndFlush(bytes))
                    }
                    try await written.get()
                    delay = backoff.lowerBound
                    // After a loss, readers resync when told `.reconnected`; tell them only once Redis
                    // confirmed every renewed subscription, or they could miss what is published between.
                    var unconfirmed = renewing
                    var mustAnnounce = connectedBefore
                    if mustAnnounce {
                        logger.info("pub/sub reconnected", metadata: ["subscriptions": "\(renewing.count)"])
                        if unconfirmed.isEmpty {
                            eventsContinuation.yield(.reconnected)
                            mustAnnounce = false
                        }
                    }
                    connectedBefore = true
                    var skip = handshakeCount
                    for await value in replies {
                        guard let value else { break }
                        if skip > 0 {
                            skip -= 1
                            if case .error(let message) = value { logger.error("pub/sub handshake failed: \(message)") }
                            continue
                        }
                        let confirmed = handle(value)
                        if mustAnnounce, let confirmed, unconfirmed.remove(confirmed) != nil, unconfirmed.isEmpty {
                            eventsContinuation.yield(.reconnected)
                            mustAnnounce = false
                        }
                    }
                    try? await channel.close()
                    failWaiters(RedisError(.connectionClosed, "pub/sub connection lost"))
                    if !Task.isCancelled && !Task.isShuttingDownGracefully { logger.warning("pub/sub connection lost") }
                } catch {
                    // Connected but the handshake could not be written: forget the channel, so that
                    // `add` does not wait for confirmations on it.
                    if let connected { try? await connected.close() }
                    failWaiters(RedisError(.connectionClosed, "pub/sub connection lost"))
                    logger.debug("pub/sub connect failed: \(error)")
                }
                guard !Task.isCancelled && !Task.isShuttingDownGracefully else { break }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, backoff.upperBound)
            }
        } onGracefulShutdown: {
            let connection = self.state.withLockedValue { $0.connection }
            connection?.close(promise: nil)
        }
        failWaiters(RedisError(.connectionClosed, "pub/sub stopped"))
        eventsContinuation.finish()
    }

    /// Handles one reply; returns the key ("subscribe:<name>", "psubscribe:<name>") of a confirmation.
    @discardableResult
    private func handle(_ value: RESPValue) -> String? {
        guard let parts = value.array, let kind = parts.first?.string else { return nil }
        switch kind {
        case "message" where parts.count == 3:
            if let channel = parts[1].string, let payload = parts[2].string {
                eventsContinuation.yield(.message(channel: channel, payload: payload))
            }
        case "pmessage" where parts.count == 4:
            if let pattern = parts[1].string, let channel = parts[2].string, let payload = parts[3].string {
                eventsContinuation.yield(.patternMessage(pattern: pattern, channel: channel, payload: payload))
            }
        case "subscribe", "psubscribe":
            guard parts.count >= 2, let name = parts[1].string else { return nil }
            let key = "\(kind):\(name)"
            let waiters = state.withLockedValue { $0.waiters.removeValue(forKey: key) } ?? []
            for waiter in waiters { waiter.resume() }
            return key
        default:
            break
        }
        return nil
    }

    private func failWaiters(_ error: RedisError) {
        let waiters = state.withLockedValue { state in
            state.connection = nil
            defer { state.waiters = [:] }
            return state.waiters.values.flatMap { $0 }
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}

import HelpDeskCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import RedisClient
import Synchronization

/// One upgraded socket's life: start (HELLO), its client frames one at a time, the end.
///
/// Frames arrive on the channel's event loop (`SocketChannelHandler`) and queue here; a task
/// handles them in order and exists only while there is something to handle, so an idle socket
/// holds no task. The queue is short: past `pauseAt` frames the handler stops reading the socket
/// (TCP backpressure on the client) until the task has caught up.
///
/// Chat messages, the one event sent at volume, skip the task while it is idle: they go to Redis
/// from the event loop and are answered from the reply's callback (`sendWithoutTask`). Order
/// holds: a socket's messages share one Redis connection, and the task waits for the messages
/// in flight before it handles the next frame.
final class SocketConnection: @unchecked Sendable {
    enum Job {
        case start
        case frame(ByteBuffer, isText: Bool)
        case finish
    }

    /// Frames waiting before the socket is no longer read.
    static let pauseAt = 8
    /// Reading resumes when the queue is down to this.
    static let resumeAt = 2
    /// Chat messages of one socket sent to Redis without a task and not answered yet; past this
    /// its next frames take the task path, which waits for them (and the queue pauses reading).
    static let maxSendsInFlight = 32
    /// One readable event may hold many frames (NIO reads up to four buffers of up to 64 KiB
    /// before the pause takes effect). Each queued frame counts its bytes plus `jobOverhead` (its
    /// slot and buffer view); past `maxQueuedBytes` the client is closed (1008). A burst of ordinary
    /// messages (1,000 of 100 bytes: ~360 KB) fits; a read of thousands of tiny frames does not.
    static let jobOverhead = 256
    static let maxQueuedBytes = 1 << 20

    enum Enqueued: Equatable {
        case accepted
        /// Accepted; the socket should not be read for now.
        case paused
        /// Refused: the queue is full (the caller closes the socket).
        case overflow
    }

    let upgrade: SocketUpgrade
    let channel: any Channel
    private let controller: WebSocketController
    private let logger: Logger

    private let lock = NIOLock()
    // Guarded by `lock`.
    private var jobs = CircularBuffer<Job>(initialCapacity: 2)
    private var draining = false
    private var paused = false
    private var resume: (@Sendable () -> Void)?
    private var queuedBytes = 0
    private var _session: SocketSession?
    /// Uptime (ms) when the client last sent anything, pongs included.
    private var lastHeard = NIODeadline.now().uptimeNanoseconds / 1_000_000
    /// The frame handler, once started. Used by the task while it drains, else by the event loop
    /// (`sendWithoutTask`): never by both at once.
    private var frames: FrameHandlerSlot?
    /// Messages sent without a task, not answered yet (a resend through the registry included).
    private var sendsInFlight = 0
    /// Messages Redis could not run (its function library was gone) sent again one after another;
    /// while any is under way new messages take the task path, so they stay behind it.
    private var resending: Task<Void, Never>?
    /// Tasks waiting for `sendsInFlight` to reach 0.
    private var settledWaiters: [CheckedContinuation<Void, Never>] = []

    // Touched only on the channel's event loop.
    /// The server sent its close frame: the client's answer drops the connection.
    private(set) var closeSent = false

    /// The session, once started (until finished).
    var session: SocketSession? { lock.withLock { _session } }

    /// Connections alive in this process (a gauge; tests check none outlives its socket).
    static let alive = NIOLockedValueBox(0)
    /// Messages sent without a task, and of those sent again after Redis lost the function
    /// library, in this process (tests check each path is taken).
    static let sentWithoutTask = Atomic<Int>(0)
    static let resentAfterMissingLibrary = Atomic<Int>(0)

    init(upgrade: SocketUpgrade, channel: any Channel, controller: WebSocketController, logger: Logger) {
        self.upgrade = upgrade
        self.channel = channel
        self.controller = controller
        self.logger = logger
        Self.alive.withLockedValue { $0 += 1 }
    }

    deinit { Self.alive.withLockedValue { $0 -= 1 } }

    /// Called (on the event loop) to learn when to read again after a pause; nil when the handler
    /// goes (the closure holds it).
    func onResume(_ resume: (@Sendable () -> Void)?) {
        lock.withLock { self.resume = resume }
    }

    var isPaused: Bool { lock.withLock { paused } }

    /// Queues a job (`bytes`: its payload's size).
    @discardableResult
    func enqueue(_ job: Job, bytes: Int) -> Enqueued {
        if case .frame(let data, true) = job, sendWithoutTask(data) { return .accepted }
        let (start, result): (Bool, Enqueued) = lock.withLock {
            let cost = bytes + Self.jobOverhead
            if case .frame = job, queuedBytes + cost > Self.maxQueuedBytes {
                return (false, .overflow)
            }
            jobs.append(job)
            queuedBytes += cost
            let start = !draining
            draining = true
            if jobs.count >= Self.pauseAt { paused = true }
            return (start, paused ? .paused : .accepted)
        }
        if start { Task { await self.drain() } }
        return result
    }

    private func next() -> Job? {
        let (job, resume): (Job?, (@Sendable () -> Void)?) = lock.withLock {
            guard !jobs.isEmpty else {
                draining = false
                return (nil, nil)
            }
            let job = jobs.removeFirst()
            queuedBytes -= Self.cost(of: job)
            if paused, jobs.count <= Self.resumeAt {
                paused = false
                return (job, self.resume)
            }
            return (job, nil)
        }
        resume?()
        return job
    }

    private static func cost(of job: Job) -> Int {
        if case .frame(let data, _) = job { return data.readableBytes + jobOverhead }
        return jobOverhead
    }

    private func drain() async {
        while let job = next() {
            switch job {
            case .start:
                let session = await controller.start(self)
                var handler: FrameHandler?
                if let session {
                    handler = FrameHandler(session: session, hub: controller.hub, store: controller.store, logger: logger)
                    handler?.callTimeout = controller.services.configuration.callTimeoutSeconds
                    handler?.router = controller.router
                }
                lock.withLock { (_session, frames) = (session, handler.map(FrameHandlerSlot.init)) }
            case .frame(let data, let isText):
                // Messages sent before this frame are answered first: its effects come after theirs.
                await sendsSettled()
                // A socket the server closed acts no more, whatever its client keeps sending.
                guard var handler = lock.withLock({ frames?.handler }), !handler.session.isClosed else { continue }
                await handler.handle(data, isText: isText)
                if handler.shouldClose { handler.session.close(.policyViolation, "too many invalid frames") }
                lock.withLock { frames?.handler = handler }
            case .finish:
                await sendsSettled()
                let session = lock.withLock { () -> SocketSession? in
                    defer { (_session, frames) = (nil, nil) }
                    return _session
                }
                session?.close(.goingAway, "gone")
                await controller.finish(self, session: session)
                onResume(nil)
            }
        }
    }

    // MARK: chat messages without a task

    /// The hot path (on the event loop): while no task is draining, a plain chat message is sent
    /// to Redis right here (`FrameHandler.sendWithoutTask`) and answered when the reply comes.
    /// True when the frame was handled; false sends it to the task.
    private func sendWithoutTask(_ data: ByteBuffer) -> Bool {
        let taken: FrameHandlerSlot? = lock.withLock {
            guard !draining, jobs.isEmpty, resending == nil, sendsInFlight < Self.maxSendsInFlight,
                  let slot = frames, !slot.handler.session.isClosed else { return nil }
            frames = nil
            return slot
        }
        guard let slot = taken else { return false }
        // Used in place: a copy of the handler in and out costs a retain and release of each of its references.
        let outcome = slot.handler.sendWithoutTask(data)
        let session = slot.handler.session
        if slot.handler.shouldClose { session.close(.policyViolation, "too many invalid frames") }
        lock.withLock {
            frames = slot
            if case .sent = outcome { sendsInFlight += 1 }
        }
        switch outcome {
        case .needsTask:
            return false
        case .answered:
            return true
        case .sent(let pending):
            Self.sentWithoutTask.wrappingAdd(1, ordering: .relaxed)
            pending.reply.whenComplete { result in
                self.answered(pending, result, session: session)
            }
            return true
        }
    }

    /// Redis answered a message sent without a task (on the Redis connection's event loop).
    private func answered(_ pending: FrameHandler.PendingSend, _ result: Result<RESPValue, any Error>, session: SocketSession) {
        if FrameHandler.answer(result, to: pending, session: session, logger: logger) {
            settle()
            return
        }
        // Redis lost the function library: send it again through the registry (which loads it),
        // after any message resent before it.
        let (store, logger) = (controller.store, logger)
        lock.withLock {
            let previous = resending
            resending = Task {
                await previous?.value
                Self.resentAfterMissingLibrary.wrappingAdd(1, ordering: .relaxed)
                let result: Result<RESPValue, any Error>
                do {
                    result = .success(try await store.runSend(pending.call))
                } catch {
                    result = .failure(error)
                }
                if !FrameHandler.answer(result, to: pending, session: session, logger: logger) {
                    FrameHandler.refuse(pending, HelpDeskError(.unavailable, "the service is briefly unavailable; retry"), session: session)
                }
                self.settle()
            }
        }
    }

    /// One message sent without a task is answered.
    private func settle() {
        let waiters: [CheckedContinuation<Void, Never>] = lock.withLock {
            sendsInFlight -= 1
            guard sendsInFlight == 0 else { return [] }
            resending = nil
            defer { settledWaiters.removeAll() }
            return settledWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until every message sent without a task is answered.
    private func sendsSettled() async {
        if lock.withLock({ sendsInFlight == 0 }) { return }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let settled = lock.withLock {
                if sendsInFlight == 0 { return true }
                settledWaiters.append(waiter)
                return false
            }
            if settled { waiter.resume() }
        }
    }

    /// The client sent something (on the event loop).
    func heard() {
        let now = NIODeadline.now().uptimeNanoseconds / 1_000_000
        lock.withLock { lastHeard = now }
    }

    /// The client closed first (on the event loop): what it sent before is still handled, nothing
    /// more is sent to it (the close handshake is answered by the handler).
    func clientClosed() {
        closeSent = true
        session?.stopSending()
    }

    /// The kernel takes bytes again (on the event loop).
    func writable() {
        session?.outboxWritable()
    }

    /// Keeps idle sockets honest: a ping after `pingAfter` ms of silence, closed after `closeAfter`
    /// (a peer gone without a FIN would otherwise hold its agent online). From the node's sweep.
    func keepalive(pingAfter: UInt64, closeAfter: UInt64) {
        let now = NIODeadline.now().uptimeNanoseconds / 1_000_000
        let quiet = now &- lock.withLock { lastHeard }
        if quiet >= closeAfter {
            session?.close(.goingAway, "no answer to pings")
        } else if quiet >= pingAfter {
            let channel = self.channel
            channel.eventLoop.execute {
                channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer()), promise: nil)
            }
        }
    }

    /// The server's close (on the event loop), once: frames already queued go first (the outbox
    /// does that), then this.
    func sendClose(_ code: WebSocketErrorCode, _ reason: String) {
        channel.eventLoop.preconditionInEventLoop()
        guard !closeSent else { return }
        closeSent = true
        var data = channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: code)
        data.writeString(String(reason.utf8.prefix(120)) ?? "")
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: data), promise: nil)
    }

    /// Drops the connection after `SocketSession.closeGrace`, whatever the client does.
    func closeAfterGrace() {
        let channel = self.channel
        channel.eventLoop.scheduleTask(in: SocketSession.closeGrace) { channel.close(promise: nil) }
    }
}

/// A socket's frame handler, kept by reference so the hot path mutates it in place. Owned by
/// whoever took it out of `SocketConnection.frames` under its lock (the task or the event loop).
final class FrameHandlerSlot: @unchecked Sendable {
    var handler: FrameHandler

    init(_ handler: FrameHandler) { self.handler = handler }
}

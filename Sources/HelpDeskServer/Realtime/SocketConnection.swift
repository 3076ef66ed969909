import HelpDeskCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import RedisClient
import Synchronization

/// One upgraded socket's life: start (HELLO), its client frames in order, the end.
///
/// Frames arrive on the channel's event loop (`SocketChannelHandler`) and queue here; a task
/// handles events other than chat messages, in order, and exists only while there is something
/// to handle, so an idle socket holds no task. The queue is short: past `pauseAt` frames the
/// handler stops reading the socket (TCP backpressure on the client) until the queue's owner has
/// caught up.
///
/// Chat messages, the one event sent at volume, skip the task: they go to Redis from the event
/// loop and are answered from the reply's callback (`sendWithoutTask`), up to `maxSendsInFlight`
/// unanswered. Past that the next frames queue, and the event loop sends them as replies make
/// room, still without a task; messages queued behind another event go out from the task without
/// awaiting their replies. Order holds: a socket's messages share one Redis connection, one owner
/// at a time takes the queue in order (the task or the event loop), and the task waits for the
/// messages in flight before it handles any other frame.
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
    /// its next frames queue, and the event loop sends them as replies come (`sendQueuedMessages`).
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
    /// A task owns the queue (it runs `drain`).
    private var draining = false
    /// The event loop owns the queue: its first job is a chat message waiting for fewer than
    /// `maxSendsInFlight` in flight; `settle` has the loop send it (`sendQueuedMessages`).
    private var waitingForRoom = false
    /// A `sendQueuedMessages` is on its way to the event loop.
    private var queuedSendScheduled = false
    private var paused = false
    private var resume: (@Sendable () -> Void)?
    private var queuedBytes = 0
    private var _session: SocketSession?
    /// Uptime (ms) when the client last sent anything, pongs included.
    private var lastHeard = NIODeadline.now().uptimeNanoseconds / 1_000_000
    /// The frame handler, once started. Used by the queue's owner (the draining task, or the event
    /// loop waiting for room), else by the event loop (`sendWithoutTask`): never by two at once.
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
    /// Messages sent without awaiting their replies (from the event loop or the task), of those
    /// the ones the event loop sent after waiting for room, and messages sent again after Redis
    /// lost the function library, in this process (tests check each path is taken).
    static let sentWithoutTask = Atomic<Int>(0)
    static let sentAfterWaitingForRoom = Atomic<Int>(0)
    static let resentAfterMissingLibrary = Atomic<Int>(0)
    /// Client frames the task handled itself (`FrameHandler.handle`), in this process: every event
    /// but a chat message that went out without awaiting its reply (tests check which is which).
    static let handledByTask = Atomic<Int>(0)

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
        if case .frame(let data, true) = job, sendWithoutTask(data, inOrder: false) == .taken { return .accepted }
        let (start, result): (Bool, Enqueued) = lock.withLock {
            let cost = bytes + Self.jobOverhead
            if case .frame = job, queuedBytes + cost > Self.maxQueuedBytes {
                return (false, .overflow)
            }
            jobs.append(job)
            queuedBytes += cost
            // Nobody owns the queue (no task, and the event loop is not waiting for room): a task.
            let start = !draining && !waitingForRoom
            if start { draining = true }
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
            return (job, resumeIfDrainedLocked())
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
                if isText {
                    switch sendWithoutTask(data, inOrder: true) {
                    case .taken:
                        continue
                    case .full:
                        // The event loop sends it and what follows as replies make room.
                        handOverToEventLoop(job)
                        return
                    case .notHere:
                        break
                    }
                }
                // Messages sent before this frame are answered first: its effects come after theirs.
                await sendsSettled()
                // A socket the server closed acts no more, whatever its client keeps sending.
                guard var handler = lock.withLock({ frames?.handler }), !handler.session.isClosed else { continue }
                Self.handledByTask.wrappingAdd(1, ordering: .relaxed)
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

    /// What became of a frame offered to the hot path (`sendWithoutTask`).
    enum SendOutcome: Equatable {
        /// Handled: sent, or answered with an ERROR.
        case taken
        /// A text frame, with `maxSendsInFlight` messages in flight: the frame waits first in the
        /// queue, for the event loop (`waitingForRoom`) to take it when a reply makes room (the
        /// task hands the queue over first). Any other event then goes on to the task.
        case full
        /// For the task: another event, a message while others are resent, a closed socket, or a
        /// frame that must queue behind the queue's owner.
        case notHere
    }

    /// The hot path: a plain chat message is sent to Redis right here (`FrameHandler.sendWithoutTask`)
    /// and answered when the reply comes. `inOrder`: the caller owns the queue and this is its
    /// first job (the task, or the event loop sending queued messages); else (a frame just read)
    /// only while nobody owns it, so the socket's frames keep their order.
    private func sendWithoutTask(_ data: ByteBuffer, inOrder: Bool) -> SendOutcome {
        let (taken, full): (FrameHandlerSlot?, Bool) = lock.withLock {
            guard inOrder || (!draining && !waitingForRoom && jobs.isEmpty), resending == nil,
                  let slot = frames, !slot.handler.session.isClosed else { return (nil, false) }
            guard sendsInFlight < Self.maxSendsInFlight else {
                waitingForRoom = true
                return (nil, true)
            }
            frames = nil
            return (slot, false)
        }
        guard let slot = taken else { return full ? .full : .notHere }
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
            return .notHere
        case .answered:
            return .taken
        case .sent(let pending):
            Self.sentWithoutTask.wrappingAdd(1, ordering: .relaxed)
            pending.reply.whenComplete { result in
                self.answered(pending, result, session: session)
            }
            return .taken
        }
    }

    /// The task met a chat message with no room for it: the job goes back to the front of the
    /// queue, which the event loop now owns (`sendWithoutTask` set `waitingForRoom`).
    private func handOverToEventLoop(_ job: Job) {
        let schedule: Bool = lock.withLock {
            jobs.prepend(job)
            queuedBytes += Self.cost(of: job)
            draining = false
            // A reply that came since made room, and its `settle` saw the task still owning the queue.
            return scheduleQueuedSendLocked()
        }
        if schedule { channel.eventLoop.execute { self.sendQueuedMessages() } }
    }

    /// Under `lock`: whether to run `sendQueuedMessages` now (the event loop waits for room, there
    /// is room, and no run is on its way).
    private func scheduleQueuedSendLocked() -> Bool {
        guard waitingForRoom, !draining, !queuedSendScheduled, sendsInFlight < Self.maxSendsInFlight else { return false }
        queuedSendScheduled = true
        return true
    }

    /// On the event loop, which owns the queue: sends its chat messages in order while there is
    /// room. Stops at a message without room (a later reply brings it back here), or hands the rest
    /// to a task at any other job; reading resumes as the queue empties.
    private func sendQueuedMessages() {
        lock.withLock { queuedSendScheduled = false }
        while true {
            let first: Job? = lock.withLock {
                guard waitingForRoom, !draining else { return nil }
                guard let job = jobs.first else {
                    waitingForRoom = false
                    return nil
                }
                return job
            }
            guard let job = first else { break }
            if case .frame(let data, true) = job {
                switch sendWithoutTask(data, inOrder: true) {
                case .taken:
                    Self.sentAfterWaitingForRoom.wrappingAdd(1, ordering: .relaxed)
                    let resume: (@Sendable () -> Void)? = lock.withLock {
                        _ = jobs.removeFirst()
                        queuedBytes -= Self.cost(of: job)
                        return resumeIfDrainedLocked()
                    }
                    resume?()
                    continue
                case .full:
                    return
                case .notHere:
                    break
                }
            }
            // Not a chat message it can send: the task takes the queue from here.
            lock.withLock {
                waitingForRoom = false
                draining = true
            }
            Task { await self.drain() }
            return
        }
        let resume: (@Sendable () -> Void)? = lock.withLock { resumeIfDrainedLocked() }
        resume?()
    }

    /// Under `lock`: unpauses once the queue is short again; the closure to call (outside the lock)
    /// to read again.
    private func resumeIfDrainedLocked() -> (@Sendable () -> Void)? {
        guard paused, jobs.count <= Self.resumeAt else { return nil }
        paused = false
        return resume
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
        let (waiters, sendQueued): ([CheckedContinuation<Void, Never>], Bool) = lock.withLock {
            sendsInFlight -= 1
            let sendQueued = scheduleQueuedSendLocked()
            guard sendsInFlight == 0 else { return ([], sendQueued) }
            resending = nil
            defer { settledWaiters.removeAll() }
            return (settledWaiters, sendQueued)
        }
        if sendQueued { channel.eventLoop.execute { self.sendQueuedMessages() } }
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

import HelpDeskCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// One upgraded socket's life: start (HELLO), its client frames one at a time, the end.
///
/// Frames arrive on the channel's event loop (`SocketChannelHandler`) and queue here; a task
/// handles them in order and exists only while there is something to handle, so an idle socket
/// holds no task. The queue is short: past `pauseAt` frames the handler stops reading the socket
/// (TCP backpressure on the client) until the task has caught up.
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

    // Touched only on the channel's event loop.
    /// The server sent its close frame: the client's answer drops the connection.
    private(set) var closeSent = false

    // Touched only by the one task that drains the queue.
    private var frames: FrameHandler?

    /// The session, once started (until finished).
    var session: SocketSession? { lock.withLock { _session } }

    /// Connections alive in this process (a gauge; tests check none outlives its socket).
    static let alive = NIOLockedValueBox(0)

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
                lock.withLock { _session = session }
                if let session {
                    var handler = FrameHandler(session: session, hub: controller.hub, store: controller.store, logger: logger)
                    handler.callTimeout = controller.services.configuration.callTimeoutSeconds
                    handler.router = controller.router
                    frames = handler
                }
            case .frame(let data, let isText):
                // A socket the server closed acts no more, whatever its client keeps sending.
                guard var handler = frames, !handler.session.isClosed else { continue }
                frames = nil
                await handler.handle(data, isText: isText)
                if handler.shouldClose { handler.session.close(.policyViolation, "too many invalid frames") }
                frames = handler
            case .finish:
                let session = lock.withLock { () -> SocketSession? in
                    defer { _session = nil }
                    return _session
                }
                session?.close(.goingAway, "gone")
                await controller.finish(self, session: session)
                frames = nil
                onResume(nil)
            }
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

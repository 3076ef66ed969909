import HelpDeskCore
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// One client socket: who is on it, and its outbox.
///
/// Frames are queued, not written, by whoever produces them (the fan-out runs on the Redis
/// connection's event loop), so a slow client never slows anyone else down. Everything queued
/// within one event-loop tick goes out in one flush. The queue is bounded in bytes: a client that
/// does not read is closed with 4008 and comes back with `last_message_id`.
final class SocketSession: Sendable {
    /// How long a client gets to answer the server's close frame before the connection is dropped.
    static let closeGrace = TimeAmount.seconds(2)

    let id: Int
    let caller: Caller
    /// `ConnectionHub.userKey(caller)`, made once: the hub looks the user up by it on every chat message.
    let userKey: String
    /// Categories an agent serves (empty: all), for filtering queue events: its account's at
    /// connect, replaced when an admin changes them (PROFILE_UPDATED, `ConnectionHub`).
    var categories: Set<String> { servedCategories.withLockedValue { $0 } }
    private let servedCategories: NIOLockedValueBox<Set<String>>
    /// The client's address (the proxy's `X-Real-IP` when trusted), for the per-IP socket cap.
    let remoteIP: String
    /// The client asked for queue changes batched into QUEUE_CHANGES (`/ws?queue_changes=batched`).
    let batchesQueueChanges: Bool
    private let outbox: SocketOutbox
    /// The socket's event loop (nil for a session without a channel, in tests).
    var eventLoop: (any EventLoop)? { outbox.eventLoop }
    private let closer: @Sendable (WebSocketErrorCode, String) -> Void
    private let keepaliveCheck: @Sendable (_ pingAfter: UInt64, _ closeAfter: UInt64) -> Void
    private let closeCode = NIOLockedValueBox<(WebSocketErrorCode, String)?>(nil)

    /// A session writing to `channel` (the upgraded WebSocket channel); `closer` writes the close
    /// frame (on the event loop, after what is queued); `keepalive` pings a quiet client.
    init(id: Int, caller: Caller, categories: Set<String>, remoteIP: String, batchesQueueChanges: Bool,
         channel: any Channel, outboundByteLimit: Int,
         closer: @escaping @Sendable (WebSocketErrorCode, String) -> Void,
         keepalive: @escaping @Sendable (_ pingAfter: UInt64, _ closeAfter: UInt64) -> Void) {
        self.id = id
        self.remoteIP = remoteIP
        self.batchesQueueChanges = batchesQueueChanges
        self.caller = caller
        self.userKey = ConnectionHub.userKey(caller)
        self.servedCategories = NIOLockedValueBox(categories)
        self.outbox = SocketOutbox(channel: channel, byteLimit: outboundByteLimit)
        self.closer = closer
        self.keepaliveCheck = keepalive
    }

    /// The agent's categories changed: an admin's PATCH (PROFILE_UPDATED), or read from Redis again after a pub/sub loss.
    func setCategories(_ categories: Set<String>) {
        servedCategories.withLockedValue { $0 = categories }
    }

    /// A session that writes nowhere (unit tests of routing).
    init(id: Int, caller: Caller, categories: Set<String> = [], remoteIP: String = "test") {
        self.id = id
        self.remoteIP = remoteIP
        self.batchesQueueChanges = false
        self.caller = caller
        self.userKey = ConnectionHub.userKey(caller)
        self.servedCategories = NIOLockedValueBox(categories)
        self.outbox = SocketOutbox(channel: nil, byteLimit: 1 << 20)
        self.closer = { _, _ in }
        self.keepaliveCheck = { _, _ in }
    }

    /// The kernel takes bytes again: write what waited.
    func outboxWritable() { outbox.flush() }

    /// The client closed: nothing more is written to it (what it sent before is still handled).
    func stopSending() { outbox.stopSending() }

    /// Pings the client after `pingAfter` ms of silence; closes it after `closeAfter`.
    func keepalive(pingAfter: UInt64, closeAfter: UInt64) { keepaliveCheck(pingAfter, closeAfter) }

    /// Queues a frame; past the byte limit the socket is closed (4008).
    func send(_ text: String) {
        send(ByteBuffer(string: text))
    }

    /// Queues a frame given as bytes (`ServerFrame.frameBytes`).
    func send(bytes: [UInt8]) {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        send(buffer)
    }

    /// Queues a frame already in a buffer (one buffer is shared by every recipient of a fan-out).
    func send(_ frame: ByteBuffer) {
        if !outbox.enqueue(frame) { closeTooSlow() }
    }

    /// The outbox is past its byte limit: the client does not read. It comes back and resumes.
    private func closeTooSlow() {
        close(.unknown(4008), "too slow: reconnect and resume with last_message_id")
    }

    /// How long `sendSoon` lets a frame wait for company.
    static let batchWindow = TimeAmount.milliseconds(50)

    /// Queues a frame that may wait up to `batchWindow` for others (or goes with the next frame
    /// sent at once). For events every staff socket gets on every change (QUEUE_UPDATED): under a
    /// burst of picks each socket gets one write per window instead of one per pick.
    func sendSoon(_ frame: ByteBuffer) {
        if !outbox.enqueue(frame, within: Self.batchWindow) { closeTooSlow() }
    }

    /// A queue change: a QUEUE_UPDATED `frame` sent soon (`sendSoon`), or, for a socket that
    /// batches them, its `data` (`change`, a slice of the frame) added to this window's
    /// QUEUE_CHANGES frame. `change` is nil for a frame not in the shape a batch needs.
    func sendQueueChange(frame: ByteBuffer, change: ByteBuffer?) {
        guard batchesQueueChanges, let change else { return sendSoon(frame) }
        if !outbox.enqueueQueueChange(change, within: Self.batchWindow) { closeTooSlow() }
    }

    /// Closes the socket: nothing more is queued or read; frames already queued go out first,
    /// then the close frame; a client that does not answer it is cut off after `closeGrace`.
    func close(_ code: WebSocketErrorCode, _ reason: String) {
        let first = closeCode.withLockedValue { current -> Bool in
            guard current == nil else { return false }
            current = (code, reason)
            return true
        }
        guard first else { return }
        outbox.close(dropPending: code == .unknown(4008)) { [closer] in closer(code, reason) }
    }

    /// The close code asked for, if any.
    var requestedClose: (WebSocketErrorCode, String)? { closeCode.withLockedValue { $0 } }
    var isClosed: Bool { requestedClose != nil }

    var isStaff: Bool { caller.isStaff }
    var isSupervisor: Bool { caller.role == .supervisor || caller.role == .admin }
}

/// The byte-bounded, tick-coalesced outbound queue of one socket.
///
/// Producers on any thread append under a lock; the first append of a tick schedules one flush
/// on the channel's event loop, which writes every queued frame and flushes once. A frame that
/// may wait (`enqueue(_:within:)`) schedules a flush at the end of its window instead, unless one
/// is due sooner. While the
/// channel is not writable (the kernel's buffer is full) frames stay here and count against the
/// limit; `SocketChannelHandler` resumes the flush when the channel is writable again.
final class SocketOutbox: @unchecked Sendable {
    private let channel: (any Channel)?
    var eventLoop: (any EventLoop)? { channel?.eventLoop }
    private let byteLimit: Int
    private let lock = NIOLock()
    // Guarded by `lock`.
    private var pending = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    /// The frames being written, swapped with `pending` so that no buffer is allocated per flush.
    /// Only `flush`, on the channel's event loop, touches it, and empties it before it calls
    /// `channel.flush()`: a flush entered again from there (the channel turned writable and the
    /// handler resumed writing) starts from an empty one.
    private var writing = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    /// Queue slots kept between flushes; a queue grown past this by a burst is given back.
    static let keptCapacity = 64
    private var pendingBytes = 0
    /// The QUEUE_CHANGES frame being filled (`enqueueQueueChange`): its prefix and changes so far,
    /// not yet closed. It is closed and queued when any other frame is queued (so frames keep
    /// their order), at the flush, or when another change would take it past `maxBatchBytes`.
    /// Its bytes count in `pendingBytes`. Unlike a fanned-out frame, shared by every recipient,
    /// each socket's batch is its own copy: bounded, like everything queued, by the byte limit.
    private var openBatch: ByteBuffer?
    /// A QUEUE_CHANGES frame stays well under what clients take in one message.
    static let maxBatchBytes = 64 * 1024
    private var flushScheduled = false
    /// A flush is due within a batch window (`enqueue(_:within:)`).
    private var delayedFlushScheduled = false
    /// No more frames are taken.
    private var closed = false
    /// The last flush is done (or the client closed): nothing more is written.
    private var finished = false

    init(channel: (any Channel)?, byteLimit: Int) {
        self.channel = channel
        self.byteLimit = byteLimit
    }

    /// False when the frame would pass the byte limit (the caller closes the socket).
    func enqueue(_ frame: ByteBuffer) -> Bool { enqueue(frame, within: nil) }

    /// `within`: the frame may wait that long for others before it is flushed (nil: this tick).
    /// Frames go out in the order queued either way: a flush writes everything queued.
    func enqueue(_ frame: ByteBuffer, within delay: TimeAmount?) -> Bool {
        lock.lock()
        if closed {
            lock.unlock()
            return true
        }
        // the open batch's closing bracket is counted when the batch is closed, here
        let closing = openBatch == nil ? 0 : QueueChangesFrame.suffix.count
        if pendingBytes + closing + frame.readableBytes > byteLimit {
            lock.unlock()
            return false
        }
        closeBatchLocked()
        pending.append(frame)
        pendingBytes += frame.readableBytes
        let (schedule, scheduleDelayed) = scheduleLocked(within: delay)
        lock.unlock()
        startFlush(schedule: schedule, scheduleDelayed: scheduleDelayed, delay: delay)
        return true
    }

    /// Adds one QUEUE_UPDATED's `data` object (`change`) to the QUEUE_CHANGES frame being filled,
    /// flushed within `delay` like `enqueue(_:within:)`. False past the byte limit.
    func enqueueQueueChange(_ change: ByteBuffer, within delay: TimeAmount) -> Bool {
        lock.lock()
        if closed {
            lock.unlock()
            return true
        }
        // at most: a separator, or the open batch's closing bracket and a new batch's prefix; and
        // this batch's own closing bracket
        let cost = change.readableBytes + 1 + QueueChangesFrame.prefix.count + 2 * QueueChangesFrame.suffix.count
        if pendingBytes + cost > byteLimit {
            lock.unlock()
            return false
        }
        if let open = openBatch, open.readableBytes + change.readableBytes + 1 + QueueChangesFrame.suffix.count > Self.maxBatchBytes {
            closeBatchLocked()
        }
        if openBatch == nil {
            var batch = ByteBufferAllocator().buffer(capacity: QueueChangesFrame.prefix.count + change.readableBytes * 4)
            batch.writeBytes(QueueChangesFrame.prefix)
            pendingBytes += QueueChangesFrame.prefix.count
            openBatch = batch
        } else {
            openBatch!.writeInteger(QueueChangesFrame.separator)
            pendingBytes += 1
        }
        openBatch!.writeImmutableBuffer(change)
        pendingBytes += change.readableBytes
        let (schedule, scheduleDelayed) = scheduleLocked(within: delay)
        lock.unlock()
        startFlush(schedule: schedule, scheduleDelayed: scheduleDelayed, delay: delay)
        return true
    }

    /// Closes the QUEUE_CHANGES frame being filled, if any, and queues it. Under `lock`.
    private func closeBatchLocked() {
        guard var batch = openBatch else { return }
        openBatch = nil
        batch.writeBytes(QueueChangesFrame.suffix)
        pendingBytes += QueueChangesFrame.suffix.count
        pending.append(batch)
    }

    /// Which flush a frame just queued needs: this tick's, or one at the end of its window (nil
    /// `delay`: this tick). Under `lock`.
    private func scheduleLocked(within delay: TimeAmount?) -> (now: Bool, delayed: Bool) {
        var schedule = false, scheduleDelayed = false
        if delay == nil {
            schedule = !flushScheduled
            if schedule { flushScheduled = true }
        } else if !flushScheduled && !delayedFlushScheduled {
            scheduleDelayed = true
            delayedFlushScheduled = true
        }
        return (schedule, scheduleDelayed)
    }

    private func startFlush(schedule: Bool, scheduleDelayed: Bool, delay: TimeAmount?) {
        guard let channel else { return }
        if schedule {
            channel.eventLoop.execute { self.flush() }
        } else if scheduleDelayed, let delay {
            channel.eventLoop.scheduleTask(in: delay) {
                self.lock.withLock { self.delayedFlushScheduled = false }
                self.flush()
            }
        }
    }

    /// Writes what is queued, once per tick, as long as the channel takes it.
    func flush() { flush(force: false) }

    /// `force`: written even while the channel is not writable (the last flush before a close: the
    /// close frame must come after every frame queued before it, and the queue is byte-bounded).
    private func flush(force: Bool) {
        guard let channel else { return }
        channel.eventLoop.preconditionInEventLoop()
        guard force || channel.isWritable else {
            lock.withLock { flushScheduled = false }
            return
        }
        let taken: Bool = lock.withLock {
            flushScheduled = false
            if finished { return false }
            closeBatchLocked()
            swap(&pending, &writing)
            if pending.capacity > Self.keptCapacity { pending = CircularBuffer(initialCapacity: 4) }
            pendingBytes = 0
            return true
        }
        guard taken, !writing.isEmpty else { return }
        while let data = writing.popFirst() {
            channel.write(WebSocketFrame(fin: true, opcode: .text, data: data), promise: nil)
        }
        // A burst grew it (up to the byte limit's worth of slots): not kept for the socket's life.
        if writing.capacity > Self.keptCapacity { writing = CircularBuffer(initialCapacity: 4) }
        channel.flush()
    }

    /// No more frames are taken; queued ones are written (or dropped), then `sendClose` runs and
    /// the channel is closed after the grace period whatever the client does. Nothing is written
    /// after the close frame.
    func close(dropPending: Bool, sendClose: @escaping @Sendable () -> Void) {
        lock.withLock {
            closed = true
            if dropPending {
                pending.removeAll()
                openBatch = nil
                pendingBytes = 0
            }
        }
        guard let channel else { return }
        channel.eventLoop.execute {
            if !dropPending { self.flush(force: true) }
            self.lock.withLock { self.finished = true }
            sendClose()
            channel.eventLoop.scheduleTask(in: SocketSession.closeGrace) { channel.close(promise: nil) }
        }
    }

    /// The client closed: nothing queued or later is written.
    func stopSending() {
        lock.withLock {
            closed = true
            finished = true
            pending.removeAll()
            openBatch = nil
            pendingBytes = 0
        }
    }
}

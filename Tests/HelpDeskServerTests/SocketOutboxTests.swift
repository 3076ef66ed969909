import NIOCore
import NIOEmbedded
import NIOWebSocket
import HelpDeskProtocol
import Testing
@testable import HelpDeskServer

/// The outbox's flush timing on an embedded channel (its clock moves only when the test says).
@Suite("socket outbox")
struct SocketOutboxTests {
    static func written(_ channel: EmbeddedChannel) throws -> [String] {
        var texts: [String] = []
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) { texts.append(String(buffer: frame.unmaskedData)) }
        return texts
    }

    @Test("a frame that may wait is written at the end of its window, with the others that came meanwhile, in order")
    func batchedWithinWindow() throws {
        let channel = EmbeddedChannel()
        let outbox = SocketOutbox(channel: channel, byteLimit: 1 << 20)
        #expect(outbox.enqueue(ByteBuffer(string: "q1"), within: .milliseconds(50)))
        #expect(outbox.enqueue(ByteBuffer(string: "q2"), within: .milliseconds(50)))
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(49))
        #expect(try Self.written(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try Self.written(channel) == ["q1", "q2"])
        // The next window starts with the next frame.
        #expect(outbox.enqueue(ByteBuffer(string: "q3"), within: .milliseconds(50)))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        #expect(try Self.written(channel) == ["q3"])
    }

    @Test("a frame sent at once takes the waiting ones with it, in the order queued; the window's end then writes nothing twice")
    func immediateFrameFlushesWaitingOnes() throws {
        let channel = EmbeddedChannel()
        let outbox = SocketOutbox(channel: channel, byteLimit: 1 << 20)
        #expect(outbox.enqueue(ByteBuffer(string: "queue"), within: .milliseconds(50)))
        #expect(outbox.enqueue(ByteBuffer(string: "ack")))
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel) == ["queue", "ack"])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        #expect(try Self.written(channel).isEmpty)
    }

    @Test("waiting frames count against the byte limit")
    func waitingFramesAreBounded() throws {
        let channel = EmbeddedChannel()
        let outbox = SocketOutbox(channel: channel, byteLimit: 10)
        #expect(outbox.enqueue(ByteBuffer(string: "12345678"), within: .milliseconds(50)))
        #expect(!outbox.enqueue(ByteBuffer(string: "123"), within: .milliseconds(50)))
    }

    static func change(_ id: String) -> ByteBuffer { ByteBuffer(string: #"{"op":"added","conversation":{"id":"\#(id)"}}"#) }
    static func changes(_ ids: [String]) -> String {
        String(decoding: QueueChangesFrame.frame(ids.map { Array(change($0).readableBytesView) }), as: UTF8.self)
    }

    @Test("queue changes within a window go out as one QUEUE_CHANGES frame, in order; the next window starts a new one")
    func queueChangesBatched() throws {
        let channel = EmbeddedChannel()
        let outbox = SocketOutbox(channel: channel, byteLimit: 1 << 20)
        for id in ["1", "2", "3"] { #expect(outbox.enqueueQueueChange(Self.change(id), within: .milliseconds(50))) }
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(49))
        #expect(try Self.written(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        let frames = try Self.written(channel)
        #expect(frames == [Self.changes(["1", "2", "3"])])
        // the frame is the protocol's QUEUE_CHANGES, every change whole
        let decoded = try JSONValue.parse(frames[0])
        #expect(decoded["event"]?.string == "QUEUE_CHANGES")
        #expect(decoded["data"]?["changes"]?.array?.compactMap { $0["conversation"]?["id"]?.string } == ["1", "2", "3"])
        #expect(outbox.enqueueQueueChange(Self.change("4"), within: .milliseconds(50)))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        #expect(try Self.written(channel) == [Self.changes(["4"])])
    }

    @Test("another frame queued between queue changes closes the batch: everything goes out in the order queued")
    func queueChangesKeepOrder() throws {
        let channel = EmbeddedChannel()
        let outbox = SocketOutbox(channel: channel, byteLimit: 1 << 20)
        #expect(outbox.enqueueQueueChange(Self.change("1"), within: .milliseconds(50)))
        #expect(outbox.enqueueQueueChange(Self.change("2"), within: .milliseconds(50)))
        #expect(outbox.enqueue(ByteBuffer(string: "ack"), within: .milliseconds(50)))
        #expect(outbox.enqueueQueueChange(Self.change("3"), within: .milliseconds(50)))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        #expect(try Self.written(channel) == [Self.changes(["1", "2"]), "ack", Self.changes(["3"])])
        // a frame sent at once takes the open batch with it, before itself
        #expect(outbox.enqueueQueueChange(Self.change("5"), within: .milliseconds(50)))
        #expect(outbox.enqueue(ByteBuffer(string: "now")))
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel) == [Self.changes(["5"]), "now"])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        #expect(try Self.written(channel).isEmpty)
    }

    @Test("a batch stays under maxBatchBytes: more changes make more frames, none lost or split")
    func queueChangesFrameBound() throws {
        let channel = EmbeddedChannel()
        let outbox = SocketOutbox(channel: channel, byteLimit: 1 << 20)
        let padding = String(repeating: "x", count: 1000)
        let ids = (0..<200).map { "\($0)-\(padding)" }
        for id in ids { #expect(outbox.enqueueQueueChange(Self.change(id), within: .milliseconds(50))) }
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        let frames = try Self.written(channel)
        #expect(frames.count > 1)
        #expect(frames.allSatisfy { $0.utf8.count <= SocketOutbox.maxBatchBytes })
        let got = try frames.flatMap { frame in
            try JSONValue.parse(frame)["data"]?["changes"]?.array?.compactMap { $0["conversation"]?["id"]?.string } ?? []
        }
        #expect(got == ids)
    }

    @Test("queue changes count against the byte limit; a dropped socket drops its open batch")
    func queueChangesBounded() throws {
        let channel = EmbeddedChannel()
        let outbox = SocketOutbox(channel: channel, byteLimit: 300)
        #expect(outbox.enqueueQueueChange(Self.change("1"), within: .milliseconds(50)))
        #expect(outbox.enqueueQueueChange(Self.change("2"), within: .milliseconds(50)))
        #expect(outbox.enqueueQueueChange(Self.change("3"), within: .milliseconds(50)))
        #expect(!outbox.enqueueQueueChange(Self.change(String(repeating: "9", count: 100)), within: .milliseconds(50)))
        outbox.stopSending()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        #expect(try Self.written(channel).isEmpty)
    }

    @Test("a flush entered again from inside the channel's flush (the channel turned writable) writes every frame once, in order")
    func reenteredFlush() throws {
        let reenter = ReenteringFlush()
        let channel = EmbeddedChannel(handler: reenter)
        let outbox = SocketOutbox(channel: channel, byteLimit: 1 << 20)
        reenter.onFirstFlush = {
            _ = outbox.enqueue(ByteBuffer(string: "c"))
            outbox.flush()
        }
        #expect(outbox.enqueue(ByteBuffer(string: "a")))
        #expect(outbox.enqueue(ByteBuffer(string: "b")))
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel) == ["a", "b", "c"])
    }
}

/// Runs `onFirstFlush` inside the first flush that passes, as the socket's handler flushes the
/// outbox when the channel becomes writable during a flush.
private final class ReenteringFlush: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var onFirstFlush: (() -> Void)?

    func flush(context: ChannelHandlerContext) {
        if let body = onFirstFlush {
            onFirstFlush = nil
            body()
        }
        context.flush()
    }
}

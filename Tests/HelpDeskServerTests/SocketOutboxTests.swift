import NIOCore
import NIOEmbedded
import NIOWebSocket
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

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

    /// Every byte written to the channel so far, and how many buffers carried them.
    private static func wire(_ channel: EmbeddedChannel) throws -> (bytes: [UInt8], buffers: Int) {
        var bytes: [UInt8] = [], buffers = 0
        while let part = try channel.readOutbound(as: ByteBuffer.self) {
            bytes += Array(part.readableBytesView)
            buffers += 1
        }
        return (bytes, buffers)
    }

    @Test("frames are written below the WebSocket encoder, header and payload in one buffer, byte for byte what the encoder writes",
          arguments: [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
    func framesBelowTheEncoder(size: Int) throws {
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        // What NIO's encoder writes for the same frame: the reference.
        let reference = EmbeddedChannel(handler: WebSocketFrameEncoder())
        try reference.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: payload))).wait()
        let expected = try Self.wire(reference).bytes

        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()  // active, as a socket's channel
        let outbox = SocketOutbox(channel: channel, byteLimit: 1 << 20)
        #expect(outbox.enqueue(payload.withUnsafeBytes { ByteBuffer(frameBytes: $0) }))
        channel.embeddedEventLoop.run()
        let written = try Self.wire(channel)
        #expect(written.bytes == expected)
        #expect(written.buffers == 1, "the header went into the frame's headroom")
    }

    @Test("a frame shared with another socket is copied behind its header; the other holder's view is untouched")
    func sharedFrameBelowTheEncoder() throws {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let outbox = SocketOutbox(channel: channel, byteLimit: 1 << 20)
        let shared = Array("hello".utf8).withUnsafeBytes { ByteBuffer(frameBytes: $0) }
        var other = shared  // another socket's queue
        #expect(outbox.enqueue(shared))
        #expect(outbox.enqueue(ByteBuffer(string: "no headroom")))
        channel.embeddedEventLoop.run()
        let written = try Self.wire(channel)
        #expect(written.bytes == [0x81, 5] + Array("hello".utf8) + [0x81, 11] + Array("no headroom".utf8))
        #expect(other.readerIndex == FrameWire.headerRoom && other.readString(length: 5) == "hello")
    }
}

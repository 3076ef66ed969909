import NIOCore
import NIOPosix

/// What kind of server frame arrived, decided from the `"event"` value's bytes alone.
enum FrameKind: Sendable {
    case hello, ack, error, newMessage, other
}

/// A minimal RFC 6455 client on a raw NIO channel, written for load generation: no per-frame
/// task, no async sequence, no `String` per frame; the frame bytes are handed to `onFrame` in
/// place on the socket's event loop, and writes go straight to the channel.
///
/// `@unchecked Sendable`: every mutable field is read and written only on `loop` (NIO calls the
/// handler methods there; `send` and `expectAcks` hop there when called from elsewhere; the
/// initial fields are set before the channel exists), so no two threads ever touch it at once.
final class BenchSocket: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let loop: EventLoop
    private let handshake: [UInt8]
    private var channel: Channel?
    private var inbound: ByteBuffer
    private var upgraded = false
    private var fragment: ByteBuffer?
    private var fragmentOpcode: UInt8 = 0
    private let mask: [UInt8]
    private let helloPromise: EventLoopPromise<Void>
    private var ackTarget: (count: Int, promise: EventLoopPromise<Void>)?
    /// Frames received since the socket opened (HELLO included).
    private(set) var framesReceived = 0
    private(set) var acks = 0
    private(set) var errors = 0
    private(set) var lastError = ""
    /// Called on `loop` for every text frame after the handshake, with the frame's kind, its
    /// bytes and the monotonic time (ns) at which the read that carried it started.
    var onFrame: ((FrameKind, UnsafeRawBufferPointer, UInt64) -> Void)?
    /// Called on `loop` when the connection closes.
    var onClose: (() -> Void)?

    /// The socket is open and the server said HELLO.
    var hello: EventLoopFuture<Void> { helloPromise.futureResult }

    private init(loop: EventLoop, host: String, port: Int, path: String, token: String) {
        self.loop = loop
        self.inbound = ByteBufferAllocator().buffer(capacity: 0)
        self.helloPromise = loop.makePromise()
        self.mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        // The key (base64 of 16 bytes, RFC 6455 4.1) need not be random: the server only echoes its hash.
        self.handshake = Array(("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: aGVscGRlc2stYmVuY2gwMQ==\r\nSec-WebSocket-Version: 13\r\n"
            + "Authorization: Bearer \(token)\r\n\r\n").utf8)
    }

    /// Opens a socket to `host:port` (from `source`, a local IP address, when given) and starts
    /// the upgrade; `hello` completes once the server's HELLO frame arrived.
    static func connect(on loop: EventLoop, host: String, port: Int, path: String = "/ws", token: String,
                        source: String? = nil, configure: ((BenchSocket) -> Void)? = nil) -> EventLoopFuture<BenchSocket> {
        let socket = BenchSocket(loop: loop, host: host, port: port, path: path, token: token)
        configure?(socket)
        var bootstrap = ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .connectTimeout(.seconds(30))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(socket) }
            }
        if let source {
            do { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) } catch {
                return loop.makeFailedFuture(error)
            }
        }
        return bootstrap.connect(host: host, port: port).map { _ in socket }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        channel = context.channel
    }

    func channelActive(context: ChannelHandlerContext) {
        var request = context.channel.allocator.buffer(capacity: handshake.count)
        request.writeBytes(handshake)
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        struct Closed: Error {}
        helloPromise.fail(Closed())
        ackTarget?.promise.fail(Closed())
        ackTarget = nil
        onClose?()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let receivedAt = NIODeadline.now().uptimeNanoseconds
        var bytes = unwrapInboundIn(data)
        // Common case: nothing left over from the previous read, parse the read buffer in place.
        if inbound.readableBytes == 0 {
            if upgraded { parseFrames(&bytes, receivedAt: receivedAt) }
            if bytes.readableBytes > 0 {
                inbound.clear()
                inbound.writeBuffer(&bytes)
            } else { return }
            if upgraded { return }
        } else {
            inbound.writeBuffer(&bytes)
        }
        if !upgraded {
            guard let end = inbound.readableBytesView.firstRange(of: [13, 10, 13, 10]) else { return }
            let headerLength = end.upperBound - inbound.readableBytesView.startIndex
            let head = inbound.readString(length: headerLength) ?? ""
            guard head.hasPrefix("HTTP/1.1 101") else {
                struct Refused: Error, CustomStringConvertible { let description: String }
                helloPromise.fail(Refused(description: String(head.prefix(200))))
                context.close(promise: nil)
                return
            }
            upgraded = true
        }
        parseFrames(&inbound, receivedAt: receivedAt)
        if inbound.readableBytes == 0 { inbound.clear() } else if inbound.readerIndex > 1 << 16 { inbound.discardReadBytes() }
    }

    /// Consumes every complete frame at the front of `buffer`; leaves a partial one in place.
    private func parseFrames(_ buffer: inout ByteBuffer, receivedAt: UInt64) {
        while true {
            let start = buffer.readerIndex
            guard let b0: UInt8 = buffer.getInteger(at: start), let b1: UInt8 = buffer.getInteger(at: start + 1) else { return }
            var header = 2
            var length = Int(b1 & 0x7F)
            if length == 126 {
                guard let l: UInt16 = buffer.getInteger(at: start + 2) else { return }
                length = Int(l); header = 4
            } else if length == 127 {
                guard let l: UInt64 = buffer.getInteger(at: start + 2) else { return }
                length = Int(l); header = 10
            }
            let masked = b1 & 0x80 != 0
            if masked { header += 4 }
            guard buffer.readableBytes >= header + length else { return }
            buffer.moveReaderIndex(forwardBy: header)
            guard var payload = buffer.readSlice(length: length) else { return }
            if masked { channel?.close(promise: nil); return }  // servers never mask (RFC 6455 5.1)
            let opcode = b0 & 0x0F
            let fin = b0 & 0x80 != 0
            switch opcode {
            case 0x1, 0x2, 0x0:
                if opcode != 0 && fin {
                    if opcode == 0x1 { deliver(payload, receivedAt: receivedAt) }
                } else if opcode != 0 {
                    fragmentOpcode = opcode
                    fragment = payload
                } else if var partial = fragment {
                    partial.writeBuffer(&payload)
                    fragment = fin ? nil : partial
                    if fin && fragmentOpcode == 0x1 { deliver(partial, receivedAt: receivedAt) }
                }
            case 0x8:
                writeFrame(opcode: 0x8, payload: payload.readableBytesView.prefix(2))
                channel?.close(promise: nil)
                return
            case 0x9:
                writeFrame(opcode: 0xA, payload: payload.readableBytesView)
            default:
                break
            }
        }
    }

    private func deliver(_ payload: ByteBuffer, receivedAt: UInt64) {
        framesReceived += 1
        payload.withUnsafeReadableBytes { bytes in
            let kind = FrameScan.kind(of: bytes)
            switch kind {
            case .hello: helloPromise.succeed(())
            case .ack:
                acks += 1
                if let target = ackTarget, acks >= target.count {
                    ackTarget = nil
                    target.promise.succeed(())
                }
            case .error:
                errors += 1
                lastError = String(decoding: bytes.prefix(300), as: UTF8.self)
                if let target = ackTarget {
                    struct ServerError: Error, CustomStringConvertible { let description: String }
                    ackTarget = nil
                    target.promise.fail(ServerError(description: lastError))
                }
            default: break
            }
            onFrame?(kind, bytes, receivedAt)
        }
    }

    /// Completes once `count` ACKs in all arrived on this socket; fails on the first ERROR.
    func expectAcks(_ count: Int) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            if self.acks >= count { return self.loop.makeSucceededVoidFuture() }
            let promise = self.loop.makePromise(of: Void.self)
            self.ackTarget = (count, promise)
            return promise.futureResult
        }
    }

    /// Sends one text frame. On `loop` it writes at once; elsewhere it hops there first.
    func send(_ text: String) {
        if loop.inEventLoop { writeFrame(opcode: 0x1, payload: text.utf8) } else {
            loop.execute { self.writeFrame(opcode: 0x1, payload: text.utf8) }
        }
    }

    /// Writes a text frame from bytes the caller holds; must be called on `loop`.
    func sendOnLoop(_ bytes: UnsafeRawBufferPointer) {
        writeFrame(opcode: 0x1, payload: bytes)
    }

    /// A client frame: FIN, the opcode, the length, the mask key and the masked payload, in one
    /// buffer written and flushed at once.
    private func writeFrame<Payload: Collection<UInt8>>(opcode: UInt8, payload: Payload) {
        guard let channel else { return }
        let count = payload.count
        var frame = channel.allocator.buffer(capacity: count + 14)
        frame.writeInteger(0x80 | opcode)
        if count < 126 {
            frame.writeInteger(UInt8(0x80 | count))
        } else if count < 65_536 {
            frame.writeInteger(UInt8(0x80 | 126)); frame.writeInteger(UInt16(count))
        } else {
            frame.writeInteger(UInt8(0x80 | 127)); frame.writeInteger(UInt64(count))
        }
        frame.writeBytes(mask)
        let m0 = mask[0], m1 = mask[1], m2 = mask[2], m3 = mask[3]
        frame.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
            var i = 0
            for byte in payload {
                let m: UInt8
                switch i & 3 { case 0: m = m0; case 1: m = m1; case 2: m = m2; default: m = m3 }
                out[i] = byte ^ m
                i += 1
            }
            return count
        }
        channel.writeAndFlush(frame, promise: nil)
    }

    /// Sends a close frame and closes the connection.
    func close() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            guard let channel = self.channel, channel.isActive else { return self.loop.makeSucceededVoidFuture() }
            self.writeFrame(opcode: 0x8, payload: [0x03, 0xE8])
            return channel.close().recover { _ in }
        }
    }
}

import NIOCore
import NIOWebSocket

/// The last handler of an upgraded socket's pipeline, on its event loop: hands complete text and
/// binary frames to the connection's queue, answers pings, runs the close handshake, and stops
/// reading while the queue is full.
final class SocketChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// Pings a client may send in `pingWindow` before it is closed (1008).
    static let pingBudget = 100
    static let pingWindow = TimeAmount.seconds(10)

    private let connection: SocketConnection
    /// A `read` held back while the queue was full.
    private var readHeldBack = false
    private var context: ChannelHandlerContext?
    /// The latest ping not yet answered: only the most recent needs a pong (RFC 6455 §5.5.3), so a
    /// ping flood costs one buffered pong, answered once the client reads.
    private var pendingPing: ByteBuffer?
    private var pings = 0
    private var pingWindowStart = NIODeadline.now()

    init(connection: SocketConnection) {
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        connection.onResume {
            eventLoop.execute { loopBound.value.resumeReading() }
        }
        connection.enqueue(.start, bytes: 0)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // breaks handler → connection → resume closure → handler
        connection.onResume(nil)
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        connection.heard()
        switch frame.opcode {
        case .text, .binary:
            // After a close (either side's), nothing more is taken.
            guard !connection.closeSent else { return }
            let data = frame.unmaskedData
            if connection.enqueue(.frame(data, isText: frame.opcode == .text), bytes: data.readableBytes) == .overflow {
                connection.sendClose(.policyViolation, "too many frames queued: slow down")
                connection.closeAfterGrace()
            }
        case .ping:
            guard !connection.closeSent else { return }
            let now = NIODeadline.now()
            if now - pingWindowStart > Self.pingWindow {
                pingWindowStart = now
                pings = 0
            }
            pings += 1
            if pings > Self.pingBudget {
                connection.sendClose(.policyViolation, "too many pings")
                connection.closeAfterGrace()
                return
            }
            pendingPing = frame.unmaskedData
        case .connectionClose:
            receivedClose(frame, context: context)
        default:
            break  // pong: `heard` is all it is for
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        answerPing(context: context)
        context.fireChannelReadComplete()
    }

    /// The client's close: if the server asked first, this is the answer and the connection goes at
    /// once; else the handshake is answered (the client's code if valid, else 1002) and the
    /// connection dropped. What the client sent before its close is still handled; nothing more is
    /// sent to it.
    private func receivedClose(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        if connection.closeSent {
            context.close(promise: nil)
            return
        }
        connection.clientClosed()
        var payload = frame.unmaskedData
        var reply = context.channel.allocator.buffer(capacity: 2)
        switch payload.readableBytes {
        case 0:
            break  // no code given, none sent back
        case 1:
            reply.write(webSocketErrorCode: .protocolError)
        default:
            let code = payload.readInteger(as: UInt16.self) ?? 1002
            reply.writeInteger(Self.isValidCloseCode(code) ? code : 1002)
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)))
            .whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    /// Codes a peer may send in a close frame (RFC 6455 §7.4): not 1004–1006, 1015 or unassigned ones.
    static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.enqueue(.finish, bytes: 0)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client shut its side (a FIN without a close frame: a killed browser, a proxy): the
        // socket is gone now, not when a write to it fails.
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            connection.writable()
            answerPing(context: context)
            resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder's own handler answers its errors; the aggregator's are answered here.
        if let error = error as? NIOWebSocketFrameAggregator.Error, !connection.closeSent {
            connection.sendClose(error == .accumulatedFrameSizeIsTooLarge ? .messageTooLarge : .protocolError, "bad message")
            connection.closeAfterGrace()
            return
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        // Not held while the client does not read what it is sent: everything it asks for goes
        // through the byte-bounded outbox, which drops it (4008) quickly; pongs are one at most.
        if connection.isPaused {
            readHeldBack = true
        } else {
            context.read()
        }
    }

    private func answerPing(context: ChannelHandlerContext) {
        guard let ping = pendingPing, context.channel.isWritable, !connection.closeSent else { return }
        pendingPing = nil
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: ping)), promise: nil)
    }

    private func resumeReading() {
        guard readHeldBack, let context, !connection.isPaused else { return }
        readHeldBack = false
        context.read()
    }
}

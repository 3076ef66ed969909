import NIOCore
import NIOWebSocket

/// The last handler of an upgraded socket's pipeline, on its event loop: hands complete text and
/// binary frames to the connection's queue, answers pings, runs the close handshake, and stops
/// reading while the queue is full.
final class SocketChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let connection: SocketConnection
    /// A `read` held back while the queue was full.
    private var readHeldBack = false
    private var context: ChannelHandlerContext?

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
        connection.enqueue(.start)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        connection.heard()
        switch frame.opcode {
        case .text, .binary:
            connection.enqueue(.frame(frame.unmaskedData, isText: frame.opcode == .text))
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            // The client's close: echo its code (the handshake), then drop the connection. If the
            // server asked first, this is the answer and the connection goes at once.
            if connection.closeSent {
                context.close(promise: nil)
            } else {
                connection.markClosedByClient()
                var code = frame.unmaskedData
                let echo = code.readSlice(length: min(2, code.readableBytes)) ?? ByteBuffer()
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: echo)))
                    .whenComplete { _ in context.close(promise: nil) }
            }
        default:
            break  // pong: `heard` is all it is for
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.enqueue(.finish)
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { connection.writable() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A protocol error (the decoder's own handler has answered it) or a reset: nothing to keep.
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if connection.isPaused {
            readHeldBack = true
        } else {
            context.read()
        }
    }

    private func resumeReading() {
        guard readHeldBack, let context else { return }
        readHeldBack = false
        context.read()
    }
}

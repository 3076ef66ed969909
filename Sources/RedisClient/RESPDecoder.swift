import CHiredis
import NIOCore

/// Decodes RESP2 replies with hiredis's reply reader.
///
/// The reader keeps its own buffer, so every byte handed to `decode` is consumed and fed to it;
/// then every complete reply is fired at once (several may arrive in one read).
/// The C reader is owned by this one non-Sendable decoder, which lives on one channel.
public final class RESPDecoder: ByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    private let reader: UnsafeMutablePointer<redisReader>

    public init() {
        guard let reader = redisReaderCreate() else { fatalError("hiredis: out of memory creating a reader") }
        self.reader = reader
    }

    deinit {
        redisReaderFree(reader)
    }

    public func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let values = try self.feed(&buffer)
        for value in values {
            context.fireChannelRead(Self.wrapInboundOut(value))
        }
        return .needMoreData
    }

    public func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try self.decode(context: context, buffer: &buffer)
    }

    /// Feeds all readable bytes to the reader and returns every reply now complete.
    public func feed(_ buffer: inout ByteBuffer) throws -> [RESPValue] {
        if buffer.readableBytes > 0 {
            let status = buffer.withUnsafeReadableBytes { bytes in
                redisReaderFeed(reader, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
            }
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            if status != REDIS_OK { throw self.readerError() }
        }
        var values: [RESPValue] = []
        while true {
            var raw: UnsafeMutableRawPointer? = nil
            guard redisReaderGetReply(reader, &raw) == REDIS_OK else { throw self.readerError() }
            guard let raw else { break }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            values.append(Self.convert(reply))
            freeReplyObject(raw)
        }
        return values
    }

    private func readerError() -> RedisError {
        let text = withUnsafeBytes(of: reader.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return RedisError(.protocolError, text.isEmpty ? "invalid RESP" : text)
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let r = reply.pointee
        func bytes() -> [UInt8] {
            guard let str = r.str, r.len > 0 else { return [] }
            return str.withMemoryRebound(to: UInt8.self, capacity: r.len) { Array(UnsafeBufferPointer(start: $0, count: r.len)) }
        }
        switch r.type {
        case REDIS_REPLY_STRING: return .bulkString(bytes())
        case REDIS_REPLY_STATUS: return .simpleString(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(r.integer)
        case REDIS_REPLY_ARRAY:
            var elements: [RESPValue] = []
            elements.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let child = r.element[i] { elements.append(convert(child)) } else { elements.append(.null) }
            }
            return .array(elements)
        default: return .null
        }
    }
}

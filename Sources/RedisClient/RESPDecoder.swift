import CHiredis
import NIOCore

/// Decodes RESP2 replies with hiredis's reply reader.
///
/// The reader keeps its own buffer, so every byte handed to `decode` is consumed and fed to it;
/// then every complete reply is fired at once (several may arrive in one read).
/// The C reader is owned by this one non-Sendable decoder, which lives on one channel.
///
/// hiredis allocates an array's element pointers as soon as it reads the header, so
/// `*2147483647\r\n` (13 bytes) asks for 16 GiB at once, and siblings and nesting multiply that
/// (found by Fuzz/FuzzRESP). One reply may therefore announce at most `maxReplyElements` array
/// slots in all (`defaultMaxReplyElements` unless a test asks for less); past that the reader
/// fails with a protocol error and the connection is dropped, as for any other invalid reply.
public final class RESPDecoder: ByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    /// Array slots one reply may announce, counted over all its (nested) arrays: 16 Mi, 128 MiB
    /// of pointers, far above any reply we ask for (a page of a stream, a queue with scores).
    public static let defaultMaxReplyElements = 1 << 24

    private let reader: UnsafeMutablePointer<redisReader>
    private let budget: ElementBudget

    public init(maxReplyElements: Int = RESPDecoder.defaultMaxReplyElements) {
        budget = ElementBudget(limit: maxReplyElements)
        guard let reader = redisReaderCreate() else { fatalError("hiredis: out of memory creating a reader") }
        self.reader = reader
        reader.pointee.fn = boundedReplyFunctions
        reader.pointee.privdata = Unmanaged.passUnretained(budget).toOpaque()
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
            budget.used = 0
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            values.append(Self.convert(reply))
            freeReplyObject(raw)
        }
        return values
    }

    private func readerError() -> RedisError {
        if budget.exceeded { return RedisError(.protocolError, "a reply announced more than \(budget.limit) array elements") }
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

/// What one reply in progress has announced so far; hiredis hands it to `createArray` through the
/// reader's `privdata` (copied into every read task).
final class ElementBudget {
    let limit: Int
    var used = 0
    var exceeded = false
    init(limit: Int) { self.limit = limit }
}

/// hiredis's own reply functions (read off a reader it made) with `createArray` wrapped to keep
/// the budget. A NULL from `createArray` makes hiredis fail the reader ("out of memory").
private nonisolated(unsafe) let hiredisReplyFunctions: redisReplyObjectFunctions = {
    guard let reader = redisReaderCreate() else { fatalError("hiredis: out of memory creating a reader") }
    defer { redisReaderFree(reader) }
    return reader.pointee.fn.pointee
}()

private nonisolated(unsafe) let boundedReplyFunctions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
    let functions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
    functions.initialize(to: hiredisReplyFunctions)
    functions.pointee.createArray = { task, elements in
        guard let task, let privdata = task.pointee.privdata else { return nil }
        let budget = Unmanaged<ElementBudget>.fromOpaque(privdata).takeUnretainedValue()
        budget.used += Int(elements)
        guard budget.used <= budget.limit else {
            budget.exceeded = true
            return nil
        }
        return hiredisReplyFunctions.createArray(task, elements)
    }
    return functions
}()

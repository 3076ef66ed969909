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

    /// Takes a pub/sub `message` (channel, payload) straight from the reader's buffers, before any
    /// `RESPValue` is made; true when it was taken (then it is not fired). The bytes are valid only
    /// during the call.
    public typealias MessageTap = (_ channel: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer) -> Bool

    private let reader: UnsafeMutablePointer<redisReader>
    private let budget: ElementBudget
    private let messageTap: MessageTap?

    /// `messageTap`: for a subscriber connection, where a message is the common reply: each one
    /// then costs no Swift arrays or strings (a third of a node's allocations per relayed message).
    public init(maxReplyElements: Int = RESPDecoder.defaultMaxReplyElements, messageTap: MessageTap? = nil) {
        self.messageTap = messageTap
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
        // Each reply is fired as it is read: no array of replies per read.
        try self.feed(&buffer) { context.fireChannelRead(Self.wrapInboundOut($0)) }
        return .needMoreData
    }

    public func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try self.decode(context: context, buffer: &buffer)
    }

    /// Feeds all readable bytes to the reader and returns every reply now complete.
    public func feed(_ buffer: inout ByteBuffer) throws -> [RESPValue] {
        var values: [RESPValue] = []
        try feed(&buffer) { values.append($0) }
        return values
    }

    /// Feeds all readable bytes to the reader and hands over every reply now complete, in order.
    private func feed(_ buffer: inout ByteBuffer, _ body: (RESPValue) -> Void) throws {
        if buffer.readableBytes > 0 {
            let status = buffer.withUnsafeReadableBytes { bytes in
                redisReaderFeed(reader, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
            }
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            if status != REDIS_OK { throw self.readerError() }
        }
        while true {
            var raw: UnsafeMutableRawPointer? = nil
            guard redisReaderGetReply(reader, &raw) == REDIS_OK else { throw self.readerError() }
            guard let raw else { break }
            budget.used = 0
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            if let messageTap, Self.tapMessage(reply, messageTap) {
                freeReplyObject(raw)
                continue
            }
            let value = Self.convert(reply)
            freeReplyObject(raw)
            body(value)
        }
    }

    private func readerError() -> RedisError {
        if budget.exceeded { return RedisError(.protocolError, "a reply announced more than \(budget.limit) array elements") }
        let text = withUnsafeBytes(of: reader.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return RedisError(.protocolError, text.isEmpty ? "invalid RESP" : text)
    }

    /// A `["message", channel, payload]` array handed to `tap`; false for any other reply.
    private static func tapMessage(_ reply: UnsafeMutablePointer<redisReply>, _ tap: MessageTap) -> Bool {
        let r = reply.pointee
        guard r.type == REDIS_REPLY_ARRAY, r.elements == 3, let elements = r.element,
              let kind = elements[0], let channel = elements[1], let payload = elements[2],
              kind.pointee.type == REDIS_REPLY_STRING, channel.pointee.type == REDIS_REPLY_STRING,
              payload.pointee.type == REDIS_REPLY_STRING else { return false }
        let kindBytes = UnsafeRawBufferPointer(start: kind.pointee.str, count: kind.pointee.len)
        guard kindBytes.elementsEqual("message".utf8) else { return false }
        return tap(UnsafeRawBufferPointer(start: channel.pointee.str, count: channel.pointee.len),
                   UnsafeRawBufferPointer(start: payload.pointee.str, count: payload.pointee.len))
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
private let hiredisReplyFunctions: redisReplyObjectFunctions = {
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

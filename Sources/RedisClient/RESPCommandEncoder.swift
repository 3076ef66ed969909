import CHiredis
import NIOCore

/// Encodes a command (its name and arguments) as a RESP array with hiredis's `redisFormatCommandArgv`.
public enum RESPCommandEncoder {
    /// Appends the encoded command to `buffer`.
    public static func encode(_ arguments: [String], into buffer: inout ByteBuffer) {
        let utf8 = arguments.map { Array($0.utf8) }
        let lengths = utf8.map { $0.count }
        // Each argument's bytes must stay alive while hiredis reads them; keep them in one contiguous block.
        var storage: [UInt8] = []
        storage.reserveCapacity(lengths.reduce(0, +))
        for a in utf8 { storage.append(contentsOf: a) }
        storage.withUnsafeBufferPointer { block in
            let base = UnsafeRawPointer(block.baseAddress ?? UnsafePointer(bitPattern: 1)!)
            var offsets: [UnsafePointer<CChar>?] = []
            offsets.reserveCapacity(lengths.count)
            var offset = 0
            for len in lengths {
                offsets.append((base + offset).assumingMemoryBound(to: CChar.self))
                offset += len
            }
            var target: UnsafeMutablePointer<CChar>? = nil
            let length = offsets.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvlen in
                    redisFormatCommandArgv(&target, Int32(arguments.count), argv.baseAddress, argvlen.baseAddress)
                }
            }
            guard length >= 0, let target else { fatalError("hiredis: out of memory formatting a command") }
            defer { redisFreeCommand(target) }
            buffer.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(length)))
        }
    }

    /// The encoded command as a new buffer.
    public static func encode(_ arguments: [String], allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        encode(arguments, into: &buffer)
        return buffer
    }
}

import CLibFuzzer
import Glibc
import NIOCore
import NIOEmbedded
import RedisClient

/// A decoder that refused everything would pass every check below: make sure it decodes.
var known = ByteBuffer(string: "*3\r\n$5\r\nhello\r\n*1\r\n:-2\r\n$-1\r\n")
precondition((try? RESPDecoder().feed(&known)) == [.array([.bulkString(Array("hello".utf8)), .array([.integer(-2)]), .null])], "RESPDecoder self-check")

/// SwiftPM gives this target a Swift main; it hands over to libFuzzer's driver.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzRESP(data, size) })

/// libFuzzer target: `RESPDecoder` (hiredis's reply reader as a NIO `ByteToMessageDecoder`).
///
/// Input: two bytes that choose how the rest is cut into reads, then the bytes "from Redis".
/// The same bytes are decoded three ways, and the three must agree:
/// - in one `feed` of the whole buffer;
/// - through a `ByteToMessageHandler` in an `EmbeddedChannel`, in reads of fuzzer-chosen sizes
///   (what a real connection sees: TCP cuts replies anywhere);
/// - one byte per `feed` (the most cuts there are).
/// Agreement: the same replies when the bytes are valid; an error in all three when they are
/// not, with the handler's replies a prefix of the byte-wise ones (a read that ends in an error
/// loses its complete replies too; the connection is closed then anyway). Every reply, written
/// back as RESP, decodes to itself. A broken invariant calls `fatalError` (a crash to libFuzzer).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard count >= 2, let start else { return 0 }
    let all = UnsafeRawBufferPointer(start: start, count: count)
    var seed = UInt32(all[0]) << 8 | UInt32(all[1]) | 1
    let input = Array(all[2...])

    let whole = decodeWhole(input)
    let chunked = decodeChunked(input, seed: &seed)
    let bytewise = input.count <= 2048 ? decodeBytewise(input) : nil

    switch whole {
    case .success(let values):
        guard case .success(let c) = chunked, c == values else { fail("split reads disagree with one read: \(chunked) vs \(values)", input) }
        if let bytewise, bytewise.error != nil { fail("byte-wise feed failed where one read did not", input) }
        if let bytewise, bytewise.values != values { fail("byte-wise feed disagrees with one read", input) }
        for value in values {
            touch(value)
            checkRoundTrip(value, input)
        }
    case .failure:
        guard case .failure(let partial) = chunked else { fail("split reads succeeded where one read failed", input) }
        if let bytewise {
            if bytewise.error == nil { fail("byte-wise feed succeeded where one read failed", input) }
            if !bytewise.values.starts(with: partial.values) { fail("split reads delivered replies the byte-wise feed did not", input) }
        }
    }
    return 0
}

struct Partial: Error { var values: [RESPValue] }

func fail(_ what: String, _ input: [UInt8]) -> Never {
    let shown = String(decoding: input.prefix(300), as: UTF8.self).debugDescription
    fatalError("FuzzRESP: \(what); input (\(input.count) bytes): \(shown)")
}

func decodeWhole(_ input: [UInt8]) -> Result<[RESPValue], any Error> {
    let decoder = RESPDecoder()
    var buffer = ByteBuffer(bytes: input)
    do {
        let values = try decoder.feed(&buffer)
        if buffer.readableBytes != 0 { fail("feed left bytes unread", input) }
        return .success(values)
    } catch {
        // A reader in error stays in error: more bytes must not bring it back (or crash it).
        var more = ByteBuffer(string: "+OK\r\n")
        if (try? decoder.feed(&more)) != nil { fail("the reader recovered after an error", input) }
        return .failure(error)
    }
}

/// Reads cut at sizes from a small xorshift generator: mostly short (1-16 bytes), sometimes long.
func decodeChunked(_ input: [UInt8], seed: inout UInt32) -> Result<[RESPValue], Partial> {
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder()))
    var values: [RESPValue] = []
    func collect() {
        while let value = try? channel.readInbound(as: RESPValue.self) { values.append(value) }
    }
    var offset = 0
    do {
        while offset < input.count {
            seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5
            let size = seed % 8 == 0 ? Int((seed >> 8) % 512) + 1 : Int((seed >> 8) % 16) + 1
            let end = min(input.count, offset + size)
            try channel.writeInbound(ByteBuffer(bytes: input[offset..<end]))
            collect()
            offset = end
        }
        _ = try channel.finish()
        collect()
        return .success(values)
    } catch {
        collect()
        _ = try? channel.finish()
        return .failure(Partial(values: values))
    }
}

func decodeBytewise(_ input: [UInt8]) -> (values: [RESPValue], error: (any Error)?) {
    let decoder = RESPDecoder()
    var values: [RESPValue] = []
    for byte in input {
        var buffer = ByteBuffer(bytes: [byte])
        do { values += try decoder.feed(&buffer) } catch { return (values, error) }
    }
    return (values, nil)
}

/// The accessors callers use on every reply: they may answer nil, never trap.
func touch(_ value: RESPValue) {
    _ = value.string
    _ = value.int
    _ = value.isNull
    for element in value.array ?? [] { touch(element) }
}

// MARK: round trip

func checkRoundTrip(_ value: RESPValue, _ input: [UInt8]) {
    var bytes: [UInt8] = []
    encode(value, into: &bytes)
    var buffer = ByteBuffer(bytes: bytes)
    guard let again = try? RESPDecoder().feed(&buffer), again == [value] else {
        fail("a reply written back as RESP does not decode to itself: \(value)", input)
    }
}

func encode(_ value: RESPValue, into out: inout [UInt8]) {
    func line(_ prefix: Character, _ text: String) {
        out.append(contentsOf: "\(prefix)\(text)\r\n".utf8)
    }
    switch value {
    case .simpleString(let s): line("+", s)
    case .error(let s): line("-", s)
    case .integer(let n): line(":", String(n))
    case .null: line("$", "-1")
    case .bulkString(let b):
        line("$", String(b.count))
        out.append(contentsOf: b)
        out.append(contentsOf: [13, 10])
    case .array(let items):
        line("*", String(items.count))
        for item in items { encode(item, into: &out) }
    }
}

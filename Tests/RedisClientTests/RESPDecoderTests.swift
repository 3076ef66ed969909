import NIOCore
import NIOEmbedded
import NIOTestUtils
import RedisClient
import Testing

@Suite("RESPDecoder")
struct RESPDecoderTests {
    private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
    private func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }
    private func bulk(_ text: String) -> RESPValue { .bulkString(Array(text.utf8)) }

    /// Runs NIOTestUtils' verifier: each input whole, byte by byte, and all of them in one buffer.
    private func verify(_ pairs: [(ByteBuffer, [RESPValue])]) throws {
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs, decoderFactory: { RESPDecoder() })
    }

    @Test("simple strings and errors decode byte by byte")
    func simpleStringsAndErrors() throws {
        try verify([
            (buffer("+OK\r\n"), [.simpleString("OK")]),
            (buffer("+\r\n"), [.simpleString("")]),
            (buffer("+QUEUED with spaces\r\n"), [.simpleString("QUEUED with spaces")]),
            (buffer("-ERR unknown command 'FOO'\r\n"), [.error("ERR unknown command 'FOO'")]),
            (buffer("-NOSCRIPT No matching script\r\n"), [.error("NOSCRIPT No matching script")]),
        ])
    }

    @Test("integers decode byte by byte, including negative and 64-bit extremes")
    func integers() throws {
        try verify([
            (buffer(":0\r\n"), [.integer(0)]),
            (buffer(":42\r\n"), [.integer(42)]),
            (buffer(":-7\r\n"), [.integer(-7)]),
            (buffer(":9223372036854775807\r\n"), [.integer(Int64.max)]),
            (buffer(":-9223372036854775808\r\n"), [.integer(Int64.min)]),
        ])
    }

    @Test("bulk strings decode byte by byte: plain, empty, binary with CRLF inside, and null")
    func bulkStrings() throws {
        let binary: [UInt8] = [0x61, 0x0D, 0x0A, 0x00, 0xFF, 0x62]
        try verify([
            (buffer("$5\r\nhello\r\n"), [bulk("hello")]),
            (buffer("$0\r\n\r\n"), [.bulkString([])]),
            (buffer(Array("$6\r\n".utf8) + binary + Array("\r\n".utf8)), [.bulkString(binary)]),
            (buffer("$4\r\n\r\n\r\n\r\n"), [bulk("\r\n\r\n")]),
            (buffer("$-1\r\n"), [.null]),
        ])
    }

    @Test("arrays decode byte by byte: flat, nested, empty, with a null element, and null")
    func arrays() throws {
        try verify([
            (buffer("*2\r\n$3\r\nfoo\r\n:1\r\n"), [.array([bulk("foo"), .integer(1)])]),
            (buffer("*0\r\n"), [.array([])]),
            (buffer("*-1\r\n"), [.null]),
            (buffer("*3\r\n$1\r\na\r\n$-1\r\n-ERR x\r\n"), [.array([bulk("a"), .null, .error("ERR x")])]),
            (
                buffer("*3\r\n*2\r\n+a\r\n:-1\r\n*0\r\n*1\r\n*1\r\n$0\r\n\r\n"),
                [.array([.array([.simpleString("a"), .integer(-1)]), .array([]), .array([.array([.bulkString([])])])])]
            ),
            // A pub/sub message as Redis sends it.
            (
                buffer("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhi\r\n!\r\n"),
                [.array([bulk("message"), bulk("ch"), bulk("hi\r\n!")])]
            ),
        ])
    }

    @Test("several replies in one buffer all come out, in order")
    func severalRepliesInOneRead() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder()))
        try channel.writeInbound(buffer("+OK\r\n:1\r\n$3\r\nabc\r\n*1\r\n:2\r\n$-1\r\n-ERR no\r\n+PARTI"))
        var received: [RESPValue] = []
        while let value = try channel.readInbound(as: RESPValue.self) { received.append(value) }
        #expect(received == [.simpleString("OK"), .integer(1), bulk("abc"), .array([.integer(2)]), .null, .error("ERR no")])
        // The incomplete tail is kept and completed by the next read.
        try channel.writeInbound(buffer("AL\r\n"))
        #expect(try channel.readInbound(as: RESPValue.self) == .simpleString("PARTIAL"))
        #expect(try channel.readInbound(as: RESPValue.self) == nil)
        #expect(try channel.finish().isClean)
    }

    @Test("the feed API returns every complete reply and keeps an incomplete one")
    func feedReturnsCompleteReplies() throws {
        let decoder = RESPDecoder()
        var first = buffer("$5\r\nhel")
        #expect(try decoder.feed(&first) == [])
        #expect(first.readableBytes == 0)
        var second = buffer("lo\r\n:3\r\n")
        #expect(try decoder.feed(&second) == [bulk("hello"), .integer(3)])
    }

    @Test("invalid bytes raise RedisError with code protocolError")
    func invalidBytesRaiseProtocolError() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder()))
        let error = #expect(throws: RedisError.self) {
            try channel.writeInbound(self.buffer("?x\r\n"))
        }
        #expect(error?.code == .protocolError)
        #expect(try channel.readInbound(as: RESPValue.self) == nil)
        _ = try? channel.finish()

        // The same through the feed API, after a valid reply in the same buffer.
        let decoder = RESPDecoder()
        var bytes = buffer("+OK\r\n?x\r\n")
        let direct = #expect(throws: RedisError.self) { try decoder.feed(&bytes) }
        #expect(direct?.code == .protocolError)
        #expect(direct?.message.isEmpty == false)
    }

    @Test("a bad length raises RedisError with code protocolError")
    func badLengthRaisesProtocolError() throws {
        let decoder = RESPDecoder()
        var bytes = buffer("$abc\r\n")
        let error = #expect(throws: RedisError.self) { try decoder.feed(&bytes) }
        #expect(error?.code == .protocolError)
    }
}

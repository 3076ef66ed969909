import NIOCore
import NIOEmbedded
import RedisClient
import Testing

/// Regression tests for what Fuzz/FuzzRESP found: hiredis allocates an array's element pointers
/// when it reads the header, so a few bytes could ask for gigabytes.
@Suite("RESPDecoder bounds")
struct RESPDecoderBoundsTests {
    private func decode(_ text: String, limit: Int = RESPDecoder.defaultMaxReplyElements) throws -> [RESPValue] {
        var buffer = ByteBuffer(string: text)
        return try RESPDecoder(maxReplyElements: limit).feed(&buffer)
    }

    @Test("an array header of 2^31 - 1 elements is a protocol error, not a 16 GiB allocation")
    func hugeArrayHeader() throws {
        let error = #expect(throws: RedisError.self) { _ = try decode("*2147483647\r\n") }
        #expect(error?.code == .protocolError)
        #expect(error?.message.contains("array elements") == true)
    }

    @Test("the bound counts every array of one reply: nested and sibling headers add up")
    func nestedArraysShareTheBudget() throws {
        #expect(try decode("*2\r\n*1\r\n:1\r\n*1\r\n:2\r\n", limit: 4) == [.array([.array([.integer(1)]), .array([.integer(2)])])])
        #expect(throws: RedisError.self) { _ = try decode("*2\r\n*1\r\n:1\r\n*2\r\n:2\r\n:3\r\n", limit: 4) }
        #expect(throws: RedisError.self) { _ = try decode("*1\r\n*9000000\r\n*9000000\r\n") }
    }

    @Test("the budget is per reply: many replies in one read each get the whole of it")
    func budgetResetsPerReply() throws {
        let reply = "*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n"
        #expect(try decode(String(repeating: reply, count: 5), limit: 4).count == 5)
    }

    @Test("through the handler, split anywhere, an oversized reply fails the channel")
    func handlerFailsOnOversizedReply() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder(maxReplyElements: 3)))
        try channel.writeInbound(ByteBuffer(string: "*3\r\n:1\r\n:2"))
        try channel.writeInbound(ByteBuffer(string: "\r\n:3\r\n*"))
        #expect(try channel.readInbound(as: RESPValue.self) == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(throws: RedisError.self) { try channel.writeInbound(ByteBuffer(string: "4\r\n")) }
        _ = try? channel.finish()
    }
}

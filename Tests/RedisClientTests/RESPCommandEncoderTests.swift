import CHiredis
import NIOCore
import RedisClient
import TestSupport
import Testing

@Suite("RESPCommandEncoder")
struct RESPCommandEncoderTests {
    private func encoded(_ arguments: [String]) -> [UInt8] {
        let buffer = RESPCommandEncoder.encode(arguments)
        return Array(buffer.readableBytesView)
    }

    @Test("SET k v is encoded as a RESP array of bulk strings")
    func setCommand() {
        #expect(encoded(["SET", "k", "v"]) == Array("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".utf8))
        #expect(encoded(["PING"]) == Array("*1\r\n$4\r\nPING\r\n".utf8))
    }

    @Test("arguments with spaces stay one argument each")
    func spaces() {
        #expect(encoded(["SET", "my key", "hello world"]) == Array("*3\r\n$3\r\nSET\r\n$6\r\nmy key\r\n$11\r\nhello world\r\n".utf8))
    }

    @Test("empty strings are encoded as zero-length bulk strings")
    func emptyStrings() {
        #expect(encoded(["SET", "k", ""]) == Array("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".utf8))
        #expect(encoded(["", ""]) == Array("*2\r\n$0\r\n\r\n$0\r\n\r\n".utf8))
    }

    @Test("UTF-8 arguments are sized in bytes, not characters")
    func utf8() {
        // "héllo €" is 7 characters and 10 bytes; "🙂" is 4 bytes.
        #expect(encoded(["ECHO", "héllo €"]) == Array("*2\r\n$4\r\nECHO\r\n$10\r\nhéllo €\r\n".utf8))
        #expect(encoded(["🙂"]) == Array("*1\r\n$4\r\n🙂\r\n".utf8))
    }

    @Test("CRLF, percent signs and NUL inside arguments are passed through as data")
    func specialCharacters() {
        #expect(encoded(["SET", "a\r\nb", "%s %d\0"]) == Array("*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$6\r\n%s %d\0\r\n".utf8))
    }

    @Test("encode(into:) appends after what the buffer already holds")
    func appends() {
        var buffer = ByteBuffer(string: "prefix")
        RESPCommandEncoder.encode(["GET", "k"], into: &buffer)
        RESPCommandEncoder.encode(["DEL", "k"], into: &buffer)
        #expect(String(buffer: buffer) == "prefix*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n")
    }

    @Test("the same bytes as hiredis's redisFormatCommandArgv, for commands of every shape")
    func sameAsHiredis() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [String] = ["a", "Z", "0", " ", "\r", "\n", "\0", "%", "$", "*", "é", "€", "🙂"]
        var cases: [[String]] = [["PING"], [""], ["FCALL", "send_1", "4"] + (0..<20).map { "argument \($0)" },
                                 ["SET", String(repeating: "x", count: 70_000)]]
        for _ in 0..<300 {
            let count = Int.random(in: 1...12, using: &generator)
            cases.append((0..<count).map { _ in
                (0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }.joined()
            })
        }
        for arguments in cases {
            #expect(encoded(arguments) == hiredisFormat(arguments), "\(arguments)")
        }
    }

    /// hiredis's own encoding of a command, the reference.
    private func hiredisFormat(_ arguments: [String]) -> [UInt8] {
        let bytes = arguments.map { Array($0.utf8) }
        let buffers = bytes.map { b -> UnsafeMutableBufferPointer<CChar> in
            let p = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(b.count, 1))
            for (i, byte) in b.enumerated() { p[i] = CChar(bitPattern: byte) }
            return p
        }
        defer { buffers.forEach { $0.deallocate() } }
        var argv: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0.baseAddress) }
        let lengths = bytes.map(\.count)
        var target: UnsafeMutablePointer<CChar>? = nil
        let length = redisFormatCommandArgv(&target, Int32(arguments.count), &argv, lengths)
        guard length >= 0, let target else { return [] }
        defer { redisFreeCommand(target) }
        return Array(UnsafeRawBufferPointer(start: target, count: Int(length)))
    }

    @Test("encoded commands decode back to the same arguments")
    func roundTripThroughDecoder() throws {
        let arguments = ["SET", "key with space", "", "héllo €\r\n", String(repeating: "x", count: 10_000)]
        var buffer = RESPCommandEncoder.encode(arguments)
        let values = try RESPDecoder().feed(&buffer)
        #expect(values == [.array(arguments.map { .bulkString(Array($0.utf8)) })])
    }

    @Test("awkward arguments reach a real Redis intact")
    func awkwardArgumentsReachRedis() async throws {
        let key = TestEnvironment.uniqueKeyPrefix() + "awkward key é"
        let value = "line 1\r\nline 2 \"quoted\" 'single' ; -- € 🙂 %n"
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        try await connection.send(["SET", key, value])
        let empty = key + ":empty"
        try await connection.send(["SET", empty, ""])
        #expect(try await connection.send(["GET", key]) == .bulkString(Array(value.utf8)))
        #expect(try await connection.send(["GET", empty]) == .bulkString([]))
        #expect(try await connection.send(["STRLEN", key]) == .integer(Int64(value.utf8.count)))
        try await connection.send(["DEL", key, empty])
        await connection.close()
    }
}

import RedisClient
import TestSupport
import Testing

/// Serialized: the 10,000-command tests keep an event loop busy, and the command-timeout test
/// must not have its quick commands queued behind them.
@Suite("RedisConnection pipelining", .serialized)
struct RedisPipelineTests {
    static let count = 10_000

    @Test("10,000 commands in one pipeline call come back in order")
    func oneLargePipeline() async throws {
        let counter = TestEnvironment.uniqueKeyPrefix() + "counter"
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        let replies = try await withTimeout(.seconds(30), "a pipeline of 10,000 INCR") {
            try await connection.pipeline(Array(repeating: ["INCR", counter], count: Self.count))
        }
        #expect(replies.count == Self.count)
        #expect(replies == (1...Self.count).map { .integer(Int64($0)) })
        #expect(try await connection.send(["GET", counter]) == .bulkString(Array(String(Self.count).utf8)))
        try await connection.send(["DEL", counter])
        await connection.close()
    }

    @Test("a pipeline of SET/GET pairs returns each GET its own value, and error replies in place")
    func setGetPairs() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        var commands: [[String]] = []
        for i in 0..<1_000 {
            commands.append(["SET", prefix + "k\(i)", "value-\(i)"])
            commands.append(["GET", prefix + "k\(i)"])
        }
        commands.append(["INCR", prefix + "k0"]) // not an integer: an error reply, not a thrown error
        commands.append(["ECHO", "after the error"])
        let sent = commands
        let replies = try await withTimeout(.seconds(30), "a pipeline of SET/GET pairs") {
            try await connection.pipeline(sent)
        }
        try #require(replies.count == commands.count)
        for i in 0..<1_000 {
            #expect(replies[2 * i] == .simpleString("OK"))
            #expect(replies[2 * i + 1] == .bulkString(Array("value-\(i)".utf8)))
        }
        guard case .error(let message) = replies[2_000] else {
            Issue.record("expected an error reply, got \(replies[2_000])")
            return
        }
        #expect(message.hasPrefix("ERR"))
        #expect(replies[2_001] == .bulkString(Array("after the error".utf8)))
        #expect(try await connection.pipeline([]) == [])
        try await connection.send(["DEL"] + (0..<1_000).map { prefix + "k\($0)" })
        await connection.close()
    }

    @Test("10,000 concurrent INCRs on one connection each get one reply, 1...10000 in all")
    func concurrentIncrements() async throws {
        let counter = TestEnvironment.uniqueKeyPrefix() + "counter"
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        let replies = try await withTimeout(.seconds(30), "10,000 concurrent INCR") {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<Self.count {
                    group.addTask { try await connection.send(["INCR", counter]).int ?? -1 }
                }
                var replies: [Int] = []
                replies.reserveCapacity(Self.count)
                for try await reply in group { replies.append(reply) }
                return replies
            }
        }
        #expect(replies.count == Self.count)
        #expect(Set(replies) == Set(1...Self.count))
        #expect(try await connection.send(["GET", counter]).int == Self.count)
        try await connection.send(["DEL", counter])
        await connection.close()
    }

    @Test("10,000 concurrent ECHOs on one connection each get their own argument back")
    func concurrentRepliesMatchRequests() async throws {
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        let mismatches = try await withTimeout(.seconds(30), "10,000 concurrent ECHO") {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<Self.count {
                    group.addTask {
                        let reply = try await connection.send(["ECHO", "message \(i)"])
                        return reply == .bulkString(Array("message \(i)".utf8))
                    }
                }
                var mismatches = 0
                for try await matched in group where !matched { mismatches += 1 }
                return mismatches
            }
        }
        #expect(mismatches == 0)
        await connection.close()
    }

    @Test("an error reply is thrown by send as RedisError serverError and the connection goes on")
    func errorReplyThrows() async throws {
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        let error = await #expect(throws: RedisError.self) {
            try await connection.send(["NOSUCHCOMMAND", "x"])
        }
        #expect(error?.code == .serverError)
        #expect(error?.serverErrorPrefix == "ERR")
        #expect(try await connection.send(["PING"]) == .simpleString("PONG"))
        #expect(connection.isActive)
        await connection.close()
        #expect(!connection.isActive)
    }

    @Test("a command without a reply within commandTimeout fails with timeout and drops the connection")
    func commandTimeout() async throws {
        var configuration = try testConfiguration()
        configuration.commandTimeout = .seconds(1)
        let key = TestEnvironment.uniqueKeyPrefix() + "never"
        let connection = try await RedisConnection.connect(configuration: configuration)
        // Quick commands well inside the timeout are unaffected, also after waiting longer than it.
        #expect(try await connection.send(["PING"]) == .simpleString("PONG"))
        try await Task.sleep(for: .milliseconds(1_200))
        #expect(try await connection.send(["PING"]) == .simpleString("PONG"))

        let start = ContinuousClock.now
        let error = await #expect(throws: RedisError.self) {
            try await withTimeout(.seconds(5), "a blocked command to time out") {
                try await connection.send(["BLPOP", key, "10"])
            }
        }
        let waited = ContinuousClock.now - start
        #expect(error?.code == .timeout)
        #expect(waited >= .milliseconds(900) && waited < .seconds(5), "waited \(waited)")
        try await waitUntil("the timed-out connection to close") { !connection.isActive }

        // A pooled connection that timed out is replaced on next use.
        let client = RedisClient(configuration: configuration, poolSize: 1)
        let pooled = try await client.connection()
        let timedOut = await #expect(throws: RedisError.self) { try await client.send("BLPOP", key, "10") }
        #expect(timedOut?.code == .timeout)
        try await waitUntil("the pooled connection to close") { !pooled.isActive }
        #expect(try await client.send("PING") == .simpleString("PONG"))
        #expect(try await client.connection() !== pooled)
        await client.close()
    }

    @Test("commands in flight fail with connectionClosed when the server closes the connection")
    func inFlightCommandsFailOnClose() async throws {
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        let id = try #require(try await connection.send(["CLIENT", "ID"]).int)
        // A blocking call that would wait 10 s, then the connection is killed from another one.
        let blocked = Task { try await connection.send(["BLPOP", TestEnvironment.uniqueKeyPrefix() + "none", "10"]) }
        try await Task.sleep(for: .milliseconds(100))
        let killed = try await withAdminConnection { try await $0.send(["CLIENT", "KILL", "ID", String(id)]) }
        #expect(killed == .integer(1))
        let error = await #expect(throws: RedisError.self) {
            try await withTimeout(.seconds(5), "the blocked command to fail") { try await blocked.value }
        }
        #expect(error?.code == .connectionClosed)
        let after = await #expect(throws: RedisError.self) {
            try await withTimeout(.seconds(5), "a command on the closed connection to fail") { try await connection.send(["PING"]) }
        }
        #expect(after?.code == .connectionClosed)
    }

    @Test("a command submitted after the connection closed fails with connectionClosed instead of waiting forever")
    func submitAfterClose() async throws {
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        #expect(try await connection.send(["PING"]) == .simpleString("PONG"))
        await connection.close()
        let error = await #expect(throws: RedisError.self) {
            try await withTimeout(.seconds(5), "the command to fail") { try await connection.submit([["PING"], ["PING"]]).get() }
        }
        #expect(error?.code == .connectionClosed)
    }

    @Test("an empty submit answers at once and leaves the connection in step")
    func emptySubmit() async throws {
        let connection = try await RedisConnection.connect(configuration: testConfiguration())
        #expect(try await connection.submit([]).get() == [])
        #expect(try await withTimeout(.seconds(5), "the next command") { try await connection.send(["PING"]) } == .simpleString("PONG"))
        await connection.close()
    }
}

import NIOCore
import RedisClient
import TestSupport
import Testing

/// `RedisConnection.submitBatched`: the calls of one event-loop tick go to Redis as one FCALL, and
/// each call gets its own part of the reply.
@Suite("RedisConnection batched calls", .serialized)
struct RedisBatchTests {
    /// A function library of its own: `batch_<n>` answers each call (1 key and 1 argument, after
    /// the shared ARGV[1]) with {its place in the batch, the batch's size, ARGV[1], its key, its
    /// argument}; an argument "boom" makes the whole call fail.
    struct Library {
        let name: String
        let function: String
        let connection: RedisConnection

        static func load(maxBatchCalls: Int = RedisConfiguration.defaultMaxBatchCalls,
                         maxBatchesInFlight: Int = RedisConfiguration.defaultMaxBatchesInFlight) async throws -> Library {
            let tag = String(UInt64.random(in: 0...UInt64.max), radix: 36)
            var configuration = try testConfiguration()
            configuration.maxBatchCalls = maxBatchCalls
            configuration.maxBatchesInFlight = maxBatchesInFlight
            let library = Library(name: "batchtest_" + tag, function: "batch_" + tag,
                                  connection: try await RedisConnection.connect(configuration: configuration))
            let code = """
                #!lua name=\(library.name)
                redis.register_function('\(library.function)', function(KEYS, ARGV)
                  local out = {}
                  for i = 1, #KEYS do
                    if ARGV[1 + i] == 'boom' then return redis.error_reply('boom') end
                    out[i] = {i, #KEYS, ARGV[1], KEYS[i], ARGV[1 + i]}
                  end
                  return out
                end)
                """
            try await library.connection.send(["FUNCTION", "LOAD", code])
            return library
        }

        /// Submits the calls from the connection's event loop, within one tick; their replies in order.
        func submitInOneTick(_ calls: [(shared: String, key: String, argument: String)]) async throws -> [RESPValue] {
            let connection = self.connection, function = self.function
            let futures = try await connection.eventLoop.submit {
                calls.map { connection.submitBatched(function: function, shared: [$0.shared], keys: [$0.key], arguments: [$0.argument]) }
            }.get()
            var replies: [RESPValue] = []
            for future in futures { replies.append(try await future.get()) }
            return replies
        }

        /// Submits one call from the connection's event loop, in a tick of its own (the tick's
        /// write has run when this returns); the future holds its reply.
        func submitAlone(_ key: String) async throws -> EventLoopFuture<RESPValue> {
            let connection = self.connection, function = self.function
            return try await connection.eventLoop.submit {
                connection.submitBatched(function: function, shared: ["s"], keys: [key], arguments: ["a"])
            }.get()
        }

        func unload() async {
            _ = try? await connection.send(["FUNCTION", "DELETE", name])
            await connection.close()
        }
    }

    /// A reply of the test function as (place, size, shared, key, argument).
    static func parts(_ reply: RESPValue) -> (Int, Int, String, String, String)? {
        guard let a = reply.array, a.count == 5, let place = a[0].int, let size = a[1].int,
              let shared = a[2].string, let key = a[3].string, let argument = a[4].string else { return nil }
        return (place, size, shared, key, argument)
    }

    @Test("calls of one tick go out as one FCALL; each gets its own reply, in order; other leading arguments make a batch of their own")
    func oneTickOneCall() async throws {
        let library = try await Library.load()
        defer { Task { await library.unload() } }
        let before = (CallBatch.written.load(ordering: .relaxed), CallBatch.callsWritten.load(ordering: .relaxed))
        let calls = (1...5).map { (shared: "s", key: "k\($0)", argument: "a\($0)") } + [(shared: "other", key: "k6", argument: "a6")]
        let replies = try await library.submitInOneTick(calls).map(Self.parts)
        for n in 1...5 {
            let reply = try #require(replies[n - 1])
            #expect(reply == (n, 5, "s", "k\(n)", "a\(n)"))
        }
        #expect(try #require(replies[5]) == (1, 1, "other", "k6", "a6"))
        #expect(CallBatch.written.load(ordering: .relaxed) - before.0 == 2)
        #expect(CallBatch.callsWritten.load(ordering: .relaxed) - before.1 == 6)
    }

    @Test("more calls in one tick than a batch holds: several FCALLs of at most the maximum, every reply in place")
    func overTheMaximum() async throws {
        let library = try await Library.load()
        defer { Task { await library.unload() } }
        let count = RedisConfiguration.defaultMaxBatchCalls + 8
        let replies = try await library.submitInOneTick((1...count).map { (shared: "s", key: "k\($0)", argument: "a\($0)") }).map(Self.parts)
        for n in 1...count {
            let reply = try #require(replies[n - 1])
            let place = n <= RedisConfiguration.defaultMaxBatchCalls ? n : n - RedisConfiguration.defaultMaxBatchCalls
            let size = n <= RedisConfiguration.defaultMaxBatchCalls ? RedisConfiguration.defaultMaxBatchCalls : 8
            #expect(reply == (place, size, "s", "k\(n)", "a\(n)"))
        }
    }

    @Test("a connection configured for batches of 1 sends each call alone")
    func batchesOfOne() async throws {
        let library = try await Library.load(maxBatchCalls: 1)
        defer { Task { await library.unload() } }
        let replies = try await library.submitInOneTick((1...3).map { (shared: "s", key: "k\($0)", argument: "a\($0)") }).map(Self.parts)
        for n in 1...3 {
            let reply = try #require(replies[n - 1])
            #expect(reply == (1, 1, "s", "k\(n)", "a\(n)"))
        }
    }

    @Test("an error reply to the batch (the function raised one, or is not there) is every call's reply")
    func errorReplyToAll() async throws {
        let library = try await Library.load()
        defer { Task { await library.unload() } }
        let replies = try await library.submitInOneTick([("s", "k1", "a1"), ("s", "k2", "boom"), ("s", "k3", "a3")])
        #expect(replies.count == 3)
        for reply in replies {
            guard case .error(let message) = reply else { Issue.record("expected an error reply, got \(reply)"); continue }
            #expect(message.contains("boom"))
        }
        let missing = Library(name: library.name, function: library.function + "_missing", connection: library.connection)
        for reply in try await missing.submitInOneTick([("s", "k1", "a1"), ("s", "k2", "a2")]) {
            #expect(RedisScripts.isMissingFunction(reply), "\(reply)")
        }
    }

    @Test("while a batch is unanswered, the calls of later ticks wait and go out together in one FCALL when its reply comes; 0 never waits")
    func callsWaitForTheBatchInFlight() async throws {
        for limit in [1, 0] {
            let library = try await Library.load(maxBatchesInFlight: limit)
            let control = try await RedisConnection.connect(configuration: try testConfiguration())
            // Redis holds the first FCALL (a function without the no-writes flag counts as a write).
            try await control.send(["CLIENT", "PAUSE", "300", "WRITE"])
            let first = try await library.submitAlone("k1")
            var later: [EventLoopFuture<RESPValue>] = []
            for n in 2...4 { later.append(try await library.submitAlone("k\(n)")) }
            #expect(Self.parts(try await first.get())?.1 == 1)
            var replies: [(Int, Int, String, String, String)] = []
            for future in later { replies.append(try #require(Self.parts(try await future.get()))) }
            if limit == 1 {
                #expect(replies.map(\.0) == [1, 2, 3], "one FCALL, in order")
                #expect(replies.map(\.1) == [3, 3, 3])
            } else {
                #expect(replies.map(\.1) == [1, 1, 1], "each tick's call alone")
            }
            #expect(replies.map(\.3) == ["k2", "k3", "k4"])
            await control.close()
            await library.unload()
        }
    }

    @Test("calls waiting behind an unanswered batch fail, not hang, when the connection drops")
    func waitingCallsFailWithTheConnection() async throws {
        let library = try await Library.load(maxBatchesInFlight: 1)
        let control = try await RedisConnection.connect(configuration: try testConfiguration())
        let id = try #require(try await library.connection.send(["CLIENT", "ID"]).int)
        try await control.send(["CLIENT", "PAUSE", "300", "WRITE"])
        let first = try await library.submitAlone("k1")
        let waiting = try await library.submitAlone("k2")
        try await control.send(["CLIENT", "KILL", "ID", String(id)])
        for future in [first, waiting] {
            await #expect(throws: RedisError.self) { try await future.get() }
        }
        await control.close()
        await library.unload()
    }
}

import RedisClient
import TestSupport
import Testing

@Suite("RedisScripts")
struct RedisScriptsTests {
    static let sources = [
        "echo": "return ARGV[1]",
        "keyed": "return redis.call('INCRBY', KEYS[1], ARGV[1])",
        "fail": "return redis.error_reply('boom')",
    ]

    @Test("loadAll then run calls the scripts by digest")
    func loadAndRun() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 2)
        let scripts = RedisScripts(sources: Self.sources)
        try await scripts.loadAll(on: client)
        #expect(try await scripts.run("echo", keys: [], arguments: ["hi é"], on: client) == .bulkString(Array("hi é".utf8)))
        #expect(try await scripts.run("keyed", keys: [prefix + "n"], arguments: ["5"], on: client) == .integer(5))
        #expect(try await scripts.run("keyed", keys: [prefix + "n"], arguments: ["2"], on: client) == .integer(7))
        // The digest used is the one Redis knows for this source.
        let sha = try #require(try await client.send("SCRIPT", "LOAD", Self.sources["echo"]!).string)
        #expect(try await client.send("EVALSHA", sha, "0", "direct") == .bulkString(Array("direct".utf8)))
        try await client.send("DEL", prefix + "n")
        await client.close()
    }

    @Test("run reloads a script after SCRIPT FLUSH (NOSCRIPT) and callers never see it")
    func reloadsAfterFlush() async throws {
        // A private server: flushing the shared server's script cache would disturb other tests.
        let server = try PrivateRedisServer()
        defer { server.stop() }
        try await server.start()
        let client = RedisClient(configuration: server.configuration, poolSize: 1)
        let scripts = RedisScripts(sources: Self.sources)
        try await scripts.loadAll(on: client)
        #expect(try await scripts.run("echo", keys: [], arguments: ["one"], on: client) == .bulkString(Array("one".utf8)))

        #expect(try await client.send("SCRIPT", "FLUSH") == .simpleString("OK"))
        let sha = try #require(try await withAdminConnection { try await $0.send(["SCRIPT", "LOAD", Self.sources["echo"]!]).string })
        #expect(try await client.send("SCRIPT", "EXISTS", sha) == .array([.integer(0)]))
        let flushed = await #expect(throws: RedisError.self) { try await client.send("EVALSHA", sha, "0", "x") }
        #expect(flushed?.serverErrorPrefix == "NOSCRIPT")

        #expect(try await scripts.run("echo", keys: [], arguments: ["two"], on: client) == .bulkString(Array("two".utf8)))
        #expect(try await client.send("SCRIPT", "EXISTS", sha) == .array([.integer(1)]))
        #expect(try await scripts.run("echo", keys: [], arguments: ["three"], on: client) == .bulkString(Array("three".utf8)))
        await client.close()
    }

    @Test("run loads a script on first use without loadAll")
    func runWithoutLoadAll() async throws {
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        let scripts = RedisScripts(sources: ["echo2": "return {ARGV[1], tonumber(ARGV[2]) * 2}"])
        #expect(try await scripts.run("echo2", keys: [], arguments: ["x", "21"], on: client) == .array([.bulkString(Array("x".utf8)), .integer(42)]))
        await client.close()
    }

    @Test("an error the script raises surfaces as RedisError serverError")
    func scriptErrorIsServerError() async throws {
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        let scripts = RedisScripts(sources: Self.sources)
        try await scripts.loadAll(on: client)
        let error = await #expect(throws: RedisError.self) {
            try await scripts.run("fail", keys: [], arguments: [], on: client)
        }
        #expect(error?.code == .serverError)
        #expect(error?.message.contains("boom") == true)
        // The client is still usable after the error.
        #expect(try await scripts.run("echo", keys: [], arguments: ["ok"], on: client) == .bulkString(Array("ok".utf8)))
        await client.close()
    }

    @Test("an unknown script name throws invalidArgument")
    func unknownScript() async throws {
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        let scripts = RedisScripts(sources: Self.sources)
        let error = await #expect(throws: RedisError.self) {
            try await scripts.run("missing", keys: [], arguments: [], on: client)
        }
        #expect(error?.code == .invalidArgument)
        #expect(throws: RedisError.self) { try scripts.evalCommand("missing", keys: [], arguments: []) }
        await client.close()
    }

    @Test("evalCommand gives an EVAL that runs the same script inside a pipeline")
    func evalCommandInPipeline() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        let scripts = RedisScripts(sources: Self.sources)
        let command = try scripts.evalCommand("keyed", keys: [prefix + "p"], arguments: ["3"])
        #expect(command == ["EVAL", Self.sources["keyed"]!, "1", prefix + "p", "3"])
        #expect(try await client.pipeline([command, command]) == [.integer(3), .integer(6)])
        try await client.send("DEL", prefix + "p")
        await client.close()
    }

    @Test("a prelude is one chunk with each script: its locals are the script's; digest and EVAL are of the combined text")
    func preludeIsPrepended() async throws {
        let server = try PrivateRedisServer()
        defer { server.stop() }
        try await server.start()
        let client = RedisClient(configuration: server.configuration, poolSize: 1)
        let prelude = "local lib = {}\nfunction lib.twice(x) return tonumber(x) * 2 end"
        let scripts = RedisScripts(sources: ["use": "return lib.twice(ARGV[1])"], prelude: prelude)
        #expect(scripts.sources["use"] == prelude + "\nreturn lib.twice(ARGV[1])")
        #expect(try await scripts.run("use", keys: [], arguments: ["21"], on: client) == .integer(42))
        let sha = try #require(try await client.send("SCRIPT", "LOAD", scripts.sources["use"]!).string)
        #expect(try await client.send("EVALSHA", sha, "0", "4") == .integer(8))
        // NOSCRIPT after a flush reloads the combined text
        #expect(try await client.send("SCRIPT", "FLUSH") == .simpleString("OK"))
        #expect(try await scripts.run("use", keys: [], arguments: ["5"], on: client) == .integer(10))
        // and the EVAL form of a pipeline carries the prelude too
        #expect(try await client.pipeline([try scripts.evalCommand("use", keys: [], arguments: ["1"])]) == [.integer(2)])
        await client.close()
    }

    @Test("RedisScripts(directory:) puts lua/lib/*.lua before every script of lua/")
    func readsPrelude() throws {
        let scripts = try RedisScripts(directory: TestEnvironment.repositoryRoot + "/lua")
        #expect(scripts.prelude.contains("local hd = {}"))
        #expect(!scripts.sources.keys.contains("hd"))
        for (name, source) in scripts.sources {
            #expect(source.hasPrefix(scripts.prelude), "\(name) runs without the prelude")
        }
    }

    @Test("RedisScripts(directory:) reads every .lua file of lua/")
    func readsDirectory() throws {
        let scripts = try RedisScripts(directory: TestEnvironment.repositoryRoot + "/lua")
        #expect(scripts.sources.keys.contains("ratelimit"))
        #expect(scripts.sources["ratelimit"]?.contains("PEXPIRE") == true)
    }

    @Test("ratelimit.lua: in hit mode with limit 3 the fourth hit waits; peek does not count")
    func rateLimit() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        let scripts = try RedisScripts(directory: TestEnvironment.repositoryRoot + "/lua")
        try await scripts.loadAll(on: client)
        let key = prefix + "rl:login:someone@example.com"
        func call(_ mode: String) async throws -> Int {
            try #require(try await scripts.run("ratelimit", keys: [key], arguments: [mode, "60000", "3"], on: client).int)
        }

        // Peeking an untouched counter: allowed, and nothing is counted.
        #expect(try await call("peek") == 0)
        #expect(try await call("peek") == 0)
        #expect(try await client.send("EXISTS", key) == .integer(0))

        #expect(try await call("hit") == 0)
        #expect(try await call("hit") == 0)
        #expect(try await call("peek") == 0)
        #expect(try await call("hit") == 0)
        #expect(try await client.send("GET", key).int == 3)
        // At the limit a peek already says "wait", still without counting.
        let peekWait = try await call("peek")
        #expect(peekWait > 0 && peekWait <= 60_000)
        #expect(try await client.send("GET", key).int == 3)

        let wait = try await call("hit")
        #expect(wait > 0 && wait <= 60_000)
        #expect(try await client.send("GET", key).int == 4)
        let ttl = try #require(try await client.send("PTTL", key).int)
        #expect(ttl > 0 && ttl <= 60_000)
        try await client.send("DEL", key)
        await client.close()
    }

    @Test("ratelimit.lua: several counters, the fullest one decides")
    func rateLimitSeveralKeys() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        let scripts = try RedisScripts(directory: TestEnvironment.repositoryRoot + "/lua")
        let (perUser, perIP) = (prefix + "rl:user", prefix + "rl:ip")
        func hit() async throws -> Int {
            try #require(try await scripts.run("ratelimit", keys: [perUser, perIP], arguments: ["hit", "60000", "5", "2"], on: client).int)
        }
        #expect(try await hit() == 0)
        #expect(try await hit() == 0)
        #expect(try await hit() > 0) // the IP limit (2) is passed, the user limit (5) is not
        #expect(try await client.send("GET", perUser).int == 3)
        #expect(try await client.send("GET", perIP).int == 3)
        try await client.send("DEL", perUser, perIP)
        await client.close()
    }
}

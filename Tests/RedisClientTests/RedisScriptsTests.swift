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

    @Test("loadAll then run calls the scripts as functions of one library named by its version")
    func loadAndRun() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 2)
        let scripts = RedisScripts(sources: Self.sources)
        try await scripts.loadAll(on: client)
        try await scripts.loadAll(on: client) // already there: fine
        #expect(try await scripts.run("echo", keys: [], arguments: ["hi é"], on: client) == .bulkString(Array("hi é".utf8)))
        #expect(try await scripts.run("keyed", keys: [prefix + "n"], arguments: ["5"], on: client) == .integer(5))
        #expect(try await scripts.run("keyed", keys: [prefix + "n"], arguments: ["2"], on: client) == .integer(7))
        // Redis knows them under the versioned names.
        #expect(scripts.library.hasPrefix("#!lua name=helpdesk_\(scripts.version)\n"))
        #expect(try await client.send("FCALL", "echo_" + scripts.version, "0", "direct") == .bulkString(Array("direct".utf8)))
        try await client.send("DEL", prefix + "n")
        await client.close()
    }

    @Test("another version of the scripts lives beside this one (a rolling deploy)")
    func versionsCoexist() async throws {
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        let old = RedisScripts(sources: ["echo": "return 'old ' .. ARGV[1]"])
        let new = RedisScripts(sources: ["echo": "return 'new ' .. ARGV[1]"])
        #expect(old.version != new.version)
        try await old.loadAll(on: client)
        try await new.loadAll(on: client)
        #expect(try await old.run("echo", keys: [], arguments: ["x"], on: client) == .bulkString(Array("old x".utf8)))
        #expect(try await new.run("echo", keys: [], arguments: ["x"], on: client) == .bulkString(Array("new x".utf8)))
        await client.close()
    }

    @Test("run loads the library again after FUNCTION FLUSH and callers never see it")
    func reloadsAfterFlush() async throws {
        // A private server: flushing the shared server's functions would disturb other tests.
        let server = try PrivateRedisServer()
        defer { server.stop() }
        try await server.start()
        let client = RedisClient(configuration: server.configuration, poolSize: 1)
        let scripts = RedisScripts(sources: Self.sources)
        try await scripts.loadAll(on: client)
        #expect(try await scripts.run("echo", keys: [], arguments: ["one"], on: client) == .bulkString(Array("one".utf8)))

        #expect(try await client.send("FUNCTION", "FLUSH") == .simpleString("OK"))
        let flushed = await #expect(throws: RedisError.self) { try await client.send("FCALL", scripts.functionName("echo"), "0", "x") }
        #expect(flushed.map { RedisScripts.isMissingFunction($0) } == true)

        #expect(try await scripts.run("echo", keys: [], arguments: ["two"], on: client) == .bulkString(Array("two".utf8)))
        #expect(try await scripts.run("echo", keys: [], arguments: ["three"], on: client) == .bulkString(Array("three".utf8)))
        await client.close()
    }

    @Test("run loads the library on first use without loadAll")
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
        #expect(throws: RedisError.self) { try scripts.command("missing", keys: [], arguments: []) }
        await client.close()
    }

    @Test("command gives the FCALL of a script for a pipeline")
    func commandInPipeline() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        let scripts = RedisScripts(sources: Self.sources)
        try await scripts.loadAll(on: client)
        let command = try scripts.command("keyed", keys: [prefix + "p"], arguments: ["3"])
        #expect(command == ["FCALL", "keyed_" + scripts.version, "1", prefix + "p", "3"])
        #expect(try await client.pipeline([command, command]) == [.integer(3), .integer(6)])
        try await client.send("DEL", prefix + "p")
        await client.close()
    }

    @Test("the prelude runs once at load; its locals are every script's; the call preamble runs per call")
    func preludeIsShared() async throws {
        let server = try PrivateRedisServer()
        defer { server.stop() }
        try await server.start()
        let client = RedisClient(configuration: server.configuration, poolSize: 1)
        let prelude = "local lib = {calls = 0}\nfunction lib.twice(x) return tonumber(x) * 2 end"
        let scripts = RedisScripts(sources: ["use": "return lib.twice(ARGV[1])", "count": "return lib.calls"],
                                   prelude: prelude, callPreamble: "lib.calls = lib.calls + 1")
        #expect(try await scripts.run("use", keys: [], arguments: ["21"], on: client) == .integer(42))
        #expect(try await scripts.run("count", keys: [], arguments: [], on: client) == .integer(2))
        // a flush loads the whole library again, prelude included
        #expect(try await client.send("FUNCTION", "FLUSH") == .simpleString("OK"))
        #expect(try await scripts.run("use", keys: [], arguments: ["5"], on: client) == .integer(10))
        await client.close()
    }

    @Test("RedisScripts(directory:) loads lua/lib/*.lua as the prelude of lua/'s scripts")
    func readsPrelude() async throws {
        let scripts = try RedisScripts(directory: TestEnvironment.repositoryRoot + "/lua")
        #expect(scripts.prelude.contains("local hd = {}"))
        #expect(!scripts.sources.keys.contains("hd"))
        #expect(!scripts.sources.keys.contains("protocol"))
        // Redis takes the library as it is (every script compiles, the prelude runs at load).
        let client = RedisClient(configuration: try testConfiguration(), poolSize: 1)
        try await scripts.loadAll(on: client)
        let listed = try await client.send("FUNCTION", "LIST", "LIBRARYNAME", scripts.libraryName)
        #expect(listed.array?.count == 1)
        await client.close()
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

import RedisClient
import Testing

@Suite("RedisConfiguration(url:)")
struct RedisConfigurationTests {
    @Test("parses a password, port and database: redis://:secret@host:7000/2")
    func passwordPortDatabase() throws {
        let configuration = try RedisConfiguration(url: "redis://:secret@host:7000/2")
        #expect(configuration.host == "host")
        #expect(configuration.port == 7000)
        #expect(configuration.password == "secret")
        #expect(configuration.username == nil)
        #expect(configuration.database == 2)
    }

    @Test("parses a user and password with the default port: redis://user:pw@h/0")
    func userAndPassword() throws {
        let configuration = try RedisConfiguration(url: "redis://user:pw@h/0")
        #expect(configuration.host == "h")
        #expect(configuration.port == 6379)
        #expect(configuration.username == "user")
        #expect(configuration.password == "pw")
        #expect(configuration.database == 0)
    }

    @Test("parses a bare host with every default: redis://h")
    func bareHost() throws {
        let configuration = try RedisConfiguration(url: "redis://h")
        #expect(configuration == RedisConfiguration(host: "h"))
        #expect(configuration.port == 6379)
        #expect(configuration.password == nil)
        #expect(configuration.username == nil)
        #expect(configuration.database == 0)
        #expect(try RedisConfiguration(url: "redis://h/") == RedisConfiguration(host: "h"))
    }

    @Test("decodes a percent-encoded password")
    func percentEncodedPassword() throws {
        let configuration = try RedisConfiguration(url: "redis://:p%40ss%3Aw@127.0.0.1:6391")
        #expect(configuration.password == "p@ss:w")
        #expect(configuration.port == 6391)
        // Decoded exactly once: "%25" is a literal percent sign, not the start of another escape.
        #expect(try RedisConfiguration(url: "redis://u%40x:a%2541@h").password == "a%41")
        #expect(try RedisConfiguration(url: "redis://u%40x:a%2541@h").username == "u@x")
    }

    @Test("rejects other schemes, a missing host and a bad database", arguments: [
        "http://h", "rediss://h", "h:6379", "redis://", "redis:///0", "redis://h/x", "redis://h/-1", "redis://h/1/2",
    ])
    func rejects(url: String) {
        let error = #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
        #expect(error?.code == .invalidArgument)
    }
}

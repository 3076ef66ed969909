import RedisClient
import TestSupport
import Testing

@Suite("RedisClient recovery")
struct RedisRecoveryTests {
    @Test("the same client works again after Redis is stopped and started on the same port")
    func healsWhenRedisComesBack() async throws {
        let key = TestEnvironment.uniqueKeyPrefix() + "k"
        let server = try PrivateRedisServer()
        defer { server.stop() }
        try await server.start()
        let client = RedisClient(configuration: server.configuration, poolSize: 2)
        #expect(try await client.send("SET", key, "before") == .simpleString("OK"))
        #expect(try await client.send("PING") == .simpleString("PONG"))

        server.stop()
        for _ in 0..<3 {
            let error = await #expect(throws: RedisError.self) {
                try await withTimeout(.seconds(5), "a send while Redis is down") { try await client.send("PING") }
            }
            #expect(error?.code == .connectionClosed)
        }

        try await server.start()
        // Every send after the restart succeeds, on the same RedisClient.
        for i in 0..<4 {
            #expect(try await client.send("SET", key, "after \(i)") == .simpleString("OK"))
        }
        // A fresh server (no persistence): the old value is gone, the new one is there.
        #expect(try await client.send("GET", key) == .bulkString(Array("after 3".utf8)))
        await client.close()
    }

    @Test("a subscriber resubscribes after Redis is stopped and started on the same port")
    func subscriberHealsWhenRedisComesBack() async throws {
        let channel = TestEnvironment.uniqueKeyPrefix() + "news"
        let server = try PrivateRedisServer()
        defer { server.stop() }
        try await server.start()
        let subscriber = RedisSubscriber(configuration: server.configuration, backoff: .milliseconds(20) ... .milliseconds(100))
        let runner = Task { try await subscriber.run() }
        let publisher = RedisClient(configuration: server.configuration, poolSize: 1)
        let events = subscriber.events
        func nextEvent() async throws -> RedisPubSubEvent {
            try await withTimeout(.seconds(5), "the next pub/sub event") {
                for await event in events { return event }
                throw RedisError(.connectionClosed, "the event stream finished")
            }
        }
        try await withTimeout(.seconds(5), "subscribing") {
            while true {
                do { return try await subscriber.subscribe([channel]) } catch let error as RedisError where error.code == .connectionClosed {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
        }
        #expect(try await publisher.send("PUBLISH", channel, "one") == .integer(1))
        #expect(try await nextEvent() == .message(channel: channel, payload: "one"))

        server.stop()
        try await Task.sleep(for: .milliseconds(300)) // a few failed reconnect attempts
        try await server.start()
        #expect(try await nextEvent() == .reconnected)
        #expect(try await publisher.send("PUBLISH", channel, "two") == .integer(1))
        #expect(try await nextEvent() == .message(channel: channel, payload: "two"))

        runner.cancel()
        try await withTimeout(.seconds(5), "the subscriber to stop") {
            for await _ in events {}
        }
        await publisher.close()
    }
}

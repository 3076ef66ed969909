import RedisClient
import TestSupport
import Testing

@Suite("RedisSubscriber")
struct RedisSubscriberTests {
    /// A running subscriber logged in as the test's own Redis user, and a client to publish with.
    private struct Fixture {
        let prefix: String
        let user: TestRedisUser
        let subscriber: RedisSubscriber
        let runner: Task<Void, any Error>
        let publisher: RedisClient

        static func start() async throws -> Fixture {
            let prefix = TestEnvironment.uniqueKeyPrefix()
            let user = try await TestRedisUser.create(prefix: prefix)
            let subscriber = RedisSubscriber(configuration: try user.configuration(), backoff: .milliseconds(20) ... .milliseconds(200))
            let runner = Task { try await subscriber.run() }
            let publisher = RedisClient(configuration: try testConfiguration(), poolSize: 1)
            return Fixture(prefix: prefix, user: user, subscriber: subscriber, runner: runner, publisher: publisher)
        }

        /// Subscribes once the subscriber's first connection is up (before that, subscribe throws
        /// connectionClosed and leaves the channel to be subscribed on connect).
        func subscribe(_ channels: [String]) async throws {
            try await retryWhileConnecting { try await subscriber.subscribe(channels) }
        }

        func psubscribe(_ patterns: [String]) async throws {
            try await retryWhileConnecting { try await subscriber.psubscribe(patterns) }
        }

        private func retryWhileConnecting(_ body: @escaping @Sendable () async throws -> Void) async throws {
            try await withTimeout(.seconds(5), "subscribing") {
                while true {
                    do {
                        return try await body()
                    } catch let error as RedisError where error.code == .connectionClosed {
                        try await Task.sleep(for: .milliseconds(10))
                    }
                }
            }
        }

        /// PUBLISH; returns how many subscribers received it.
        func publish(_ channel: String, _ payload: String) async throws -> Int {
            try #require(try await publisher.send("PUBLISH", channel, payload).int)
        }

        /// The next event of the subscriber, failing after 5 s.
        func nextEvent() async throws -> RedisPubSubEvent {
            let events = subscriber.events
            return try await withTimeout(.seconds(5), "the next pub/sub event") {
                for await event in events { return event }
                throw RedisError(.connectionClosed, "the event stream finished")
            }
        }

        /// Stops the subscriber and checks that its event stream finishes.
        func stop() async throws {
            runner.cancel()
            let events = subscriber.events
            try await withTimeout(.seconds(5), "the subscriber to stop") {
                for await _ in events {}
                _ = try? await runner.value
            }
        }

        /// Stops the subscriber, closes the publisher and deletes the test's Redis user.
        func finish() async throws {
            try await stop()
            await publisher.close()
            await user.delete()
        }
    }

    @Test("a channel subscription receives what another connection publishes")
    func subscribeAndReceive() async throws {
        let fixture = try await Fixture.start()
        let channel = fixture.prefix + "room"
        try await fixture.subscribe([channel])
        #expect(fixture.subscriber.subscribedChannels == [channel])
        // subscribe() returned after Redis confirmed: the very first publish is delivered.
        #expect(try await fixture.publish(channel, "hello") == 1)
        #expect(try await fixture.nextEvent() == .message(channel: channel, payload: "hello"))
        #expect(try await fixture.publish(channel, "second\r\nline é") == 1)
        #expect(try await fixture.nextEvent() == .message(channel: channel, payload: "second\r\nline é"))
        try await fixture.finish()
    }

    @Test("a pattern subscription receives messages of matching channels only")
    func psubscribeAndReceive() async throws {
        let fixture = try await Fixture.start()
        let pattern = fixture.prefix + "user:*"
        try await fixture.psubscribe([pattern])
        #expect(try await fixture.publish(fixture.prefix + "other:1", "not for us") == 0)
        #expect(try await fixture.publish(fixture.prefix + "user:42", "assigned") == 1)
        #expect(try await fixture.nextEvent() == .patternMessage(pattern: pattern, channel: fixture.prefix + "user:42", payload: "assigned"))
        try await fixture.finish()
    }

    @Test("unsubscribe stops the delivery of a channel")
    func unsubscribe() async throws {
        let fixture = try await Fixture.start()
        let (kept, dropped) = (fixture.prefix + "kept", fixture.prefix + "dropped")
        try await fixture.subscribe([kept, dropped])
        #expect(fixture.subscriber.subscribedChannels == [kept, dropped])
        fixture.subscriber.unsubscribe([dropped])
        #expect(fixture.subscriber.subscribedChannels == [kept])
        // No confirmation is awaited: watch the subscriber count (without publishing, so no event is generated).
        let publisher = fixture.publisher
        try await waitUntil("Redis to drop the subscription") {
            try await publisher.send("PUBSUB", "NUMSUB", dropped) == .array([.bulkString(Array(dropped.utf8)), .integer(0)])
        }
        #expect(try await fixture.publish(dropped, "gone") == 0)
        #expect(try await fixture.publish(kept, "still here") == 1)
        #expect(try await fixture.nextEvent() == .message(channel: kept, payload: "still here"))
        try await fixture.finish()
    }

    @Test("after its connection is killed the subscriber reconnects, resubscribes and reports reconnected")
    func resubscribesAfterKill() async throws {
        let fixture = try await Fixture.start()
        let channel = fixture.prefix + "conv:1"
        let pattern = fixture.prefix + "events:*"
        try await fixture.subscribe([channel])
        try await fixture.psubscribe([pattern])
        #expect(try await fixture.publish(channel, "before") == 1)
        #expect(try await fixture.nextEvent() == .message(channel: channel, payload: "before"))

        // Kill the pub/sub connection from another connection (only this test's user's connections).
        #expect(try await fixture.user.killConnections() == 1)
        #expect(try await fixture.nextEvent() == .reconnected)

        // "reconnected" means every subscription was renewed: the first publish after it arrives.
        #expect(try await fixture.publish(channel, "after") == 1)
        #expect(try await fixture.nextEvent() == .message(channel: channel, payload: "after"))
        #expect(try await fixture.publish(fixture.prefix + "events:queue", "queued") == 1)
        #expect(try await fixture.nextEvent() == .patternMessage(pattern: pattern, channel: fixture.prefix + "events:queue", payload: "queued"))

        // A second loss heals the same way.
        #expect(try await fixture.user.killConnections() == 1)
        #expect(try await fixture.nextEvent() == .reconnected)
        #expect(try await fixture.publish(channel, "again") == 1)
        #expect(try await fixture.nextEvent() == .message(channel: channel, payload: "again"))
        try await fixture.finish()
    }

    @Test("cancelling run() closes the connection and finishes the event stream")
    func cancelStops() async throws {
        let fixture = try await Fixture.start()
        let channel = fixture.prefix + "c"
        try await fixture.subscribe([channel])
        #expect(try await fixture.user.connectionCount() == 1)
        try await fixture.stop()
        try await waitUntil("Redis to see the subscriber gone") { try await fixture.user.connectionCount() == 0 }
        #expect(try await fixture.publish(channel, "nobody") == 0)
        try await fixture.finish()
    }
}

import NIOCore
import NIOPosix
import RedisClient
import TestSupport
import Testing

@Suite("RedisClient pool")
struct RedisClientPoolTests {
    static let poolSize = 4

    /// The CLIENT ID of every pooled connection (the pool hands its slots out round robin).
    private func pooledConnections(_ client: RedisClient) async throws -> [(connection: RedisConnection, id: Int)] {
        var result: [(connection: RedisConnection, id: Int)] = []
        for _ in 0..<Self.poolSize {
            let connection = try await client.connection()
            result.append((connection, try #require(try await connection.send(["CLIENT", "ID"]).int)))
        }
        return result
    }

    @Test("many concurrent sends through the pool all succeed on at most poolSize connections")
    func concurrentSends() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let user = try await TestRedisUser.create(prefix: prefix)
        let client = RedisClient(configuration: try user.configuration(), poolSize: Self.poolSize)
        let wrong = try await withTimeout(.seconds(30), "2,000 concurrent SET/GET") {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<2_000 {
                    group.addTask {
                        try await client.send("SET", prefix + "k\(i)", "v\(i)")
                        return try await client.send("GET", prefix + "k\(i)") == .bulkString(Array("v\(i)".utf8))
                    }
                }
                var wrong = 0
                for try await ok in group where !ok { wrong += 1 }
                return wrong
            }
        }
        #expect(wrong == 0)
        let connections = try await user.connectionCount()
        #expect(connections >= 1 && connections <= Self.poolSize)
        #expect(try await client.send("DEL", prefix + "k0", prefix + "k1999") == .integer(2))
        await client.close()
        await user.delete()
    }

    @Test("after its connections are killed the pool reconnects on next use")
    func reconnectsAfterKill() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let user = try await TestRedisUser.create(prefix: prefix)
        let client = RedisClient(configuration: try user.configuration(), poolSize: Self.poolSize)
        let before = try await pooledConnections(client)
        #expect(Set(before.map(\.id)).count == Self.poolSize)

        // Kill every pooled connection by id from a separate connection.
        let killed = try await withAdminConnection { admin in
            var replies: [RESPValue] = []
            for (_, id) in before { replies.append(try await admin.send(["CLIENT", "KILL", "ID", String(id)])) }
            return replies
        }
        #expect(killed == Array(repeating: .integer(1), count: Self.poolSize))
        try await waitUntil("the pooled connections to notice they were closed") {
            before.allSatisfy { !$0.connection.isActive }
        }

        // Every send made after the loss was observed succeeds, on fresh connections.
        for i in 0..<(2 * Self.poolSize) {
            #expect(try await client.send("SET", prefix + "after", String(i)) == .simpleString("OK"))
        }
        let after = try await pooledConnections(client)
        #expect(Set(after.map(\.id)).count == Self.poolSize)
        #expect(Set(after.map(\.id)).isDisjoint(with: Set(before.map(\.id))))
        #expect(try await client.send("GET", prefix + "after") == .bulkString(Array(String(2 * Self.poolSize - 1).utf8)))
        try await client.send("DEL", prefix + "after")
        await client.close()
        await user.delete()
    }

    @Test("a burst of concurrent sends after a kill succeeds and replaces each connection only once")
    func burstAfterKillDoesNotLeakConnections() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let user = try await TestRedisUser.create(prefix: prefix)
        let client = RedisClient(configuration: try user.configuration(), poolSize: Self.poolSize)
        let before = try await pooledConnections(client)
        #expect(try await user.connectionCount() == Self.poolSize)

        #expect(try await user.killConnections() == Self.poolSize)
        try await waitUntil("the pooled connections to notice they were closed") {
            before.allSatisfy { !$0.connection.isActive }
        }

        let failures = try await withTimeout(.seconds(30), "500 concurrent INCR after a kill") {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<500 {
                    group.addTask { (try? await client.send("INCR", prefix + "n")) == nil }
                }
                var failures = 0
                for try await failed in group where failed { failures += 1 }
                return failures
            }
        }
        #expect(failures == 0)
        #expect(try await client.send("GET", prefix + "n").int == 500)
        // Connections opened and handed out but not kept by the pool would stay open here.
        #expect(try await user.connectionCount() <= Self.poolSize)
        try await client.send("DEL", prefix + "n")
        await client.close()
        #expect(try await user.connectionCount() == 0)
        await user.delete()
    }

    @Test("close() closes every pooled connection")
    func closeClosesConnections() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let user = try await TestRedisUser.create(prefix: prefix)
        let client = RedisClient(configuration: try user.configuration(), poolSize: Self.poolSize)
        let connections = try await pooledConnections(client)
        #expect(try await user.connectionCount() == Self.poolSize)
        await client.close()
        #expect(connections.allSatisfy { !$0.connection.isActive })
        try await waitUntil("Redis to see the connections closed") { try await user.connectionCount() == 0 }
        await user.delete()
    }

    @Test("a wrong password fails the send with serverError instead of hanging")
    func wrongPassword() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let user = try await TestRedisUser.create(prefix: prefix)
        var configuration = try user.configuration()
        configuration.password = "not-the-password"
        let client = RedisClient(configuration: configuration, poolSize: 1)
        let error = await #expect(throws: RedisError.self) {
            try await withTimeout(.seconds(5), "a send with a wrong password") { try await client.send("PING") }
        }
        #expect(error?.code == .serverError)
        await client.close()
        await user.delete()
    }

    @Test("readyConnection(_:on:) hands a caller on an event loop a connection of that loop, the same one for the same key")
    func connectionOnTheCallersLoop() async throws {
        let prefix = TestEnvironment.uniqueKeyPrefix()
        let user = try await TestRedisUser.create(prefix: prefix)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let client = RedisClient(configuration: try user.configuration(), poolSize: Self.poolSize, eventLoopGroup: group)
        _ = try await pooledConnections(client)
        let loops = Array(group.makeIterator())
        var used: Set<ObjectIdentifier> = []
        for loop in loops {
            for key in 0..<20 {
                let connection = try #require(client.readyConnection(key, on: loop))
                #expect(connection.eventLoop === loop, "key \(key)")
                #expect(client.readyConnection(key, on: loop) === connection, "the same key keeps its connection")
                used.insert(ObjectIdentifier(connection))
            }
        }
        #expect(used.count == Self.poolSize, "every pooled connection serves its loop's callers")
        await client.close()
        try await group.shutdownGracefully()
    }
}

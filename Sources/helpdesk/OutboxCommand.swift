import ArgumentParser
import Foundation
import HelpDeskServer
import RedisClient

/// `helpdesk outbox dead|replay`: what the flushers gave up on, and sending it back.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Inspect and replay outbox entries PostgreSQL refused (dead-lettered).",
        subcommands: [Dead.self, Replay.self])

    static func admin() throws -> (OutboxAdmin, RedisClient) {
        let (configuration, logger) = try loadConfiguration()
        let redis = RedisClient(configuration: try RedisConfiguration(url: configuration.redisURL), poolSize: 1, logger: logger)
        return (OutboxAdmin(redis: redis, keys: RedisKeys(prefix: configuration.keyPrefix)), redis)
    }

    struct Dead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead-lettered outbox entries, oldest first.")

        func run() async throws {
            let (admin, redis) = try OutboxCommand.admin()
            defer { Task { await redis.close() } }
            let entries = try await admin.dead()
            if entries.isEmpty { print("no dead-lettered outbox entries"); return }
            for e in entries {
                let when = e.failedAt.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double($0) / 1000)) } ?? "-"
                print("\(e.id)  conversation \(e.conversationID)  epoch \(e.epoch ?? "-")  failed \(when)  sqlstate \(e.sqlState.isEmpty ? "-" : e.sqlState)  \(e.error)")
            }
            print("\(entries.count) entr\(entries.count == 1 ? "y" : "ies"); `helpdesk outbox replay [id ...]` moves them back")
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move dead-lettered entries back to the outbox (all of them without ids).")

        @Argument(help: "Ids of dead-lettered entries (as `outbox dead` prints them); none for all.") var ids: [String] = []

        func run() async throws {
            let (admin, redis) = try OutboxCommand.admin()
            defer { Task { await redis.close() } }
            let moved = try await admin.replay(ids)
            print(moved.isEmpty ? "nothing to replay" : "moved \(moved.count) entr\(moved.count == 1 ? "y" : "ies") back to the outbox")
        }
    }
}

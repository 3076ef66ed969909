import Foundation
import HelpDeskCore
import Logging
import PostgresClient
import RedisClient
import ServiceLifecycle

/// Archives closed conversations: reads the `outbox` stream in the `flushers` consumer group,
/// writes each conversation with its messages and events to PostgreSQL in one idempotent
/// transaction, then acknowledges and lets the Redis keys expire. Entries a dead node left pending
/// are taken over with XAUTOCLAIM; while PostgreSQL is down entries stay pending and are retried.
struct OutboxFlusher: Service {
    static let group = "flushers"

    let redis: RedisClient
    let archive: ArchiveStore
    let keys: RedisKeys
    let consumer: String
    /// A pending entry idle this long belongs to a flusher presumed dead.
    let claimIdle: Duration
    /// How long Redis keeps a conversation after it was archived (late readers, reconnecting clients).
    let retention: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var backoff = Duration.milliseconds(200)
            var lastClaim = ContinuousClock.now - claimIdle
            var readOwnPending = true
            var failures: [String: Int] = [:]
            while !Task.isCancelled {
                do {
                    let connection = try await RedisConnection.connect(configuration: redis.configuration)
                    defer { Task { await connection.close() } }
                    try await ensureGroup(connection)
                    while !Task.isCancelled {
                        if readOwnPending {
                            // Entries delivered to this consumer earlier but not acknowledged (a failed flush, a restart).
                            try await flushAll(try await read(connection, id: "0", block: false), failures: &failures)
                            readOwnPending = false
                        }
                        if ContinuousClock.now - lastClaim >= claimIdle / 2 {
                            lastClaim = .now
                            try await flushAll(try await claim(connection), failures: &failures)
                        }
                        try await flushAll(try await read(connection, id: ">", block: true), failures: &failures)
                        backoff = .milliseconds(200)
                    }
                } catch {
                    if Task.isCancelled || Task.isShuttingDownGracefully { break }
                    logger.warning("outbox flush failed; will retry", metadata: ["error": "\(error)", "retry_in": "\(backoff)"])
                    readOwnPending = true
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(10))
                }
            }
        }
    }

    private func ensureGroup(_ connection: RedisConnection) async throws {
        do {
            try await connection.send(["XGROUP", "CREATE", keys.outbox, Self.group, "0", "MKSTREAM"])
        } catch let error as RedisError where error.serverErrorPrefix == "BUSYGROUP" {
            // Another node created it first.
        }
    }

    private func read(_ connection: RedisConnection, id: String, block: Bool) async throws -> [(String, String)] {
        var command = ["XREADGROUP", "GROUP", Self.group, consumer, "COUNT", "20"]
        if block { command += ["BLOCK", "1000"] }
        command += ["STREAMS", keys.outbox, id]
        let reply = try await connection.send(command)
        // [[stream, [[id, [field, value]], ...]]]
        guard let stream = reply.array?.first?.array, stream.count == 2 else { return [] }
        return Self.entries(stream[1])
    }

    private func claim(_ connection: RedisConnection) async throws -> [(String, String)] {
        let reply = try await connection.send(["XAUTOCLAIM", keys.outbox, Self.group, consumer, String(PresenceService.ms(claimIdle)), "0-0", "COUNT", "20"])
        guard let parts = reply.array, parts.count >= 2 else { return [] }
        let claimed = Self.entries(parts[1])
        if !claimed.isEmpty { logger.info("took over outbox entries of a dead flusher", metadata: ["count": "\(claimed.count)"]) }
        return claimed
    }

    /// `[[id, [field, value, ...]], ...]` to (entry id, conversation id).
    static func entries(_ value: RESPValue) -> [(String, String)] {
        (value.array ?? []).compactMap { entry in
            guard let parts = entry.array, parts.count == 2, let id = parts[0].string else { return nil }
            return (id, parts[1].fieldMap["conversation_id"] ?? "")
        }
    }

    /// Flushes entries in order. An outage (PostgreSQL or Redis unreachable) stops the batch and is
    /// retried with backoff. An entry PostgreSQL itself refuses three times is poison: it moves to
    /// `outbox:dead` (with the error) and is acknowledged, so it cannot block the outbox forever.
    private func flushAll(_ entries: [(String, String)], failures: inout [String: Int]) async throws {
        for (entryID, conversationID) in entries {
            do {
                try await flush(entryID: entryID, conversationID: conversationID)
                failures.removeValue(forKey: entryID)
            } catch let error as PostgresError where error.code == .queryFailed || error.code == .decodingFailed {
                failures[entryID, default: 0] += 1
                logger.error("outbox entry refused by PostgreSQL", metadata: ["conversation": "\(conversationID)", "error": "\(error)"])
                guard failures[entryID, default: 0] >= 3 else { throw error }
                _ = try await redis.pipeline([
                    ["XADD", keys.outbox + ":dead", "*", "conversation_id", conversationID, "entry", entryID, "error", error.message],
                    ["XACK", keys.outbox, Self.group, entryID],
                    ["XDEL", keys.outbox, entryID],
                ])
                failures.removeValue(forKey: entryID)
            }
        }
    }

    /// Archives one conversation and acknowledges its entry. Safe to run twice for the same entry.
    func flush(entryID: String, conversationID: String) async throws {
        let replies = try await redis.pipeline([
            ["HGETALL", keys.conversation(conversationID)],
            ["XRANGE", keys.messages(conversationID), "-", "+"],
            ["XRANGE", keys.events(conversationID), "-", "+"],
        ])
        let conversation = replies[0].fieldMap
        if !conversation.isEmpty {
            let messages = (replies[1].array ?? []).compactMap(MessageView.init(streamEntry:))
            let events = (replies[2].array ?? []).compactMap(ArchivedEvent.init(streamEntry:))
            try await archive.write(conversation: conversation, messages: messages, events: events)
        }
        let seconds = String(retention.components.seconds)
        _ = try await redis.pipeline([
            ["XACK", keys.outbox, Self.group, entryID],
            ["XDEL", keys.outbox, entryID],
            ["EXPIRE", keys.conversation(conversationID), seconds],
            ["EXPIRE", keys.messages(conversationID), seconds],
            ["EXPIRE", keys.events(conversationID), seconds],
            ["EXPIRE", keys.dedupe(conversationID), seconds],
        ])
    }
}

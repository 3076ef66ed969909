import Foundation
import HelpDeskCore
import Logging
import NIOConcurrencyHelpers
import PostgresClient
import RedisClient
import ServiceLifecycle

/// One `outbox` stream entry: a conversation to archive.
struct OutboxEntry: Sendable, Equatable {
    let id: String
    let conversationID: String
    /// The conversation's `close_epoch` when the entry was written (close.lua increments it at
    /// every close and abandon); nil for entries written before epochs existed.
    let epoch: String?

    /// `[[id, [field, value, ...]], ...]`.
    static func parse(_ value: RESPValue) -> [OutboxEntry] {
        (value.array ?? []).compactMap { entry in
            guard let parts = entry.array, parts.count == 2, let id = parts[0].string else { return nil }
            let fields = parts[1].fieldMap
            return OutboxEntry(id: id, conversationID: fields["conversation_id"] ?? "", epoch: fields["epoch"].flatMap { $0.isEmpty ? nil : $0 })
        }
    }
}

/// Counters of what a flusher did, for `helpdesk-bench flush` and logs.
public final class FlushStats: Sendable {
    public struct Snapshot: Sendable {
        public var conversations = 0
        public var messages = 0
        public var events = 0
        public var skipped = 0
        public var deadLettered = 0
        public var transactions = 0
        /// Wall time spent waiting for PostgreSQL transactions (summed over concurrent ones).
        public var postgresTime = Duration.zero
    }

    private let box = NIOLockedValueBox(Snapshot())
    public init() {}
    public var snapshot: Snapshot { box.withLockedValue { $0 } }
    func update(_ body: (inout Snapshot) -> Void) { box.withLockedValue(body) }
}

/// Archives closed conversations: reads the `outbox` stream in the `flushers` consumer group in
/// pages, writes the conversations of a page with their messages and events to PostgreSQL in a
/// few idempotent multi-row transactions (some of them concurrently), then acknowledges and lets
/// the Redis keys expire. Entries a dead node left pending are taken over with XAUTOCLAIM; while
/// PostgreSQL is down entries stay pending and are retried.
///
/// A close generation guards against reopen: an entry carries the `close_epoch` of the close that
/// wrote it, and is archived (and its keys expired) only while the conversation is still in that
/// close. A reopened conversation is left alone and archived again at its next close.
struct OutboxFlusher: Service {
    static let group = "flushers"

    let redis: RedisClient
    let scripts: RedisScripts
    let archive: ArchiveStore
    let keys: RedisKeys
    let consumer: String
    /// A pending entry idle this long belongs to a flusher presumed dead. A flush in progress
    /// keeps its entries fresh (XCLAIM heartbeat), however long it takes.
    let claimIdle: Duration
    /// How long Redis keeps a conversation after it was archived (late readers, reconnecting clients).
    let retention: Duration
    let logger: Logger
    /// False holds archiving off (`HELPDESK_FLUSH_ENABLED=0`): entries wait in the outbox.
    var enabled = true
    /// Outbox entries read per XREADGROUP / XAUTOCLAIM.
    var pageSize = 200
    /// Upper bounds of one transaction; a page is split into transactions of at most this size.
    var maxMessagesPerTransaction = 4000
    var maxConversationsPerTransaction = 100
    /// Transactions of one page that run at the same time (each holds a pooled connection).
    var concurrency = 2
    /// Another consumer with nothing pending and silent this long is removed from the group
    /// (every restart makes a new consumer name).
    var consumerIdleLimit: Duration?
    /// Data errors tolerated per entry before it is dead-lettered, and other non-transient errors.
    var dataErrorTries = 3
    var otherErrorTries = 10
    var stats = FlushStats()
    /// The pre-batching write (one INSERT per row), kept only as the benchmark's baseline.
    var rowByRow = false

    init(redis: RedisClient, scripts: RedisScripts, archive: ArchiveStore, keys: RedisKeys, consumer: String,
         claimIdle: Duration, retention: Duration, logger: Logger) {
        (self.redis, self.scripts, self.archive, self.keys, self.consumer) = (redis, scripts, archive, keys, consumer)
        (self.claimIdle, self.retention, self.logger) = (claimIdle, retention, logger)
    }

    /// The flusher of a node, as configured.
    init(services: NodeServices) {
        let configuration = services.configuration
        self.init(redis: services.redis, scripts: services.scripts, archive: services.parts.archive, keys: services.keys,
                  consumer: configuration.nodeID, claimIdle: .milliseconds(Int(configuration.outboxClaimIdleSeconds * 1000)),
                  retention: .seconds(configuration.archiveRetentionSeconds), logger: services.logger)
        self.enabled = configuration.flushEnabled
        // Leave one pooled connection to requests while a backlog drains.
        self.concurrency = max(1, min(3, configuration.postgresPoolSize - 1))
    }

    /// The silence after which another consumer counts as gone.
    var idleConsumerLimit: Duration { consumerIdleLimit ?? max(claimIdle * 10, .seconds(600)) }

    /// Thrown when some entries of a page must be retried later (after the backoff).
    struct RetryLater: Error, CustomStringConvertible {
        let count: Int
        let last: PostgresError
        var description: String { "\(count) outbox entries refused by PostgreSQL, retrying: \(last)" }
    }

    func run() async throws {
        guard enabled else {
            logger.notice("outbox flushing is disabled (HELPDESK_FLUSH_ENABLED=0); closed conversations wait in the outbox")
            try? await gracefulShutdown()
            return
        }
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
                            // Entries delivered to this consumer earlier but not acknowledged (a failed flush, a restart), page by page.
                            var after = "0"
                            while !Task.isCancelled {
                                let page = try await read(connection, after: after, block: false)
                                guard let last = page.last else { break }
                                try await flushPage(page, failures: &failures)
                                after = last.id
                            }
                            readOwnPending = false
                        }
                        if ContinuousClock.now - lastClaim >= claimIdle / 2 {
                            lastClaim = .now
                            try await claimAll(failures: &failures)
                            await removeIdleConsumers()
                        }
                        try await flushPage(try await read(connection, after: ">", block: true), failures: &failures)
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

    func ensureGroup(_ connection: RedisConnection) async throws {
        do {
            try await connection.send(["XGROUP", "CREATE", keys.outbox, Self.group, "0", "MKSTREAM"])
        } catch let error as RedisError where error.serverErrorPrefix == "BUSYGROUP" {
            // Another node created it first.
        }
    }

    private func read(_ connection: RedisConnection, after id: String, block: Bool) async throws -> [OutboxEntry] {
        var command = ["XREADGROUP", "GROUP", Self.group, consumer, "COUNT", String(pageSize)]
        if block { command += ["BLOCK", "1000"] }
        command += ["STREAMS", keys.outbox, id]
        let reply = try await connection.send(command)
        // [[stream, [[id, [field, value]], ...]]]
        guard let stream = reply.array?.first?.array, stream.count == 2 else { return [] }
        return OutboxEntry.parse(stream[1])
    }

    /// Takes over entries idle longer than `claimIdle` (their flusher died), page by page.
    func claimAll(failures: inout [String: Int]) async throws {
        var cursor = "0-0"
        repeat {
            let reply = try await redis.send(["XAUTOCLAIM", keys.outbox, Self.group, consumer, String(Self.ms(claimIdle)), cursor, "COUNT", String(pageSize)])
            guard let parts = reply.array, parts.count >= 2 else { return }
            cursor = parts[0].string ?? "0-0"
            let claimed = OutboxEntry.parse(parts[1])
            if !claimed.isEmpty {
                logger.info("took over outbox entries of a dead flusher", metadata: ["count": "\(claimed.count)"])
                try await flushPage(claimed, failures: &failures)
            }
        } while cursor != "0-0" && !Task.isCancelled
    }

    /// Removes other consumers that hold no pending entry and have not read for `idleConsumerLimit`:
    /// node ids change at every restart, so the group would otherwise grow forever. A consumer
    /// removed by mistake loses nothing (it has nothing pending) and is recreated by its next read.
    func removeIdleConsumers() async {
        guard let reply = try? await redis.send("XINFO", "CONSUMERS", keys.outbox, Self.group) else { return }
        let limit = Self.ms(idleConsumerLimit)
        for consumerInfo in reply.array ?? [] {
            let items = consumerInfo.array ?? []
            var name: String?, pending: Int?, idle: Int?
            var i = 0
            while i + 1 < items.count {
                switch items[i].string {
                case "name": name = items[i + 1].string
                case "pending": pending = items[i + 1].int
                case "idle": idle = items[i + 1].int
                default: break
                }
                i += 2
            }
            guard let name, name != consumer, pending == 0, let idle, idle >= limit else { continue }
            if let removed = try? await redis.send("XGROUP", "DELCONSUMER", keys.outbox, Self.group, name) {
                logger.info("removed an idle outbox consumer", metadata: ["consumer": "\(name)", "pending": "\(removed.int ?? 0)"])
            }
        }
    }

    /// What to do with one conversation of a page.
    private enum Plan {
        /// Archive it, then expire its keys: through archived.lua when the entry has an epoch.
        case archive(ArchiveRecord, epoch: String?)
        /// Acknowledge only: reopened since, closed again later, or gone.
        case skip
    }

    /// Flushes one page of entries: reads their conversations from Redis in pipelined pages,
    /// writes them to PostgreSQL in a few multi-row transactions, then expires (one pipeline) and
    /// acknowledges (another). An outage (PostgreSQL or Redis unreachable, or a transient SQLSTATE) throws
    /// and leaves every entry pending for the retry. An entry whose data PostgreSQL refuses
    /// `dataErrorTries` times is moved to `outbox:dead`, so it cannot block the outbox.
    func flushPage(_ entries: [OutboxEntry], failures: inout [String: Int]) async throws {
        guard !entries.isEmpty else { return }
        // Keep the entries claimed while we work, however long PostgreSQL takes: otherwise another
        // node's XAUTOCLAIM would flush them a second time concurrently.
        let heartbeat = startHeartbeat(entries.map(\.id))
        defer { heartbeat.cancel() }

        let ids = Array(Set(entries.map(\.conversationID).filter { !$0.isEmpty }))
        let records = try await readConversations(ids)
        var plans: [String: Plan] = [:]
        for entry in entries where !entry.conversationID.isEmpty {
            guard let record = records[entry.conversationID] else { plans[entry.conversationID] = plans[entry.conversationID] ?? .skip; continue }
            let status = record.hash["status"]
            let current: Bool
            if let epoch = entry.epoch {
                current = (status == "closed" || status == "abandoned") && record.hash["close_epoch"] == epoch
            } else {
                current = true // written before close epochs: archive whatever is there, as before
            }
            if current {
                plans[entry.conversationID] = .archive(record, epoch: entry.epoch)
            } else if plans[entry.conversationID] == nil {
                plans[entry.conversationID] = .skip
            }
        }
        let toWrite = plans.values.compactMap { plan -> ArchiveRecord? in
            if case .archive(let record, _) = plan { return record } else { return nil }
        }
        let refused = try await writeAll(toWrite)
        NodeMetrics.archived.increment(by: Int64(toWrite.filter { refused[$0.id] == nil }.count))

        var commands: [[String]] = []
        /// archived.lua calls: run before anything is acknowledged, so that a Redis that lost the
        /// scripts' library (restarted without persistence) gets it back before the entries go.
        var expiry: [[String]] = []
        var finished: [String] = []
        var retry: [PostgresError] = []
        var deadLettered = 0
        let retentionMS = String(Self.ms(retention))
        var expired = Set<String>()
        for entry in entries {
            if let error = refused[entry.conversationID] {
                let tries = (failures[entry.id] ?? 0) + 1
                failures[entry.id] = tries
                logger.error("outbox entry refused by PostgreSQL", metadata: [
                    "conversation": "\(entry.conversationID)", "entry": "\(entry.id)", "try": "\(tries)", "error": "\(error)"])
                guard tries >= (error.kind == .data ? dataErrorTries : otherErrorTries) else { retry.append(error); continue }
                var fields = ["conversation_id", entry.conversationID, "entry", entry.id, "error", error.message,
                              "sqlstate", error.sqlState ?? "", "failed_at", String(Int64(Date().timeIntervalSince1970 * 1000))]
                if let epoch = entry.epoch { fields += ["epoch", epoch] }
                commands.append(["XADD", keys.deadLetteredOutbox, "*"] + fields)
                failures.removeValue(forKey: entry.id)
                deadLettered += 1
            } else {
                failures.removeValue(forKey: entry.id)
                if case .archive(_, let epoch) = plans[entry.conversationID], !expired.contains(entry.conversationID) {
                    expired.insert(entry.conversationID)
                    expiry += try expireCommands(entry.conversationID, epoch: epoch, retentionMS: retentionMS)
                }
            }
            finished.append(entry.id)
        }
        if !finished.isEmpty {
            commands.append(["XACK", keys.outbox, Self.group] + finished)
            commands.append(["XDEL", keys.outbox] + finished)
        }
        if !expiry.isEmpty {
            var replies = try await redis.pipeline(expiry)
            if replies.contains(where: RedisScripts.isMissingFunction) {
                try await scripts.loadAll(on: redis)
                replies = try await redis.pipeline(expiry)
            }
            for case .error(let message) in replies { throw RedisError(.serverError, message) }
        }
        if !commands.isEmpty {
            for case .error(let message) in try await redis.pipeline(commands) { throw RedisError(.serverError, message) }
        }
        let skipped = plans.values.filter { if case .skip = $0 { return true } else { return false } }.count
        stats.update { $0.skipped += skipped; $0.deadLettered += deadLettered }
        if let last = retry.last { throw RetryLater(count: retry.count, last: last) }
    }

    /// Commands that let an archived conversation's keys expire. With an epoch, archived.lua does
    /// it only if the conversation is still in that close (a reopen in between keeps it live).
    private func expireCommands(_ id: String, epoch: String?, retentionMS: String) throws -> [[String]] {
        let conversationKeys = [keys.conversation(id), keys.messages(id), keys.events(id), keys.dedupe(id)]
        guard let epoch else {
            return conversationKeys.map { ["PEXPIRE", $0, retentionMS] }
        }
        return [try scripts.command("archived", keys: conversationKeys + [keys.callOfConversation(id)], arguments: [epoch, retentionMS])]
    }

    /// Resets the idle time of `ids` every third of `claimIdle` until cancelled.
    private func startHeartbeat(_ ids: [String]) -> Task<Void, Never> {
        let (redis, keys, consumer, every) = (redis, keys, consumer, claimIdle / 3)
        return Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: every)
                if Task.isCancelled { return }
                _ = try? await redis.send(["XCLAIM", keys.outbox, Self.group, consumer, "0"] + ids + ["JUSTID"])
            }
        }
    }

    /// Reads hash, messages and events of each conversation; streams are read in pages of 1,000,
    /// every conversation's next page in one pipeline. A conversation without a hash is absent.
    func readConversations(_ ids: [String]) async throws -> [String: ArchiveRecord] {
        guard !ids.isEmpty else { return [:] }
        let page = 1000
        var commands: [[String]] = []
        for id in ids {
            commands.append(["HGETALL", keys.conversation(id)])
            commands.append(["XRANGE", keys.messages(id), "-", "+", "COUNT", String(page)])
            commands.append(["XRANGE", keys.events(id), "-", "+", "COUNT", String(page)])
        }
        let replies = try await redis.pipeline(commands)
        var records: [String: ArchiveRecord] = [:]
        /// (conversation, is messages, last id) of streams that may have more.
        var more: [(String, Bool, String)] = []
        for (i, id) in ids.enumerated() {
            let hash = replies[3 * i].fieldMap
            guard !hash.isEmpty else { continue }
            let messageEntries = replies[3 * i + 1].array ?? []
            let eventEntries = replies[3 * i + 2].array ?? []
            records[id] = ArchiveRecord(id: id, hash: hash, messages: messageEntries.compactMap(ArchivedMessage.init(streamEntry:)),
                                        events: eventEntries.compactMap(ArchivedEvent.init(streamEntry:)))
            if messageEntries.count == page, let last = records[id]?.messages.last?.id { more.append((id, true, last)) }
            if eventEntries.count == page, let last = records[id]?.events.last?.id { more.append((id, false, last)) }
        }
        while !more.isEmpty {
            let replies = try await redis.pipeline(more.map { id, isMessages, last in
                ["XRANGE", isMessages ? keys.messages(id) : keys.events(id), "(" + last, "+", "COUNT", String(page)]
            })
            var next: [(String, Bool, String)] = []
            for ((id, isMessages, _), reply) in zip(more, replies) {
                let entries = reply.array ?? []
                if isMessages {
                    let parsed = entries.compactMap(ArchivedMessage.init(streamEntry:))
                    records[id]?.messages += parsed
                    if entries.count == page, let last = parsed.last?.id { next.append((id, true, last)) }
                } else {
                    let parsed = entries.compactMap(ArchivedEvent.init(streamEntry:))
                    records[id]?.events += parsed
                    if entries.count == page, let last = parsed.last?.id { next.append((id, false, last)) }
                }
            }
            more = next
        }
        return records
    }

    /// Writes records in transactions of bounded size, `concurrency` at a time. A transient error
    /// throws (everything stays pending). A transaction refused for its data is retried one
    /// conversation at a time, so only the culprit is reported (by conversation id).
    func writeAll(_ records: [ArchiveRecord]) async throws -> [String: PostgresError] {
        var chunks: [[ArchiveRecord]] = [[]]
        var messages = 0
        for record in records {
            if !chunks[chunks.count - 1].isEmpty,
               messages + record.messages.count > maxMessagesPerTransaction || chunks[chunks.count - 1].count >= maxConversationsPerTransaction {
                chunks.append([])
                messages = 0
            }
            chunks[chunks.count - 1].append(record)
            messages += record.messages.count
        }
        chunks.removeAll { $0.isEmpty }
        return try await withThrowingTaskGroup(of: [String: PostgresError].self) { group in
            var refused: [String: PostgresError] = [:]
            var next = 0
            func start() {
                let chunk = chunks[next]
                next += 1
                group.addTask { try await self.writeChunk(chunk) }
            }
            while next < min(concurrency, chunks.count) { start() }
            while let result = try await group.next() {
                refused.merge(result) { $1 }
                if next < chunks.count { start() }
            }
            return refused
        }
    }

    private func writeChunk(_ chunk: [ArchiveRecord]) async throws -> [String: PostgresError] {
        do {
            try await timed(chunk) {
                if rowByRow { for record in chunk { try await archive.writeRowByRow(record) } } else { try await archive.write(chunk) }
            }
            return [:]
        } catch let error as PostgresError where error.kind != .transient {
            guard chunk.count > 1 else { return [chunk[0].id: error] }
            var refused: [String: PostgresError] = [:]
            for record in chunk {
                do {
                    try await timed([record]) { try await archive.write([record]) }
                } catch let error as PostgresError where error.kind != .transient {
                    refused[record.id] = error
                }
            }
            return refused
        }
    }

    private func timed(_ records: [ArchiveRecord], _ body: () async throws -> Void) async throws {
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        stats.update {
            $0.transactions += 1
            $0.conversations += records.count
            $0.messages += records.reduce(0) { $0 + $1.messages.count }
            $0.events += records.reduce(0) { $0 + $1.events.count }
            $0.postgresTime += elapsed
        }
    }

    static func ms(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// `[[id, [field, value, ...]], ...]` to (entry id, conversation id).
    static func entries(_ value: RESPValue) -> [(String, String)] {
        OutboxEntry.parse(value).map { ($0.id, $0.conversationID) }
    }
}

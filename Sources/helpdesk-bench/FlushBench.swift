import ArgumentParser
import Foundation
import HelpDeskServer
import Logging
import PostgresClient

/// `helpdesk-bench flush`: archived messages per second into PostgreSQL. Prepares N closed
/// conversations of M messages each in a real Redis through the server's own scripts (under a key
/// prefix and a PostgreSQL schema of the run's own, so no running node flushes them), then runs
/// one node's flusher until the outbox is empty.
struct FlushBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flush", abstract: "Archived messages per second from the Redis outbox into PostgreSQL.")

    @OptionGroup var services: ServiceURLs
    @Option(help: "Closed conversations to archive.") var conversations = 500
    @Option(help: "Messages in each conversation.") var messages = 100
    @Option(help: "Bytes of text per message.") var textBytes = 100
    @Option(help: "PostgreSQL transactions in flight at once (a node uses min(3, pool size - 1)).") var concurrency = 3
    @Option(help: "PostgreSQL pool size of the flushing node.") var poolSize = 4
    @Option(help: "Outbox entries read per page.") var pageSize = 200
    @Flag(help: "Run the pre-batching algorithm (one INSERT per row, one conversation at a time) for comparison.") var legacy = false
    @Flag(help: "Keep the run's schema and keys afterwards.") var keep = false

    func run() async throws {
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        let schema = "flushbench_\(run)"
        let admin = PostgresPool(url: services.databaseURL, size: 1)
        try await admin.query("CREATE SCHEMA \(schema)")
        let separator = services.databaseURL.contains("?") ? "&" : "?"
        let prefix = "hd:{flushbench-\(run)}:"
        var logger = Logger(label: "flush-bench")
        logger.logLevel = .warning
        let configuration = try ServerConfiguration.fromEnvironment([
            "HELPDESK_REDIS_URL": services.redisURL,
            "HELPDESK_DATABASE_URL": services.databaseURL + separator + "options=-csearch_path%3D\(schema)",
            "HELPDESK_JWT_SECRET": "flush-bench-secret-0123456789",
            "HELPDESK_KEY_PREFIX": prefix,
            "HELPDESK_NODE_ID": "flush-bench-\(run)",
            "HELPDESK_PG_POOL_SIZE": String(poolSize),
            "HELPDESK_REDIS_POOL_SIZE": "4",
        ])
        let bench = try FlushBenchmark(configuration: configuration, logger: logger)
        try await bench.setUp()
        print("preparing \(conversations) closed conversations × \(messages) messages of \(textBytes) B in Redis (no flusher running)…")
        let prepareStart = ContinuousClock.now
        try await bench.prepare(conversations: conversations, messages: messages, textBytes: textBytes)
        let waiting = try await bench.outboxLength()
        print("prepared in \(seconds(ContinuousClock.now - prepareStart)) s; \(waiting) outbox entries waiting")

        print("flushing (\(legacy ? "legacy: one INSERT per row, one conversation at a time" : "batched, \(concurrency) transactions in flight, pages of \(pageSize)"))…")
        let result = try await bench.flush(concurrency: concurrency, pageSize: pageSize, legacy: legacy)
        let elapsed = seconds(result.elapsed)
        let pg = seconds(result.stats.postgresTime)
        print(String(format: "archived %d conversations, %d messages, %d events in %.3f s: %.0f messages/s",
                     result.stats.conversations, result.stats.messages, result.stats.events, elapsed, Double(result.stats.messages) / elapsed))
        print(String(format: "PostgreSQL: %d transactions, %.3f s inside them (summed over concurrent ones; %.0f%% of the wall time)",
                     result.stats.transactions, pg, 100 * pg / elapsed))
        print("messages rows in PostgreSQL: \(result.archivedMessages) (expected \(conversations * messages))")
        print(String(format: "summary flush conversations=%d messages=%d messages_per_s=%.0f archived_rows=%d", result.stats.conversations,
                     result.stats.messages, Double(result.stats.messages) / elapsed, result.archivedMessages))
        await bench.shutdown()
        if !keep {
            try await admin.query("DROP SCHEMA \(schema) CASCADE")
            // The archived keys expire with the retention; the rest of the run's keys are small.
        }
        await admin.shutdown()
        guard result.archivedMessages == conversations * messages else { throw ExitCode.failure }
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

import Foundation
import Prometheus
import RedisClient

/// The `helpdesk_*` series of `/metrics` (deploy/grafana/helpdesk-dashboard.json draws them).
///
/// Counters are per node and counted where things happen; the cluster-wide gauges (queue, outbox)
/// are read from Redis when `/metrics` is scraped, so every node reports the same values
/// (the dashboard takes `max` over nodes). Every series exists from the start, at 0, so a
/// dashboard query never finds nothing.
///
/// | series | type | what |
/// | --- | --- | --- |
/// | `helpdesk_websockets` | gauge | sockets open on this node |
/// | `helpdesk_messages_total{internal}` | counter | messages stored by this node (`SEND_MESSAGE`), not counting de-duplicated re-sends |
/// | `helpdesk_picks_total{result}` | counter | pick.lua runs: `ok`, `already_picked`, `at_capacity`, `queue_empty`, `other` |
/// | `helpdesk_script_stale_total{script}` | counter | script runs answered `stale` (what the node read beforehand had changed: read again and retried), by script |
/// | `helpdesk_archived_total` | counter | conversations this node's flusher wrote to PostgreSQL |
/// | `helpdesk_redis_errors_total{kind}` | counter | failed Redis commands (`RedisClient.errorKind`) |
/// | `helpdesk_postgres_errors_total{kind}` | counter | failed PostgreSQL calls: `unavailable`, `data`, `other` |
/// | `helpdesk_queue_length` | gauge | waiting conversations, all queues |
/// | `helpdesk_queue_oldest_wait_seconds` | gauge | how long the longest-waiting customer has waited |
/// | `helpdesk_agents_available` | gauge | online agents with a socket and free capacity |
/// | `helpdesk_outbox_length` | gauge | closed conversations not yet archived |
/// | `helpdesk_flush_lag_seconds` | gauge | age of the oldest of them (0 when none) |
/// | `helpdesk_outbox_dead` | gauge | entries the flushers gave up on (`helpdesk outbox dead`) |
/// | `helpdesk_redis_up` | gauge | 1 when the scrape could read Redis, else 0 (the gauges above are then stale) |
enum NodeMetrics {
    static var registry: PrometheusCollectorRegistry { Metrics.registry }

    static let websockets = gauge("helpdesk_websockets", "WebSockets open on this node")
    static let messagesPublic = counter("helpdesk_messages_total", "Messages stored through this node", labels: [("internal", "false")])
    static let messagesInternal = counter("helpdesk_messages_total", "Messages stored through this node", labels: [("internal", "true")])
    static let pickResults = ["ok", "already_picked", "at_capacity", "queue_empty", "other"]
    static let picks: [String: Counter] = Dictionary(uniqueKeysWithValues: pickResults.map {
        ($0, counter("helpdesk_picks_total", "Picks and assignments (pick.lua) by result", labels: [("result", $0)]))
    })
    /// The scripts the node reads for before it runs them (`LiveStore.runFresh`).
    static let freshScripts = ["agent_sweep", "cancel", "close", "customer_abandon", "enqueue", "escalate", "offer_accept",
                               "offer_end", "pick", "reopen", "takeover", "transfer"]
    static let staleRuns: [String: Counter] = Dictionary(uniqueKeysWithValues: freshScripts.map {
        ($0, counter("helpdesk_script_stale_total", "Script runs answered stale (read again and retried)", labels: [("script", $0)]))
    })
    static let archived = counter("helpdesk_archived_total", "Conversations this node's flusher archived")
    static let queueLength = gauge("helpdesk_queue_length", "Waiting conversations in all queues")
    static let queueOldestWait = gauge("helpdesk_queue_oldest_wait_seconds", "Wait of the longest-waiting customer")
    static let agentsAvailable = gauge("helpdesk_agents_available", "Online agents with a socket and free capacity")
    static let outboxLength = gauge("helpdesk_outbox_length", "Closed conversations not yet archived")
    static let flushLag = gauge("helpdesk_flush_lag_seconds", "Age of the oldest closed conversation not yet archived")
    static let outboxDead = gauge("helpdesk_outbox_dead", "Archive entries given up on")
    static let redisUp = gauge("helpdesk_redis_up", "1 if the last scrape read Redis")

    static func gauge(_ name: String, _ help: String) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help))
    }

    /// The error counters have no help text: swift-metrics' Prometheus factory, through which the
    /// Redis and PostgreSQL clients count, registers them without one (the registry wants the same).
    static func counter(_ name: String, _ help: String, labels: [(String, String)] = []) -> Counter {
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    /// Creates every series at 0 (the error counters by each kind they can have).
    static func register() {
        _ = (websockets, messagesPublic, messagesInternal, picks, staleRuns, archived, queueLength, queueOldestWait, agentsAvailable,
             outboxLength, flushLag, outboxDead, redisUp)
        for kind in ["server_error", "protocol_error", "connection_closed", "timeout", "invalid_argument", "unexpected_reply"] {
            _ = counter("helpdesk_redis_errors_total", "", labels: [("kind", kind)])
        }
        for kind in ["unavailable", "data", "other"] {
            _ = counter("helpdesk_postgres_errors_total", "", labels: [("kind", kind)])
        }
    }

    static func pick(_ result: String) {
        (picks[result] ?? picks["other"]!).increment()
    }

    static func stale(_ script: String) {
        staleRuns[script]?.increment()
    }

    /// Reads the cluster-wide gauges from Redis (a few pipelined round trips, bounded whatever
    /// the queue holds). On failure `helpdesk_redis_up` is 0 and the other gauges keep their values.
    static func refresh(store: LiveStore, hub: ConnectionHub) async {
        websockets.set(to: Double(hub.socketCount))
        do {
            let keys = store.keys, redis = store.redis
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let queues = (try await redis.send("SMEMBERS", keys.queues).array ?? []).compactMap(\.string)
            var length = 0
            var oldest: Int64?
            if !queues.isEmpty {
                // Sizes and each queue's head by score. A score is the enqueue time minus the
                // priority boost (low: -5 min), so the longest wait is among the entries scored
                // at most 5 minutes after the head's enqueue time: read those (at most 200 a queue).
                var commands: [[String]] = []
                for q in queues {
                    commands.append(["ZCARD", keys.queue(q)])
                    commands.append(["ZRANGE", keys.queue(q), "0", "0", "WITHSCORES"])
                }
                let replies = try await redis.pipeline(commands)
                var heads: [(queue: String, id: String)] = []
                for (i, q) in queues.enumerated() {
                    length += replies[2 * i].int ?? 0
                    if let id = replies[2 * i + 1].array?.first?.string { heads.append((q, id)) }
                }
                if !heads.isEmpty {
                    let headTimes = try await redis.pipeline(heads.map { ["HGET", keys.conversation($0.id), "enqueued_at"] })
                    var ranges: [[String]] = []
                    for (head, reply) in zip(heads, headTimes) {
                        guard let enqueued = reply.string.flatMap({ Int64($0) ?? Double($0).map { Int64($0) } }) else { continue }
                        ranges.append(["ZRANGEBYSCORE", keys.queue(head.queue), "-inf", String(enqueued + 5 * 60_000), "LIMIT", "0", "200"])
                    }
                    let candidates = Set(try await redis.pipeline(ranges).flatMap { ($0.array ?? []).compactMap(\.string) })
                    if !candidates.isEmpty {
                        let times = try await redis.pipeline(candidates.map { ["HGET", keys.conversation($0), "enqueued_at"] })
                        oldest = times.compactMap { $0.string.flatMap { Int64($0) ?? Double($0).map { Int64($0) } } }.min()
                    }
                }
            }
            let rest = try await redis.pipeline([
                ["ZCARD", keys.availableAgents], ["XLEN", keys.outbox], ["XRANGE", keys.outbox, "-", "+", "COUNT", "1"],
                ["XLEN", keys.deadLetteredOutbox],
            ])
            queueLength.set(to: Double(length))
            queueOldestWait.set(to: oldest.map { Double(max(0, now - $0)) / 1000 } ?? 0)
            agentsAvailable.set(to: Double(rest[0].int ?? 0))
            outboxLength.set(to: Double(rest[1].int ?? 0))
            // The oldest entry's id is the time of its close, in ms.
            let oldestEntry = rest[2].array?.first?.array?.first?.string
            let closedAt = oldestEntry.flatMap { $0.split(separator: "-").first.flatMap { Int64($0) } }
            flushLag.set(to: closedAt.map { Double(max(0, now - $0)) / 1000 } ?? 0)
            outboxDead.set(to: Double(rest[3].int ?? 0))
            redisUp.set(to: 1)
        } catch {
            redisUp.set(to: 0)
        }
    }
}

import Foundation
import HelpDeskCore
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer

/// Issue 12 #5: the Grafana dashboard's series exist on a live node; JSON logs; request ids.
@Suite("observability", .serialized)
struct ObservabilityTests {
    static let token = "metrics-token-0123456789"

    /// `name{labels} value` lines of a scrape, as [series (name + labels) : value].
    static func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = value
        }
        return out
    }

    static func scrape(_ node: TestCluster.Node) async throws -> (names: Set<String>, values: [String: Double]) {
        let (status, data) = try await HTTPWithHeaders.get(node.url + "/metrics", headers: ["Authorization": "Bearer \(token)"])
        #expect(status == 200)
        let values = samples(String(decoding: data, as: UTF8.self))
        return (Set(values.keys.map { String($0.prefix { $0 != "{" }) }), values)
    }

    /// Every metric name the dashboard's queries use: the identifiers written before a `{...}`
    /// selector (the dashboard writes every metric with one, `{job=~"$job"}`).
    static func dashboardMetrics() throws -> Set<String> {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestEnvironment.repositoryRoot + "/deploy/grafana/helpdesk-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var names = Set<String>()
        let pattern = try NSRegularExpression(pattern: "([a-zA-Z_:][a-zA-Z0-9_:]*)\\{")
        for panel in dashboard["panels"] as? [[String: Any]] ?? [] {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                let expr = target["expr"] as? String ?? ""
                for match in pattern.matches(in: expr, range: NSRange(expr.startIndex..., in: expr)) {
                    names.insert(String(expr[Range(match.range(at: 1), in: expr)!]))
                }
            }
        }
        return names
    }

    @Test("server-side failures a client can repeat log at most 10 lines a second; the next line says how many were left out")
    func failureLogIsLimited() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let log = LogLimiter(limit: 10, now: start)
        let first = (0..<25).map { log.admit(now: start + .milliseconds(Int64($0))) }
        #expect(first.prefix(10).allSatisfy { $0 == 0 } && first.dropFirst(10).allSatisfy { $0 == nil }, "\(first)")
        // a second later the bucket is full again: a line, carrying the 15 left out
        #expect(log.admit(now: start + .milliseconds(1_000)) == 15)
        #expect(log.admit(now: start + .milliseconds(1_001)) == 0)
        // a quiet spell does not save lines up past the burst: still 10 at once
        let later = (0..<12).map { log.admit(now: start + .seconds(60) + .milliseconds(Int64($0))) }
        #expect(later.compactMap { $0 }.count == 10 && later.last! == nil, "\(later)")
    }

    @Test("a script reply the node does not know is an internal_error whose message says nothing of it (it is logged)")
    func unknownScriptReplyIsNotSent() {
        let error = LiveStore.scriptError("some_new_code")
        #expect(error.code == .internalError && !error.message.contains("some_new_code"), "\(error)")
        #expect(LiveStore.scriptError("forbidden").code == .forbidden)
    }

    @Test("every series the Grafana dashboard queries exists on a live node, with the values of what happened")
    func dashboardSeriesExist() async throws {
        let wanted = try Self.dashboardMetrics()
        #expect(wanted == [
            "helpdesk_websockets", "helpdesk_messages_total", "helpdesk_queue_length", "helpdesk_queue_oldest_wait_seconds",
            "helpdesk_agents_available", "helpdesk_picks_total", "helpdesk_flush_lag_seconds", "helpdesk_outbox_length",
            "helpdesk_outbox_dead", "helpdesk_archived_total", "helpdesk_redis_errors_total", "helpdesk_redis_up",
            "helpdesk_postgres_errors_total", "http_server_request_duration_count", "http_server_request_duration_bucket",
        ])
        let cluster = try await TestCluster(overrides: ["HELPDESK_METRICS_TOKEN": Self.token, "HELPDESK_ARCHIVE_RETENTION": "600"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        // Hummingbird's request histogram appears with the first request a node answers.
        #expect(try await HTTP.request("GET", a.url + "/healthz").0 == 200)
        let before = try await Self.scrape(a)
        #expect(wanted.subtracting(before.names).isEmpty, "missing: \(wanted.subtracting(before.names).sorted())")
        #expect(before.values["helpdesk_queue_length"] == 0)
        #expect(before.values["helpdesk_redis_up"] == 1)
        #expect(before.values["helpdesk_websockets"] == 0)

        // One chat: waiting (queue 1), picked, one message each way... then closed and archived.
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: a)
        try await Task.sleep(for: .milliseconds(1100))
        let waiting = try await Self.scrape(a)
        #expect(waiting.values["helpdesk_queue_length"] == 1)
        let wait = try #require(waiting.values["helpdesk_queue_oldest_wait_seconds"])
        #expect(wait >= 1)
        #expect(wait < 10)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await socket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "hello", "client_msg_id": "m1"]).event == "ACK")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "hello", "client_msg_id": "m1"]).event == "ACK")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "note", "client_msg_id": "n1", "internal": true]).event == "ACK")
        #expect(try await socket.request("PICK", ["conversation_id": chat.id]).event == "ERROR")
        let active = try await Self.scrape(a)
        #expect(active.values["helpdesk_websockets"] == 1)
        #expect(active.values["helpdesk_queue_length"] == 0)
        #expect(active.values["helpdesk_queue_oldest_wait_seconds"] == 0)
        func delta(_ series: String) -> Double { (active.values[series] ?? -1) - (before.values[series] ?? -1) }
        // Counters are per process (several test nodes share it): compare with the first scrape.
        #expect(delta("helpdesk_picks_total{result=\"ok\"}") == 1)
        #expect(delta("helpdesk_picks_total{result=\"already_picked\"}") == 1)
        #expect(delta("helpdesk_messages_total{internal=\"false\"}") == 1, "the de-duplicated re-send is not counted")
        #expect(delta("helpdesk_messages_total{internal=\"true\"}") == 1)

        #expect(try await socket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        let pool = cluster.postgres()
        try await waitUntil("archived", within: .seconds(15)) {
            try await pool.query("SELECT count(*) AS n FROM conversations").first!.decode("n", as: Int.self) == 1
        }
        try await waitUntil("outbox empty", within: .seconds(5)) {
            try await Self.scrape(a).values["helpdesk_outbox_length"] == 0
        }
        let archived = try await Self.scrape(a)
        #expect((archived.values["helpdesk_archived_total"] ?? 0) - (before.values["helpdesk_archived_total"] ?? 0) == 1)
        #expect(archived.values["helpdesk_flush_lag_seconds"] == 0)
        #expect(archived.values["helpdesk_outbox_dead"] == 0)
        await socket.close()
        await pool.shutdown()
    }

    @Test("a script answering stale is prepared and run again, and each such run is counted by script")
    func staleRunsCounted() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_METRICS_TOKEN": Self.token])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("stale@example.com", on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        let chat = try await cluster.startChat(on: a)
        let series = "helpdesk_script_stale_total{script=\"pick\"}"
        let before = try await Self.scrape(a)
        #expect(before.values[series] != nil, "the series exists before any stale run")
        // pick.lua given the wrong category for the wanted conversation answers stale: twice, then right
        let store = a.services.parts.store, keys = a.services.keys
        var attempts = 0
        let reply = try await store.runFresh("pick") {
            attempts += 1
            let category = attempts <= 2 ? "999" : "0"
            return ([keys.agent(agent.id), keys.agentConversations(agent.id), keys.availableAgents, keys.customersSeen,
                     keys.queueChannel, keys.presenceChannel, keys.userChannel(agent.id), keys.queues, keys.categories, keys.offers,
                     keys.queue(category), keys.conversation(chat.id), keys.events(chat.id), keys.conversationChannel(chat.id)],
                    ["", agent.id, chat.id, "pick", agent.id, "", "1", category, chat.id])
        }
        #expect(attempts == 3)
        #expect(reply.array?.first?.string == "ok")
        let after = try await Self.scrape(a)
        #expect((after.values[series] ?? 0) - (before.values[series] ?? 0) == 2)
        await socket.close()
    }

    @Test("every script run through runFresh has its stale series (a name missing from the list would not be counted)")
    func staleSeriesForEveryScript() throws {
        let directory = TestEnvironment.repositoryRoot + "/Sources/HelpDeskServer"
        var names = Set<String>()
        let files = FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        let pattern = #/runFresh\("([a-z_]+)"/#
        for file in files {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            for match in text.matches(of: pattern) { names.insert(String(match.1)) }
        }
        #expect(names.count >= 12, "\(names.sorted())")
        #expect(names == Set(NodeMetrics.freshScripts), "runFresh: \(names.sorted()); helpdesk_script_stale_total: \(NodeMetrics.freshScripts)")
    }

    @Test("the lag gauge is the age of the oldest outbox entry; Redis errors are counted by kind")
    func flushLagAndErrors() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_METRICS_TOKEN": Self.token, "HELPDESK_FLUSH_ENABLED": "0"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        // An outbox entry closed 42 s ago that nobody flushes (flushers are off).
        let redis = cluster.redis()
        let closed = Int64(Date().timeIntervalSince1970 * 1000) - 42_000
        try await redis.send("XADD", a.services.keys.outbox, "\(closed)-0", "conversation_id", "nobody", "epoch", "1")
        let scraped = try await Self.scrape(a)
        #expect(scraped.values["helpdesk_outbox_length"] == 1)
        let lag = try #require(scraped.values["helpdesk_flush_lag_seconds"])
        #expect(lag >= 42)
        #expect(lag < 50)

        // A command Redis refuses is one server_error.
        let series = "helpdesk_redis_errors_total{kind=\"server_error\"}"
        let errorsBefore = scraped.values[series] ?? -1
        await #expect(throws: RedisError.self) { try await a.services.redis.send("NOSUCHCOMMAND") }
        #expect(try await Self.scrape(a).values[series] == errorsBefore + 1)
    }

    // MARK: request ids and JSON logs

    final class Lines: Sendable {
        let box = NIOLockedValueBox<[String]>([])
        func append(_ line: String) { box.withLockedValue { $0.append(line) } }
        var all: [String] { box.withLockedValue { $0 } }
        var objects: [[String: Any]] { all.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } }
    }

    @Test("X-Request-Id: a sane incoming id is kept, anything else replaced; it is in error bodies and on every JSON log line")
    func requestIDs() async throws {
        let lines = Lines()
        var logger = Logger(label: "node") { label in JSONLogHandler(label: label, sink: { lines.append($0) }) }
        logger.logLevel = .info
        let node = try await TestNode.make(logger: logger)
        try await node.test { client in
            let kept = "trace-42.a:b_C"
            try await client.execute(uri: "/api/v1/nothing", method: .get, headers: [.xRequestID: kept]) { response in
                #expect(response.status.code == 404)
                #expect(response.headers[.xRequestID] == kept)
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let error = body?["error"] as? [String: Any]
                #expect(error?["code"] as? String == "not_found")
                #expect(error?["request_id"] as? String == kept)
            }
            var generated: [String] = []
            for bad in ["has space", String(repeating: "a", count: 129), "<script>", "caf\u{e9}", ""] {
                try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: [.xRequestID: bad, .contentType: "application/json"],
                                         body: ByteBuffer(string: "{\"email\": 1}")) { response in
                    #expect(response.status.code == 400)
                    let id = response.headers[.xRequestID] ?? ""
                    let idIsHex = id.count >= 17 && id.count <= 32 && id.allSatisfy(\.isHexDigit)
                    #expect(id != bad)
                    #expect(idIsHex, "\(id)")
                    let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    #expect((body?["error"] as? [String: Any])?["request_id"] as? String == id)
                    generated.append(id)
                }
            }
            #expect(Set(generated).count == 5)
            // 128 characters is still fine.
            let long = String(repeating: "b", count: 128)
            try await client.execute(uri: "/healthz", method: .get, headers: [.xRequestID: long]) { response in
                #expect(response.status.code == 200)
                #expect(response.headers[.xRequestID] == long)
            }

            // Every line is one JSON object; one access line per request, with its id.
            let objects = lines.objects
            #expect(objects.count == lines.all.count)
            #expect(!lines.all.contains { $0.contains("\n") })
            let access = objects.filter { $0["message"] as? String == "request" }
            #expect(access.map { $0["request_id"] as? String } == [kept] + generated + [long])
            #expect(access.map { $0["status"] as? String } == ["404", "400", "400", "400", "400", "400", "200"])
            #expect(access.first?["path"] as? String == "/api/v1/nothing")
            #expect(access.first?["method"] as? String == "GET")
            #expect(access.allSatisfy { $0["level"] as? String == "info" && $0["label"] as? String == "node" && $0["ts"] is String })
            #expect(access.allSatisfy { Double($0["duration_ms"] as? String ?? "") != nil })
        }
    }

    @Test("JSONLogHandler writes one escaped object per line; HELPDESK_LOG_FORMAT is text or json")
    func jsonLines() throws {
        let date = Date(timeIntervalSince1970: 1_773_133_200.1235)
        let line = JSONLogHandler.line(
            timestamp: date, level: .warning, label: "helpdesk", message: "two\nlines \"quoted\" \u{1}",
            metadata: ["hb.request.id": "r1", "user": .stringConvertible(42), "list": ["a", "b"], "map": ["k": "v"], "level": "sneaky"],
            source: "Tests")
        #expect(line == #"{"ts":"2026-03-10T09:00:00.123Z","level":"warning","label":"helpdesk","message":"two\nlines \"quoted\" \u0001","#
            + #""list":["a","b"],"map":{"k":"v"},"meta.level":"sneaky","request_id":"r1","user":"42","source":"Tests"}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(parsed?["message"] as? String == "two\nlines \"quoted\" \u{1}")

        var env = ["HELPDESK_JWT_SECRET": "test-secret-0123456789abcdef"]
        #expect(try ServerConfiguration.fromEnvironment(env).logFormat == .text)
        env["HELPDESK_LOG_FORMAT"] = "json"
        #expect(try ServerConfiguration.fromEnvironment(env).logFormat == .json)
        env["HELPDESK_LOG_FORMAT"] = "xml"
        #expect(throws: HelpDeskError.self) { try ServerConfiguration.fromEnvironment(env) }
        #expect(RequestIDMiddleware<AppRequestContext>.accepted("abc-DEF_1.2:3") == "abc-DEF_1.2:3")
        #expect(RequestIDMiddleware<AppRequestContext>.accepted("a/b") == nil)
    }
}

/// GET with headers, returning the raw body (for Prometheus text).
enum HTTPWithHeaders {
    static func get(_ url: String, headers: [String: String]) async throws -> (Int, Data) {
        var request = URLRequest(url: URL(string: url)!)
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

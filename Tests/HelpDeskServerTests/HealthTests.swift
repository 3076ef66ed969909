import Foundation
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer

/// A redis-server of the test's own, so it can be stopped without disturbing other tests.
final class PrivateRedis: @unchecked Sendable {
    let port: Int
    let directory: String
    private var process: Process?

    let persistent: Bool

    /// - Parameter persistent: AOF on, so a restart keeps the data (as `deploy/redis.conf` does).
    init(persistent: Bool = false) {
        self.persistent = persistent
        // Ports 20000-29999 are free of the services `make test` uses.
        port = Int.random(in: 20000...29999)
        directory = NSTemporaryDirectory() + "redis-\(TestEnvironment.uniqueID())"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    var url: String { "redis://127.0.0.1:\(port)" }

    /// Starts redis-server and waits (without blocking a cooperative thread) until it answers.
    func start() async throws {
        let process = Spawn.process("/usr/bin/redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", persistent ? "yes" : "no",
                             "--appendfsync", "always", "--dir", directory])
        try process.run()
        self.process = process
        let port = self.port
        for _ in 0..<100 {
            if let connection = try? await RedisConnection.connect(configuration: .init(host: "127.0.0.1", port: port)) {
                await connection.close()
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// SIGTERM (AOF is flushed) and wait for the exit, off the cooperative pool.
    func stop() async {
        guard let process else { return }
        self.process = nil
        process.terminate()
        _ = try? await offPool { process.waitUntilExit() }
    }

    /// For `defer`: kill without waiting.
    func kill() {
        guard let process, process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
    }

    deinit { kill() }
}

@Suite("health and readiness")
struct HealthTests {
    @Test("healthz answers; readyz is 503 while Redis is down and 200 again when it returns, without a restart")
    func readinessFollowsRedis() async throws {
        let redis = PrivateRedis()
        try await redis.start()
        defer { redis.kill() }
        let node = try await TestNode.make(redisURL: redis.url)
        try await node.test { client in
            #expect(try await client.json(.get, "/healthz").status == 200)
            let up = try await client.json(.get, "/readyz")
            #expect(up.status == 200)
            #expect(up.body["redis"] as? String == "up")

            await redis.stop()
            let down = try await client.json(.get, "/readyz")
            #expect(down.status == 503)
            #expect(down.body["redis"] as? String == "down")
            #expect(down.body["postgres"] as? String == "up")
            #expect(try await client.json(.get, "/healthz").status == 200, "liveness does not depend on Redis")

            try await redis.start()
            var status = 0
            for _ in 0..<20 {
                status = try await client.json(.get, "/readyz").status
                if status == 200 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(status == 200)
        }
    }

    @Test("metrics are exposed in Prometheus format, to the metrics token only")
    func metrics() async throws {
        let node = try await TestNode.make(["HELPDESK_METRICS_TOKEN": "scrape-me-0123456789"])
        try await node.test { client in
            _ = try await client.json(.get, "/healthz")
            let text = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer scrape-me-0123456789"]) {
                String(buffer: $0.body)
            }
            #expect(text.contains("hb_requests"))
            let anonymous = try await client.json(.get, "/metrics")
            #expect(anonymous.status == 401 && anonymous.body.errorCode == "unauthorized")
            #expect(try await client.json(.get, "/metrics", token: "wrong").status == 401)
        }
        // Without a token configured, metrics are off.
        let off = try await TestNode.make()
        try await off.test { client in
            let response = try await client.json(.get, "/metrics")
            #expect(response.status == 404 && response.body.errorCode == "not_found")
        }
    }

    @Test("HELPDESK_EVENT_LOOPS sets the node's event-loop threads: one here, and the node serves")
    func eventLoops() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_EVENT_LOOPS": "1"])
        defer { Task { await cluster.shutdown() } }
        let node = try await NodeProcess.start(cluster, nodeID: "one-loop")
        defer { node.kill() }
        let tasks = "/proc/\(node.process.processIdentifier)/task"
        let names = try FileManager.default.contentsOfDirectory(atPath: tasks).compactMap {
            try? String(contentsOfFile: tasks + "/" + $0 + "/comm", encoding: .utf8)
        }
        // NIO's singleton group names its loops NIO-SGLTN-<n>-#<i> (its blocking pool SGLTN-TP-#<i>)
        #expect(names.filter { $0.hasPrefix("NIO-SGLTN-") }.count == 1, "threads: \(names.sorted())")
        let (status, body) = try await HTTP.request("POST", node.url + "/api/v1/conversations",
                                                    body: ["name": "Loop", "email": "loop\(TestEnvironment.uniqueID())@example.com"])
        #expect(status == 201, "\(body)")
    }

    @Test("unknown routes get a JSON 404")
    func notFound() async throws {
        let node = try await TestNode.make()
        try await node.test { client in
            let response = try await client.json(.get, "/api/v1/nothing-here")
            #expect(response.status == 404)
            #expect(response.body.errorCode == "not_found")
        }
    }
}

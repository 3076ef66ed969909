import Foundation
import HelpDeskCore
import Hummingbird
import Metrics
import PostgresClient
import Prometheus
import RedisClient

/// `/healthz` (the process answers), `/readyz` (Redis and PostgreSQL answer), `/metrics`.
struct HealthController: Sendable {
    let redis: RedisClient
    let postgres: PostgresPool
    let nodeID: String
    let drain: DrainState
    /// `/metrics` answers only to `Authorization: Bearer <token>`; without a token configured it
    /// is off (404): behind a proxy every request comes from the proxy's address, so "local only"
    /// would mean public.
    var metricsToken: String? = nil
    /// Brings the scrape-time gauges up to date (NodeMetrics.refresh).
    var refreshMetrics: @Sendable () async -> Void = {}

    struct Readiness: Encodable {
        var status: String
        var nodeId: String
        var redis: String
        var postgres: String
    }

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("healthz") { _, _ in
            try Response.json(["status": "ok", "node_id": nodeID])
        }
        router.get("readyz") { _, _ in
            if drain.isDraining {
                return try Response.json(["status": "draining", "node_id": nodeID], status: .serviceUnavailable)
            }
            async let redisOK = Self.probe { try await redis.send("PING") }
            async let postgresOK = Self.probe { try await postgres.query("SELECT 1") }
            let (r, p) = await (redisOK, postgresOK)
            let ready = r && p
            return try Response.json(
                Readiness(status: ready ? "ready" : "unavailable", nodeId: nodeID, redis: r ? "up" : "down", postgres: p ? "up" : "down"),
                status: ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { request, _ in
            guard let metricsToken else { throw HelpDeskError(.notFound, "metrics are off; set HELPDESK_METRICS_TOKEN to scrape them") }
            let presented = request.headers[.authorization].flatMap { $0.lowercased().hasPrefix("bearer ") ? String($0.dropFirst(7)) : nil }
            guard let presented, secretsMatch(presented, metricsToken) else {
                throw HelpDeskError(.unauthorized, "metrics need Authorization: Bearer <HELPDESK_METRICS_TOKEN>")
            }
            await refreshMetrics()
            var bytes: [UInt8] = []
            Metrics.registry.emit(into: &bytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }

    /// True if `check` succeeds within a second; a probe never hangs the readiness route.
    static func probe(_ check: @escaping @Sendable () async throws -> some Sendable) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await check()) != nil }
            group.addTask {
                try? await Task.sleep(for: .seconds(1))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}

/// The process-wide Prometheus registry. swift-metrics can be bootstrapped once per process, so
/// every application built in the process (several in one test run) shares it.
enum Metrics {
    static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped: Void = {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        NodeMetrics.register()
    }()

    static func bootstrap() { _ = bootstrapped }
}

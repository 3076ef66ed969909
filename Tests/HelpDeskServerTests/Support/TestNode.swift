import Foundation
import HelpDeskCore
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
@testable import HelpDeskServer
import PostgresClient
import RedisClient
import TestSupport

/// One node under test: its own PostgreSQL schema and Redis key prefix on the real servers.
struct TestNode {
    let services: NodeServices
    let schema: String

    /// Configuration as a real node reads it, plus `overrides` (e.g. lower limits).
    static func make(_ overrides: [String: String] = [:], redisURL: String = TestEnvironment.redisURL, logger custom: Logger? = nil) async throws -> TestNode {
        let (schema, databaseURL) = try await TestEnvironment.makeSchema()
        var env: [String: String] = [
            "HELPDESK_REDIS_URL": redisURL,
            "HELPDESK_DATABASE_URL": databaseURL,
            "HELPDESK_JWT_SECRET": "test-secret-0123456789abcdef",
            "HELPDESK_KEY_PREFIX": TestEnvironment.uniqueKeyPrefix(),
            "HELPDESK_NODE_ID": "test-\(TestEnvironment.uniqueID())",
            "HELPDESK_LUA_DIR": TestEnvironment.repositoryRoot + "/lua",
            "HELPDESK_MIGRATIONS_DIR": TestEnvironment.repositoryRoot + "/migrations",
            "HELPDESK_PUBLIC_DIR": TestEnvironment.repositoryRoot + "/Public",
            "HELPDESK_PG_POOL_SIZE": "2",
            "HELPDESK_REDIS_POOL_SIZE": "2",
        ]
        env.merge(overrides) { $1 }
        var logger = custom ?? Logger(label: "test")
        if custom == nil { logger.logLevel = .warning }
        let services = try NodeServices(configuration: try ServerConfiguration.fromEnvironment(env), logger: logger)
        // Migrate now, so a test can create accounts before the application is built.
        try await Migrator(pool: services.postgres, directory: services.configuration.migrationsDirectory).migrate()
        return TestNode(services: services, schema: schema)
    }

    /// Runs `body` against the node's router (no sockets). The pools stay open: tests check
    /// stored state through them afterwards; they end with the test process.
    func test<T: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        let app = try await buildApplication(services)
        return try await app.test(.router, body)
    }

    /// Creates an account directly (as `helpdesk user create` does) and returns its id.
    @discardableResult
    func createUser(_ email: String, password: String = "password123", role: String, supervisorEmail: String? = nil) async throws -> Int {
        try await StaffAccounts(pool: services.postgres)
            .create(email: email, name: email.components(separatedBy: "@")[0], password: password, role: role, supervisorEmail: supervisorEmail, capacity: 3).id
    }

    /// Counts rows, to show that refused requests changed nothing.
    func count(_ table: String) async throws -> Int {
        try await services.postgres.query("SELECT count(*) AS n FROM \(table)").first!.decode("n")
    }
}

extension TestClientProtocol {
    /// Sends JSON (or raw text) and returns status and parsed JSON body.
    @discardableResult
    func json(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, body: Any? = nil, raw: String? = nil) async throws -> (status: Int, body: [String: Any], array: [[String: Any]]) {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        var buffer: ByteBuffer?
        if let raw { buffer = ByteBuffer(string: raw) }
        if let body { buffer = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)) }
        return try await execute(uri: uri, method: method, headers: headers, body: buffer) { response in
            let data = Data(buffer: response.body)
            let parsed = data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data)
            return (Int(response.status.code), parsed as? [String: Any] ?? [:], parsed as? [[String: Any]] ?? [])
        }
    }

    /// Logs in and returns the access token (fails the test otherwise).
    func login(_ email: String, _ password: String = "password123") async throws -> String {
        let response = try await json(.post, "/api/v1/auth/login", body: ["email": email, "password": password])
        guard response.status == 200, let token = response.body["access_token"] as? String else {
            throw HelpDeskError(.unauthorized, "login of \(email) failed: \(response.status) \(response.body)")
        }
        return token
    }
}

extension Dictionary where Key == String, Value == Any {
    /// `body["error"]["code"]`.
    var errorCode: String? { (self["error"] as? [String: Any])?["code"] as? String }
}

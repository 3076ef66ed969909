import Foundation
import PostgresClient
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("PostgreSQL restarts and stalls", .serialized)
struct PostgresOutageTests {
    @Test("after a PostgreSQL restart, the first call on every pooled connection succeeds")
    func restartCostsNoError() async throws {
        let postgres = try await offPool { try PrivatePostgres() }
        try await offPool { try postgres.start() }
        defer { Task.detached { _ = try? await offPool { postgres.destroy() } } }
        let pool = PostgresPool(url: postgres.url, size: 3)
        defer { Task { await pool.shutdown() } }
        try await pool.query("CREATE TABLE t (v int)")
        // Three connections open and idle in the pool.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { try await pool.query("SELECT pg_sleep(0.2)") } }
            try await group.waitForAll()
        }
        try await offPool { try postgres.stop() }
        try await offPool { try postgres.start() }
        // Every stale connection is found and replaced before use: no call fails.
        for i in 0..<6 {
            #expect(try await pool.query("SELECT $1::int AS v", [i]).first?.decode("v", as: Int.self) == i)
            _ = try await pool.transaction { try $0.query("INSERT INTO t (v) VALUES ($1)", [i]) }
        }
        #expect(try await pool.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self) == 6)
    }

    @Test("a stuck PostgreSQL answers 503 unavailable within the statement timeout instead of hanging")
    func stuckPostgresIs503() async throws {
        let (_, url) = try await TestEnvironment.makeSchema()
        let node = try await TestNode.make(["HELPDESK_DATABASE_URL": url + "%20-cstatement_timeout%3D400"])
        try await node.createUser("agent@example.com", role: "agent")
        let locker = PostgresPool(url: url, size: 1)
        defer { Task { await locker.shutdown() } }
        let hold = Task {
            try await locker.transaction { c in
                try c.query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                Thread.sleep(forTimeInterval: 2)
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        try await node.test { client in
            let start = ContinuousClock.now
            let response = try await client.json(.post, "/api/v1/auth/login", body: ["email": "agent@example.com", "password": "password123"])
            #expect(response.status == 503)
            #expect(response.body.errorCode == "unavailable")
            #expect(ContinuousClock.now - start < .seconds(1.8))
        }
        try await hold.value
    }

    @Test("control characters and U+0000 are refused with 400 validation_failed and change nothing")
    func nulInput() async throws {
        let node = try await TestNode.make()
        try await node.createUser("admin@example.com", role: "admin")
        try await node.test { client in
            // Login: the e-mail with a NUL must not match the admin in SQL.
            for n in 0..<3 {
                let r = try await client.json(.post, "/api/v1/auth/login", body: ["email": "admin@example.com\u{0}\(n)", "password": "password123"])
                #expect(r.status == 400, "refused at validation, never a login")
                #expect(r.body.errorCode == "validation_failed")
                #expect(r.body["access_token"] == nil)
            }
            let chat = try await client.json(.post, "/api/v1/conversations", body: ["name": "Victim", "email": "victim@x.com\u{0}"])
            #expect(chat.status == 400)
            #expect(chat.body.errorCode == "validation_failed")
            let named = try await client.json(.post, "/api/v1/conversations", body: ["name": "Evil\u{1B}[2J", "email": "ok@x.com"])
            #expect(named.status == 400)
            #expect(named.body.errorCode == "validation_failed")
        }
        #expect(try await node.count("customers") == 0)
    }
}

import Foundation
import PostgresClient
import TestSupport
import Testing

@Suite("PostgresPool")
struct PostgresPoolTests {
    struct BodyFailed: Error, Equatable {}

    private func count(_ table: String, _ pool: PostgresPool) async throws -> Int {
        try await pool.query("SELECT count(*) AS n FROM \(table)").rows[0].decode("n", as: Int.self)
    }

    @Test("transaction commits everything when the body succeeds")
    func transactionCommits() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url) { pool in
                try await pool.query("CREATE TABLE t (v integer PRIMARY KEY)")
                let inserted = try await pool.transaction { connection in
                    try connection.query("INSERT INTO t (v) VALUES ($1)", [1])
                    try connection.query("INSERT INTO t (v) VALUES ($1)", [2])
                    return try connection.query("SELECT count(*) AS n FROM t").rows[0].decode("n", as: Int.self)
                }
                #expect(inserted == 2)
                // Visible to another connection: committed.
                let visible = try await withPool(url: url, size: 1) { other in try await count("t", other) }
                #expect(visible == 2)
            }
        }
    }

    @Test("transaction rolls back entirely and rethrows the body's error")
    func transactionRollsBackOnThrow() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url, size: 1) { pool in
                try await pool.query("CREATE TABLE t (v integer PRIMARY KEY)")
                try await pool.query("INSERT INTO t (v) VALUES (0)")
                await #expect(throws: BodyFailed()) {
                    try await pool.transaction { connection in
                        try connection.query("INSERT INTO t (v) VALUES ($1)", [1])
                        try connection.query("UPDATE t SET v = 10 WHERE v = 0")
                        try connection.query("CREATE TABLE made_in_transaction (x integer)")
                        throw BodyFailed()
                    }
                }
                #expect(try await pool.query("SELECT v FROM t").rows.map { try $0.decode("v", as: Int.self) } == [0])
                #expect(try await pool.query("SELECT to_regclass('made_in_transaction') AS r").rows[0].raw("r") == nil)
                // The same (only) connection is out of the transaction: a new statement runs and autocommits.
                try await pool.query("INSERT INTO t (v) VALUES (5)")
                let outside = await #expect(throws: PostgresError.self) { try await pool.query("SAVEPOINT s") }
                #expect(outside?.sqlState == "25P01") // "SAVEPOINT can only be used in transaction blocks"
                let visible = try await withPool(url: url, size: 1) { other in try await count("t", other) }
                #expect(visible == 2)
            }
        }
    }

    @Test("transaction rolls back when a statement inside fails")
    func transactionRollsBackOnStatementError() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url, size: 1) { pool in
                try await pool.query("CREATE TABLE t (v integer PRIMARY KEY)")
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.transaction { connection in
                        try connection.query("INSERT INTO t (v) VALUES ($1)", [1])
                        try connection.query("INSERT INTO t (v) VALUES ($1)", [1])
                    }
                }
                #expect(error?.isUniqueViolation == true)
                #expect(try await count("t", pool) == 0)
                // Not left in an aborted transaction.
                try await pool.query("INSERT INTO t (v) VALUES ($1)", [1])
                #expect(try await count("t", pool) == 1)
            }
        }
    }

    @Test("withConnection rethrows the body's own error unchanged")
    func withConnectionRethrows() async throws {
        try await withPool(url: TestEnvironment.databaseURL, size: 1) { pool in
            await #expect(throws: BodyFailed()) {
                try await pool.withConnection { _ in throw BodyFailed() }
            }
            let seven = try await pool.withConnection { try $0.query("SELECT 7 AS n").rows[0].decode("n", as: Int.self) }
            #expect(seven == 7)
        }
    }

    @Test("a pool of size 2 never uses more than 2 connections for 20 concurrent queries")
    func boundedPool() async throws {
        let applicationName = "pool_\(TestEnvironment.uniqueID())"
        let url = adding("application_name=\(applicationName)", to: TestEnvironment.databaseURL)
        try await withPool(url: TestEnvironment.databaseURL, size: 1) { monitor in
            try await withPool(url: url, size: 2) { pool in
                // Sample pg_stat_activity while the queries run.
                let sampler = Task {
                    var samples: [Int] = []
                    while !Task.isCancelled {
                        if let n = try? await connectionCount(applicationName: applicationName, using: monitor) { samples.append(n) }
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                    return samples
                }
                let start = ContinuousClock.now
                let pids = try await withTimeout(.seconds(30), "20 concurrent queries") {
                    try await withThrowingTaskGroup(of: Int.self) { group in
                        for _ in 0..<20 {
                            group.addTask {
                                try await pool.query("SELECT pg_sleep(0.05), pg_backend_pid() AS pid").rows[0].decode("pid", as: Int.self)
                            }
                        }
                        var pids: [Int] = []
                        for try await pid in group { pids.append(pid) }
                        return pids
                    }
                }
                let elapsed = ContinuousClock.now - start
                sampler.cancel()
                let samples = await sampler.value

                #expect(pids.count == 20)
                #expect(Set(pids).count <= 2)
                #expect(Set(pids).count >= 1)
                // 20 × 50 ms on at most 2 connections takes at least 500 ms.
                #expect(elapsed >= .milliseconds(450))
                #expect(!samples.isEmpty)
                #expect(samples.max() ?? 0 <= 2, "connections seen: \(samples)")
                #expect(samples.max() ?? 0 >= 1, "the sampler never saw the pool's connections: \(samples)")
                #expect(try await connectionCount(applicationName: applicationName, using: monitor) <= 2)
            }
            // shutdown closes them all.
            try await waitUntil("the pool's connections to close") {
                try await connectionCount(applicationName: applicationName, using: monitor) == 0
            }
        }
    }

    @Test("after its backend is terminated the pool fails at most one query, then reconnects")
    func reconnectsAfterTerminate() async throws {
        let applicationName = "kill_\(TestEnvironment.uniqueID())"
        let url = adding("application_name=\(applicationName)", to: TestEnvironment.databaseURL)
        try await withPool(url: TestEnvironment.databaseURL, size: 1) { admin in
            try await withPool(url: url, size: 2) { pool in
                // Sequential queries reuse one connection.
                let pid = try await pool.query("SELECT pg_backend_pid() AS pid").rows[0].decode("pid", as: Int.self)
                #expect(try await pool.query("SELECT pg_backend_pid() AS pid").rows[0].decode("pid", as: Int.self) == pid)
                #expect(try await connectionCount(applicationName: applicationName, using: admin) == 1)

                let terminated = try await admin.query(
                    "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1", [applicationName])
                #expect(try terminated.rows.map { try $0.decode("ok", as: Bool.self) } == [true])
                try await waitUntil("the backend to exit") {
                    try await connectionCount(applicationName: applicationName, using: admin) == 0
                }

                var failures: [PostgresError] = []
                var newPid: Int?
                for _ in 0..<2 {
                    do {
                        newPid = try await pool.query("SELECT pg_backend_pid() AS pid").rows[0].decode("pid", as: Int.self)
                        break
                    } catch let error as PostgresError {
                        failures.append(error)
                    }
                }
                #expect(failures.count <= 1, "failures: \(failures)")
                #expect(failures.allSatisfy { $0.code == .connectionFailed }, "failures: \(failures)")
                let fresh = try #require(newPid)
                #expect(fresh != pid)
                // And it keeps working on the new connection.
                #expect(try await pool.query("SELECT pg_backend_pid() AS pid").rows[0].decode("pid", as: Int.self) == fresh)
                #expect(try await connectionCount(applicationName: applicationName, using: admin) == 1)
            }
        }
    }
}

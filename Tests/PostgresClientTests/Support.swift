import Foundation
import PostgresClient
import Synchronization
import TestSupport

/// Runs `body` with a pool, shutting the pool down afterwards whether or not `body` threw.
func withPool<T>(url: String, size: Int = 2, _ body: (PostgresPool) async throws -> T) async throws -> T {
    let pool = PostgresPool(url: url, size: size)
    do {
        let result = try await body(pool)
        await pool.shutdown()
        return result
    } catch {
        await pool.shutdown()
        throw error
    }
}

/// A fresh schema of the test's own (see `TestEnvironment.makeSchema`), dropped afterwards.
func withSchema<T>(_ body: (_ url: String, _ schema: String) async throws -> T) async throws -> T {
    let (schema, url) = try await TestEnvironment.makeSchema()
    do {
        let result = try await body(url, schema)
        await dropSchema(schema)
        return result
    } catch {
        await dropSchema(schema)
        throw error
    }
}

private func dropSchema(_ schema: String) async {
    let admin = PostgresPool(url: TestEnvironment.databaseURL, size: 1)
    _ = try? await admin.query("DROP SCHEMA IF EXISTS \(schema) CASCADE")
    await admin.shutdown()
}

/// `url` with one more query parameter.
func adding(_ parameter: String, to url: String) -> String {
    url + (url.contains("?") ? "&" : "?") + parameter
}

/// How many server connections have this `application_name` right now.
func connectionCount(applicationName: String, using pool: PostgresPool) async throws -> Int {
    try await pool.query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [applicationName])
        .rows[0].decode("n", as: Int.self)
}

/// A directory of its own under the temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "migrations-\(TestEnvironment.uniqueID())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ contents: String) throws {
        try contents.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

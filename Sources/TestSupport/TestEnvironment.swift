import Foundation
import PostgresClient

/// Where the tests find the Redis and PostgreSQL that `make test` started, and the isolation
/// every test needs: its own Redis key prefix and its own PostgreSQL schema.
public enum TestEnvironment {
    /// `HELPDESK_TEST_REDIS_URL`, default the port `make test` uses.
    public static var redisURL: String {
        ProcessInfo.processInfo.environment["HELPDESK_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6391"
    }

    /// `HELPDESK_TEST_DATABASE_URL`, default the port `make test` uses.
    public static var databaseURL: String {
        ProcessInfo.processInfo.environment["HELPDESK_TEST_DATABASE_URL"] ?? "postgresql://postgres@127.0.0.1:5491/helpdesk_test"
    }

    /// Where tests put screenshots, logs and other artefacts.
    public static var outputDirectory: String {
        let path = ProcessInfo.processInfo.environment["HELPDESK_TEST_OUTPUT"] ?? FileManager.default.currentDirectoryPath + "/.build/test-output"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The repository root (for `lua/`, `migrations/`, `Public/`).
    public static var repositoryRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }

    /// A short random id for names.
    public static func uniqueID() -> String {
        String(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12))
    }

    /// A fresh key prefix with its own hash tag, e.g. `hd:{t3f9a...}:`.
    public static func uniqueKeyPrefix() -> String {
        "hd:{t\(uniqueID())}:"
    }

    /// Creates a new schema and returns a database URL whose connections use it by default.
    public static func makeSchema() async throws -> (schema: String, url: String) {
        let schema = "t_\(uniqueID())"
        let admin = PostgresPool(url: databaseURL, size: 1)
        try await admin.query("CREATE SCHEMA \(schema)")
        await admin.shutdown()
        let separator = databaseURL.contains("?") ? "&" : "?"
        return (schema, databaseURL + separator + "options=-csearch_path%3D\(schema)")
    }
}

import Foundation
import PostgresClient
import Testing
import TestSupport

@Suite("PostgreSQL client: exact parameters, bounded waits, error classes")
struct PostgresSafetyTests {
    static let awkward: [String?] = [
        "plain", "a,b", "{braces}", "\"quoted\"", "back\\slash", "\\\"", "NULL", nil, "", "  spaced  ", "line\nbreak\r\n\ttab",
        "emoji 👨‍👩‍👧‍👦 ß", String(repeating: "é", count: 5000), "'single'", "\u{7F}\u{1B}[31m",
    ]

    @Test("a parameter holding U+0000 is refused before anything runs, never truncated")
    func nulRefused() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url, size: 1) { pool in
                try await pool.query("CREATE TABLE t (v text)")
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.query("INSERT INTO t (v) VALUES ($1)", ["admin@example.com\u{0}evil"])
                }
                #expect(error?.code == .invalidParameter)
                #expect(error?.message.contains("$1") == true)
                await #expect(throws: PostgresError.self) { try await pool.query("SELECT $1::text[] AS a", [PostgresArray(["ok", "a\u{0}"])]) }
                #expect(try await pool.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self) == 0)
                // The connection is still fine afterwards.
                #expect(try await pool.query("SELECT 1 AS one").first?.decode("one", as: Int.self) == 1)
            }
        }
    }

    @Test("text and text[] parameters round-trip byte for byte")
    func roundTrip() async throws {
        try await withPool(url: TestEnvironment.databaseURL, size: 1) { pool in
            for value in Self.awkward.compactMap({ $0 }) {
                #expect(try await pool.query("SELECT $1::text AS v", [value]).first?.decode("v", as: String.self) == value)
            }
            let rows = try await pool.query("SELECT v FROM unnest($1::text[]) WITH ORDINALITY AS x(v, n) ORDER BY n", [PostgresArray(Self.awkward)]).rows
            #expect(try rows.map { try $0.raw("v") } == Self.awkward)
            let numbers = try await pool.query("SELECT sum(v) AS s FROM unnest($1::int8[]) AS x(v)", [PostgresArray([Int64(1), nil, 40])])
            #expect(try numbers.first?.decode("s", as: Int64.self) == 41)
        }
    }

    @Test("a call waits at most the acquire deadline for a busy pool")
    func acquireDeadline() async throws {
        let pool = PostgresPool(url: TestEnvironment.databaseURL, size: 1, acquireTimeout: .milliseconds(300))
        let busy = Task { try await pool.query("SELECT pg_sleep(1.5)") }
        try await Task.sleep(for: .milliseconds(150))
        let start = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
        #expect(error?.code == .timedOut)
        #expect(error?.isUnavailable == true)
        #expect(ContinuousClock.now - start < .seconds(1))
        _ = try await busy.value
        #expect(try await pool.query("SELECT 1 AS one").first?.decode("one", as: Int.self) == 1)
        await pool.shutdown()
    }

    @Test("statements are cut at the statement timeout and count as unavailable")
    func statementTimeout() async throws {
        let pool = PostgresPool(url: TestEnvironment.databaseURL, size: 1, statementTimeout: .milliseconds(200))
        let start = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT pg_sleep(3)") }
        #expect(error?.sqlState == "57014")
        #expect(error?.kind == .transient)
        #expect(error?.isUnavailable == true)
        #expect(ContinuousClock.now - start < .seconds(2))
        await pool.shutdown()
    }

    @Test("SQLSTATEs are classified: outages retry, data errors do not")
    func classification() {
        for state in ["08006", "08001", "40001", "40P01", "53100", "53300", "57P01", "57P03", "55P03", "57014", "25006", "58030"] {
            #expect(PostgresError(.queryFailed, "x", sqlState: state).kind == .transient, "\(state)")
        }
        for state in ["22P02", "22001", "23505", "23503", "23514"] {
            #expect(PostgresError(.queryFailed, "x", sqlState: state).kind == .data, "\(state)")
            #expect(!PostgresError(.queryFailed, "x", sqlState: state).isUnavailable)
        }
        #expect(PostgresError(.queryFailed, "x", sqlState: "42P01").kind == .other)
        #expect(PostgresError(.connectionFailed, "x").kind == .transient)
        #expect(PostgresError(.invalidParameter, "x").kind == .data)
    }
}

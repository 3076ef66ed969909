import Foundation
import PostgresClient
import TestSupport
import Testing

@Suite("PostgreSQL queries")
struct PostgresQueryTests {
    @Test("parameters of every supported type round-trip through typed columns")
    func typedRoundTrip() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url) { pool in
                try await pool.query("""
                    CREATE TABLE samples (
                        s text, i integer, big bigint, d double precision, b boolean, u uuid, t timestamptz, n text
                    )
                    """)
                let uuid = UUID()
                let rowsIn: [[(any PostgresEncodable)?]] = [
                    ["plain", 42, Int64(9_007_199_254_740_993), 3.141592653589793, true, uuid, Date(timeIntervalSince1970: 0), nil],
                    ["é 🙂 \\ \n", -7, Int64.min, -0.1, false, uuid, Date(timeIntervalSince1970: 1_772_600_767.5), nil],
                    ["", Int(Int32.max), Int64.max, 1e300, true, uuid, Date(timeIntervalSince1970: -86_400), "not null"],
                ]
                for (index, parameters) in rowsIn.enumerated() {
                    let inserted = try await pool.query(
                        "INSERT INTO samples (s, i, big, d, b, u, t, n) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", parameters)
                    #expect(inserted.affectedRows == 1, "row \(index)")
                }
                let rows = try await pool.query("SELECT * FROM samples ORDER BY big").rows
                try #require(rows.count == 3)
                // ORDER BY big: Int64.min, 9007199254740993, Int64.max
                let (second, first, third) = (rows[0], rows[1], rows[2])

                #expect(try first.decode("s", as: String.self) == "plain")
                #expect(try first.decode("i", as: Int.self) == 42)
                #expect(try first.decode("big", as: Int64.self) == 9_007_199_254_740_993)
                #expect(try first.decode("d", as: Double.self) == 3.141592653589793)
                #expect(try first.decode("b", as: Bool.self) == true)
                #expect(try first.decode("u", as: UUID.self) == uuid)
                #expect(try first.decode("t", as: Date.self) == Date(timeIntervalSince1970: 0))
                #expect(try first.optional("n", as: String.self) == nil)
                #expect(try first.raw("n") == nil)

                #expect(try second.decode("s", as: String.self) == "é 🙂 \\ \n")
                #expect(try second.decode("i", as: Int.self) == -7)
                #expect(try second.decode("big", as: Int64.self) == Int64.min)
                #expect(try second.decode("d", as: Double.self) == -0.1)
                #expect(try second.decode("b", as: Bool.self) == false)
                #expect(try second.decode("t", as: Date.self) == Date(timeIntervalSince1970: 1_772_600_767.5))

                #expect(try third.decode("s", as: String.self) == "")
                #expect(try third.decode("i", as: Int.self) == Int(Int32.max))
                #expect(try third.decode("big", as: Int64.self) == Int64.max)
                #expect(try third.decode("d", as: Double.self) == 1e300)
                #expect(try third.decode("t", as: Date.self) == Date(timeIntervalSince1970: -86_400))
                #expect(try third.optional("n", as: String.self) == "not null")
                #expect(try third.optional("i", as: Int.self) == Int(Int32.max))
            }
        }
    }

    @Test("a Date round-trips through timestamptz to the millisecond")
    func dateMillisecondPrecision() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url) { pool in
                try await pool.query("CREATE TABLE times (t timestamptz NOT NULL)")
                // 2026-03-04 05:06:07.123 UTC and a few neighbours that binary fractions cannot hold exactly.
                let base = 1_772_600_767.0
                for millis in [123, 1, 999, 500, 7] {
                    let date = Date(timeIntervalSince1970: base + Double(millis) / 1000)
                    try await pool.query("DELETE FROM times")
                    try await pool.query("INSERT INTO times (t) VALUES ($1)", [date])
                    let row = try #require(try await pool.query("""
                        SELECT t, to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS text FROM times
                        """).first)
                    // The server stored the intended instant...
                    let text = try row.decode("text", as: String.self)
                    #expect(text == String(format: "2026-03-04 05:06:07.%03d", millis))
                    // ...and it comes back as the same Date, to the millisecond.
                    let back = try row.decode("t", as: Date.self)
                    #expect(abs(back.timeIntervalSince(date)) < 0.000_5, "\(millis) ms: sent \(date.timeIntervalSince1970), got \(back.timeIntervalSince1970)")
                }
                // now() on the server decodes to about now here.
                let now = try #require(try await pool.query("SELECT now() AS t").first).decode("t", as: Date.self)
                #expect(abs(now.timeIntervalSinceNow) < 60)
            }
        }
    }

    @Test("NULL decodes as nil through optional() and fails through decode()")
    func nulls() async throws {
        try await withPool(url: TestEnvironment.databaseURL, size: 1) { pool in
            let none: String? = nil
            let row = try #require(try await pool.query("SELECT $1::text AS a, $2::int AS b, NULL::uuid AS c", [none, 5]).first)
            #expect(try row.optional("a", as: String.self) == nil)
            #expect(try row.optional("b", as: Int.self) == 5)
            #expect(try row.optional("c", as: UUID.self) == nil)
            let error = #expect(throws: PostgresError.self) { try row.decode("a", as: String.self) }
            #expect(error?.code == .decodingFailed)
        }
    }

    @Test("a value with quotes and semicolons is data, never SQL")
    func injectionIsData() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url) { pool in
                try await pool.query("CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL)")
                try await pool.query("INSERT INTO notes (id, body) VALUES (1, 'first')")
                let hostile = "x'); DROP TABLE notes; -- \" ; SELECT 1; $1 \\' E'\\x00"
                try await pool.query("INSERT INTO notes (id, body) VALUES ($1, $2)", [2, hostile])
                let rows = try await pool.query("SELECT body FROM notes WHERE body = $1", [hostile]).rows
                #expect(rows.count == 1)
                #expect(try rows.first?.decode("body", as: String.self) == hostile)
                // The table is still there with both rows.
                #expect(try await pool.query("SELECT count(*) AS n FROM notes").rows[0].decode("n", as: Int.self) == 2)
                // A hostile value in a WHERE clause matches nothing instead of everything.
                let none = try await pool.query("SELECT id FROM notes WHERE body = $1", ["' OR '1'='1"])
                #expect(none.isEmpty)
            }
        }
    }

    @Test("decoding a value as the wrong type throws decodingFailed", arguments: [
        ("SELECT 'abc'::text AS v", "Int"),
        ("SELECT 1.5::float8 AS v", "Int"),
        ("SELECT 'abc'::text AS v", "Double"),
        ("SELECT 42 AS v", "Bool"),
        ("SELECT 'not-a-uuid'::text AS v", "UUID"),
        ("SELECT 'yesterday-ish'::text AS v", "Date"),
        ("SELECT 99999999999999999999::numeric AS v", "Int64"),
    ])
    func wrongTypeThrows(sql: String, type: String) async throws {
        try await withPool(url: TestEnvironment.databaseURL, size: 1) { pool in
            let row = try #require(try await pool.query(sql).first)
            let error = #expect(throws: PostgresError.self) {
                switch type {
                case "Int": _ = try row.decode("v", as: Int.self)
                case "Int64": _ = try row.decode("v", as: Int64.self)
                case "Double": _ = try row.decode("v", as: Double.self)
                case "Bool": _ = try row.decode("v", as: Bool.self)
                case "UUID": _ = try row.decode("v", as: UUID.self)
                case "Date": _ = try row.decode("v", as: Date.self)
                default: Issue.record("unknown type \(type)")
                }
            }
            #expect(error?.code == .decodingFailed)
        }
    }

    @Test("asking for a column that is not in the result throws decodingFailed")
    func missingColumn() async throws {
        try await withPool(url: TestEnvironment.databaseURL, size: 1) { pool in
            let row = try #require(try await pool.query("SELECT 1 AS one").first)
            let error = #expect(throws: PostgresError.self) { try row.decode("two", as: Int.self) }
            #expect(error?.code == .decodingFailed)
        }
    }

    @Test("a unique violation is queryFailed with sqlState 23505")
    func uniqueViolation() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url) { pool in
                try await pool.query("CREATE TABLE users (email text PRIMARY KEY)")
                try await pool.query("INSERT INTO users (email) VALUES ($1)", ["a@example.com"])
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.query("INSERT INTO users (email) VALUES ($1)", ["a@example.com"])
                }
                #expect(error?.code == .queryFailed)
                #expect(error?.sqlState == "23505")
                #expect(error?.isUniqueViolation == true)
                #expect(error?.message.contains("duplicate key") == true)
                // The connection is fine afterwards.
                #expect(try await pool.query("SELECT count(*) AS n FROM users").rows[0].decode("n", as: Int.self) == 1)
            }
        }
    }

    @Test("other statement errors are queryFailed with their own sqlState", arguments: [
        ("SELEC 1", "42601"),                      // syntax error
        ("SELECT * FROM no_such_table_here", "42P01"), // undefined table
        ("SELECT 1 / 0", "22012"),                 // division by zero
        ("SELECT $1::int", "22P02"),               // invalid text for integer
    ])
    func statementErrors(sql: String, sqlState: String) async throws {
        try await withPool(url: TestEnvironment.databaseURL, size: 1) { pool in
            let parameters: [(any PostgresEncodable)?] = sql.contains("$1") ? ["twelve"] : []
            let error = await #expect(throws: PostgresError.self) {
                try await pool.query(sql, parameters)
            }
            #expect(error?.code == .queryFailed)
            #expect(error?.sqlState == sqlState)
            #expect(error?.isUniqueViolation == false)
            let one = try await pool.query("SELECT 1 AS one").rows[0].decode("one", as: Int.self)
            #expect(one == 1)
        }
    }

    @Test("affectedRows counts the rows a statement changed")
    func affectedRows() async throws {
        try await withSchema { url, _ in
            try await withPool(url: url) { pool in
                try await pool.query("CREATE TABLE n (v integer)")
                #expect(try await pool.query("INSERT INTO n SELECT generate_series(1, 5)").affectedRows == 5)
                #expect(try await pool.query("UPDATE n SET v = v + 1 WHERE v > $1", [2]).affectedRows == 3)
                #expect(try await pool.query("DELETE FROM n WHERE v = $1", [100]).affectedRows == 0)
                let select = try await pool.query("SELECT v FROM n ORDER BY v")
                #expect(try select.rows.map { try $0.decode("v", as: Int.self) } == [1, 2, 4, 5, 6])
            }
        }
    }

    @Test("a connection to a server that is not there fails with connectionFailed")
    func connectionFailed() async throws {
        try await withPool(url: "postgresql://postgres@127.0.0.1:1/none", size: 1) { pool in
            let error = await #expect(throws: PostgresError.self) {
                try await withTimeout(.seconds(10), "connecting to a closed port") { try await pool.query("SELECT 1") }
            }
            #expect(error?.code == .connectionFailed)
        }
    }

    @Test("a pool that was shut down throws poolClosed")
    func poolClosed() async throws {
        let pool = PostgresPool(url: TestEnvironment.databaseURL, size: 1)
        #expect(try await pool.query("SELECT 1 AS one").rows.count == 1)
        await pool.shutdown()
        let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
        #expect(error?.code == .poolClosed)
    }
}

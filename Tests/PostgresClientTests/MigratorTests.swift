import Foundation
import PostgresClient
import TestSupport
import Testing

@Suite("Migrator")
struct MigratorTests {
    static let good = [
        ("0001_items.sql", "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL);"),
        ("0002_seed.sql", "INSERT INTO items (id, name) VALUES (1, 'seed');"),
        ("0003_note.sql", """
            -- a comment, two statements
            ALTER TABLE items ADD COLUMN note text;
            UPDATE items SET note = 'added by 0003';
            """),
    ]

    private func versions(_ pool: PostgresPool) async throws -> [String] {
        try await pool.query("SELECT version FROM schema_migrations ORDER BY version").rows.map { try $0.decode("version", as: String.self) }
    }

    private func tableExists(_ name: String, _ pool: PostgresPool) async throws -> Bool {
        try await pool.query("SELECT to_regclass($1) IS NOT NULL AS e", [name]).rows[0].decode("e", as: Bool.self)
    }

    @Test("files() lists the .sql files sorted by name")
    func filesAreSorted() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("0010_later.sql", "SELECT 1;")
        try directory.write("0002_b.sql", "SELECT 1;")
        try directory.write("0001_a.sql", "SELECT 1;")
        try directory.write("README.md", "not a migration")
        let pool = PostgresPool(url: TestEnvironment.databaseURL, size: 1)
        #expect(try Migrator(pool: pool, directory: directory.path).files() == ["0001_a.sql", "0002_b.sql", "0010_later.sql"])
        await pool.shutdown()
    }

    @Test("three concurrent migrate() calls apply each file exactly once")
    func concurrentMigrationsApplyOnce() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for (name, sql) in Self.good { try directory.write(name, sql) }
        try await withSchema { url, _ in
            let applied = try await withTimeout(.seconds(30), "three concurrent migrations") {
                try await withThrowingTaskGroup(of: [String].self) { group in
                    for _ in 0..<3 {
                        group.addTask {
                            try await withPool(url: url, size: 1) { pool in
                                try await Migrator(pool: pool, directory: directory.path).migrate()
                            }
                        }
                    }
                    var all: [[String]] = []
                    for try await versions in group { all.append(versions) }
                    return all
                }
            }
            // Between them the three calls applied every version once; the others found it done.
            #expect(applied.count == 3)
            #expect(applied.flatMap { $0 }.sorted() == ["0001_items", "0002_seed", "0003_note"])
            try await withPool(url: url, size: 1) { pool in
                #expect(try await versions(pool) == ["0001_items", "0002_seed", "0003_note"])
                #expect(try await pool.query("SELECT count(*) AS n FROM items").rows[0].decode("n", as: Int.self) == 1)
                let row = try #require(try await pool.query("SELECT name, note FROM items").first)
                #expect(try row.decode("name", as: String.self) == "seed")
                #expect(try row.optional("note", as: String.self) == "added by 0003")
                // Nothing left to do.
                #expect(try await Migrator(pool: pool, directory: directory.path).migrate() == [])
            }
        }
    }

    @Test("a failing migration throws migrationFailed and is rolled back whole; earlier files stay")
    func failingMigrationRollsBack() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("0001_items.sql", Self.good[0].1)
        try directory.write("0002_seed.sql", Self.good[1].1)
        try directory.write("0003_broken.sql", """
            CREATE TABLE x (id integer PRIMARY KEY);
            INSERT INTO x (id) VALUES (1);
            INSERT INTO does_not_exist VALUES (1);
            """)
        try directory.write("0004_after.sql", "CREATE TABLE after_broken (id integer);")
        try await withSchema { url, _ in
            try await withPool(url: url, size: 1) { pool in
                let migrator = Migrator(pool: pool, directory: directory.path)
                let error = await #expect(throws: PostgresError.self) {
                    try await withTimeout(.seconds(10), "a failing migration") { try await migrator.migrate() }
                }
                #expect(error?.code == .migrationFailed)
                #expect(error?.message.contains("0003_broken.sql") == true)
                #expect(error?.message.contains("does_not_exist") == true)

                #expect(try await tableExists("x", pool) == false)
                #expect(try await tableExists("after_broken", pool) == false)
                #expect(try await versions(pool) == ["0001_items", "0002_seed"])
                #expect(try await pool.query("SELECT count(*) AS n FROM items").rows[0].decode("n", as: Int.self) == 1)

                // Fixed, the next run applies the rest (and the advisory lock was released).
                try directory.write("0003_broken.sql", "CREATE TABLE x (id integer PRIMARY KEY);")
                let applied = try await withTimeout(.seconds(10), "the migration after the fix") { try await migrator.migrate() }
                #expect(applied == ["0003_broken", "0004_after"])
                #expect(try await tableExists("x", pool))
                #expect(try await versions(pool) == ["0001_items", "0002_seed", "0003_broken", "0004_after"])
            }
        }
    }

    @Test("migrations of different schemas do not wait for each other")
    func schemasDoNotBlockEachOther() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("0001_items.sql", Self.good[0].1)
        try await withSchema { firstURL, firstSchema in
            try await withSchema { secondURL, _ in
                try await withPool(url: firstURL, size: 1) { holder in
                    // Hold the first schema's migration lock on a connection of its own.
                    _ = try await holder.withConnection { connection in
                        try connection.query("SELECT pg_advisory_lock(7231, hashtext($1))", [firstSchema])
                    }
                    let applied = try await withTimeout(.seconds(10), "migrating another schema") {
                        try await withPool(url: secondURL, size: 1) { try await Migrator(pool: $0, directory: directory.path).migrate() }
                    }
                    #expect(applied == ["0001_items"])
                    try await holder.query("SELECT pg_advisory_unlock(7231, hashtext($1))", [firstSchema])
                }
            }
        }
    }

    @Test("the repository's migrations apply cleanly to a fresh schema, and a second run applies nothing")
    func repositoryMigrations() async throws {
        let directory = TestEnvironment.repositoryRoot + "/migrations"
        try await withSchema { url, _ in
            try await withPool(url: url, size: 1) { pool in
                let migrator = Migrator(pool: pool, directory: directory)
                let files = try migrator.files()
                #expect(!files.isEmpty)
                let applied = try await withTimeout(.seconds(30), "the repository's migrations") { try await migrator.migrate() }
                #expect(applied == files.map { String($0.dropLast(4)) })
                #expect(try await versions(pool) == applied)
                #expect(try await tableExists("users", pool))
                #expect(try await tableExists("refresh_tokens", pool))
                #expect(try await migrator.migrate() == [])
                #expect(try await versions(pool) == applied)
            }
        }
    }
}

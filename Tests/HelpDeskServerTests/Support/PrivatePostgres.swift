import Foundation
import TestSupport

/// A PostgreSQL cluster of the test's own, so it can be stopped without disturbing other tests.
/// Runs as the `postgres` user when the tests run as root (PostgreSQL refuses root).
final class PrivatePostgres: @unchecked Sendable {
    let port: Int
    let directory: String
    static let bin = "/usr/lib/postgresql/15/bin"

    init() throws {
        port = Int.random(in: 30000...39999)
        directory = "/tmp/helpdesk-pg-\(TestEnvironment.uniqueID())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try Self.run("/bin/chown", ["postgres", directory]) }
        try Self.asPostgres("\(Self.bin)/initdb", ["-D", directory + "/data", "-U", "postgres", "--auth=trust", "--no-sync"])
    }

    var url: String { "postgresql://postgres@127.0.0.1:\(port)/postgres" }

    func start() throws {
        try Self.asPostgres("\(Self.bin)/pg_ctl", ["-D", directory + "/data", "-l", directory + "/log", "-w", "-o",
                                                   "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    }

    func stop() throws {
        try Self.asPostgres("\(Self.bin)/pg_ctl", ["-D", directory + "/data", "-m", "fast", "-w", "stop"])
    }

    func destroy() {
        try? stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func asPostgres(_ tool: String, _ arguments: [String]) throws {
        if getuid() == 0 { try run("/usr/sbin/runuser", ["-u", "postgres", "--", tool] + arguments) } else { try run(tool, arguments) }
    }

    private static func run(_ tool: String, _ arguments: [String]) throws {
        try Spawn.run(tool, arguments)
    }
}

import Foundation
import RedisClient
import Synchronization
import TestSupport

/// The shared test Redis.
func testConfiguration() throws -> RedisConfiguration {
    try RedisConfiguration(url: TestEnvironment.redisURL)
}

/// A Redis ACL user of the test's own, so a test can find and kill exactly its own connections
/// (`CLIENT KILL USER`) without touching those of tests running in parallel. It may only touch
/// keys under the test's prefix.
struct TestRedisUser {
    let name: String
    let password: String

    static func create(prefix: String) async throws -> TestRedisUser {
        let user = TestRedisUser(name: "test_\(TestEnvironment.uniqueID())", password: TestEnvironment.uniqueID())
        _ = try await withAdminConnection { admin in
            try await admin.send(["ACL", "SETUSER", user.name, "reset", "on", ">\(user.password)", "~\(prefix)*", "&*", "+@all"])
        }
        return user
    }

    /// The shared test Redis, logged in as this user.
    func configuration() throws -> RedisConfiguration {
        var configuration = try testConfiguration()
        configuration.username = name
        configuration.password = password
        return configuration
    }

    /// How many connections are logged in as this user right now (from `CLIENT LIST`).
    func connectionCount() async throws -> Int {
        let list = try await withAdminConnection { try await $0.send(["CLIENT", "LIST"]).string ?? "" }
        return list.split(separator: "\n").filter { $0.contains(" user=\(name) ") }.count
    }

    /// Closes every connection of this user from another connection; returns how many were closed.
    @discardableResult
    func killConnections() async throws -> Int {
        try await withAdminConnection { try await $0.send(["CLIENT", "KILL", "USER", name]).int ?? -1 }
    }

    /// Deletes the user (which also disconnects it).
    func delete() async {
        guard let admin = try? await RedisConnection.connect(configuration: testConfiguration()) else { return }
        _ = try? await admin.send(["ACL", "DELUSER", name])
        await admin.close()
    }
}

/// Runs `body` on a fresh connection to the shared test Redis (not pooled, not the test's user), then closes it.
func withAdminConnection<T>(_ body: (RedisConnection) async throws -> T) async throws -> T {
    let connection = try await RedisConnection.connect(configuration: testConfiguration())
    do {
        let result = try await body(connection)
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw error
    }
}

/// Deletes the given keys (test clean-up).
func deleteKeys(_ keys: [String]) async {
    guard !keys.isEmpty, let connection = try? await RedisConnection.connect(configuration: testConfiguration()) else { return }
    _ = try? await connection.send(["DEL"] + keys)
    await connection.close()
}

/// A redis-server of the test's own on a free loopback port, for tests that stop Redis or flush
/// its script cache without disturbing the shared one.
final class PrivateRedisServer {
    let port: Int
    private let directory: String
    private var process: Process?

    init() throws {
        port = try freeLoopbackPort()
        directory = NSTemporaryDirectory() + "redis-\(TestEnvironment.uniqueID())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    var configuration: RedisConfiguration {
        RedisConfiguration(host: "127.0.0.1", port: port, connectTimeout: .seconds(3), commandTimeout: .seconds(5))
    }

    /// Starts the server and waits until it answers PING.
    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", directory, "--logfile", directory + "/redis.log",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let configuration = self.configuration
        try await waitUntil("private redis-server on port \(port) to answer PING") {
            guard let connection = try? await RedisConnection.connect(configuration: configuration) else { return false }
            let pong = try? await connection.send(["PING"])
            await connection.close()
            return pong == .simpleString("PONG")
        }
    }

    /// Kills the server and waits for it to exit. SIGKILL, not `terminate()`: a child started from
    /// a test thread inherits that thread's blocked signals, SIGTERM among them, and would ignore it.
    func stop() {
        guard let process else { return }
        self.process = nil
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound to port 0, read back, released).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw RedisError(.invalidArgument, "socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
        }
    }
    guard bound else { throw RedisError(.invalidArgument, "bind() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

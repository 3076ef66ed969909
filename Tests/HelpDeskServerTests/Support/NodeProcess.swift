import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A node as its own process (`.build/debug/helpdesk serve`) in a `TestCluster`'s deployment (same
/// Redis prefix, schema and JWT key): what a test kills with SIGKILL, as a machine dies. The
/// in-process nodes of `TestCluster` can only be stopped, which closes their sockets cleanly.
final class NodeProcess: @unchecked Sendable {
    let nodeID: String
    let port: Int
    let process: Process
    var url: String { "http://127.0.0.1:\(port)" }
    var wsURL: String { "ws://127.0.0.1:\(port)/ws" }

    static var binary: String { TestEnvironment.repositoryRoot + "/.build/debug/helpdesk" }

    private init(nodeID: String, port: Int, process: Process) {
        self.nodeID = nodeID
        self.port = port
        self.process = process
    }

    /// Starts the binary and waits until `/readyz` answers 200.
    static func start(_ cluster: TestCluster, nodeID: String) async throws -> NodeProcess {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestSocketError.failed("\(binary) is missing: run `swift build` first")
        }
        let port = try freePort()
        var env = cluster.environment(nodeID: nodeID)
        env["HELPDESK_PORT"] = String(port)
        env["HELPDESK_LOG_LEVEL"] = "info"
        let process = Spawn.process(binary, ["serve"])
        process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let log = TestEnvironment.outputDirectory + "/\(nodeID)-\(cluster.prefix.filter(\.isLetter).suffix(8)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        if let handle = FileHandle(forWritingAtPath: log) {
            process.standardOutput = handle
            process.standardError = handle
        }
        try process.run()
        let node = NodeProcess(nodeID: nodeID, port: port, process: process)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw TestSocketError.failed("\(nodeID) exited with \(process.terminationStatus); see \(log)") }
            if let (status, _) = try? await HTTP.request("GET", node.url + "/readyz"), status == 200 { return node }
            try await Task.sleep(for: .milliseconds(100))
        }
        node.kill()
        throw TestSocketError.failed("\(nodeID) not ready within 60 s; see \(log)")
    }

    /// SIGKILL: no drain, no goodbye to Redis; its sockets drop and its timers die with it.
    func kill() {
        guard process.isRunning else { return }
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// A port nobody listens on right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSocketError.failed("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestSocketError.failed("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

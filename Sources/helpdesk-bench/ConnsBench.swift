import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// Idle sockets: opens N WebSocket connections to one node from many 127.0.0.x source addresses,
/// waits for every HELLO, and reports the node's resident memory per socket.
struct Conns: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "RSS per idle WebSocket on one node.")

    @Option(help: "Base URL of the node.") var node = "http://127.0.0.1:8081"
    @Option(help: "An admin account, to create the bench agents.") var adminEmail = "admin@example.com"
    @Option var adminPassword: String
    @Option(help: "Sockets to open.") var sockets = 10_000
    @Option(help: "Agent accounts whose tokens the sockets share (round robin).") var agents = 10
    @Option(help: "Sockets per source address (127.0.0.2, .3, …).") var perAddress = 250
    @Option(help: "Connections being opened at once (the node's listen backlog is finite).") var batch = 200
    @Option(help: "Seconds to wait after the last HELLO before reading RSS.") var settle = 2.0
    @Option(help: "Event-loop threads of the load generator.") var threads = 1
    @Option(name: .customLong("node-pid"), help: "The node's process id (for its RSS).") var nodePid: Int32

    func run() async throws {
        lineBufferedOutput()
        let limit = ProcessStats.raiseOpenFilesLimit()
        guard limit > sockets + 100 else {
            throw ValidationError("open-files limit \(limit) is too low for \(sockets) sockets in one process")
        }
        let address = try NodeAddress(node)
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        let admin = try await HTTP.login(node, adminEmail, adminPassword)
        let tokens = try await HTTP.concurrently(agents, width: 4) { [node] i in
            try await HTTP.agent(node, admin: admin, email: "conns-\(run)-\(i)@example.com", name: "Conns \(i)", capacity: 1).token
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        // One socket first, so the node's one-time costs (pools, first-agent presence) are in the baseline.
        let warm = try await BenchSocket.connect(on: group.next(), host: address.host, port: address.port, token: tokens[0]).get()
        try await warm.hello.get()
        try await Task.sleep(for: .seconds(settle))
        guard let before = ProcessStats.rssKiB(pid: nodePid) else { throw ValidationError("no process \(nodePid)") }
        print("conns: node RSS before \(before) KiB; opening \(sockets) sockets in batches of \(batch)…")
        let started = ContinuousClock.now
        var open: [BenchSocket] = []
        open.reserveCapacity(sockets)
        var failures = 0
        var index = 0
        while index < sockets {
            let range = index..<Swift.min(sockets, index + batch)
            let futures = range.map { i in
                BenchSocket.connect(on: group.next(), host: address.host, port: address.port, token: tokens[i % tokens.count],
                                    source: "127.0.0.\(2 + i / perAddress)")
                    .flatMap { socket in socket.hello.map { socket } }
            }
            for future in futures {
                do { open.append(try await future.get()) } catch {
                    failures += 1
                    if failures <= 3 { print("conns: a socket failed: \(error)") }
                }
            }
            index = range.upperBound
        }
        let opened = ContinuousClock.now - started
        try await Task.sleep(for: .seconds(settle))
        let after = ProcessStats.rssKiB(pid: nodePid) ?? 0
        let perSocket = Double(after - before) / Double(Swift.max(open.count, 1))  // KiB
        print("conns: \(open.count) sockets got HELLO (\(failures) failed) in \(opened)")
        print("conns: node RSS after \(after) KiB: +\(after - before) KiB, \(fmt(perSocket, 1)) KiB per socket")
        for socket in open { _ = socket.close() }
        _ = try? await warm.close().get()
        try await Task.sleep(for: .seconds(settle))
        let closed = ProcessStats.rssKiB(pid: nodePid) ?? 0
        print("conns: node RSS after closing them \(closed) KiB")
        print("summary conns sockets=\(open.count) failed=\(failures) rss_before_kib=\(before) rss_after_kib=\(after) "
              + "rss_closed_kib=\(closed) kib_per_socket=\(fmt(perSocket, 1))")
        try await group.shutdownGracefully()
        if failures > 0 { throw ExitCode(1) }
    }
}

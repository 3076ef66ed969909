import Foundation
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer

/// One primary, one replica and one Sentinel of the test's own.
final class SentinelSetup: @unchecked Sendable {
    // Ports the kernel says are free: random ones in 40000-54999 lie in the ephemeral range, where
    // the suite's own outgoing connections may hold them (the setup then timed out now and then).
    let primaryPort: Int
    let replicaPort: Int
    let sentinelPort: Int
    let directory = NSTemporaryDirectory() + "sentinel-\(TestEnvironment.uniqueID())"
    private var processes: [String: Process] = [:]

    var url: String { "redis+sentinel://127.0.0.1:\(sentinelPort)/mymaster" }

    init() throws {
        var ports: Set<Int> = []
        while ports.count < 3 { ports.insert(try NodeProcess.freePort()) }
        let sorted = ports.sorted()
        (primaryPort, replicaPort, sentinelPort) = (sorted[0], sorted[1], sorted[2])
    }

    func start() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // No diskless-sync delay: the replica is in sync within milliseconds, not after 5 s.
        try launch("primary", ["--port", String(primaryPort), "--bind", "127.0.0.1", "--save", "", "--dir", directory,
                               "--repl-diskless-sync-delay", "0", "--logfile", directory + "/primary.log"])
        try launch("replica", ["--port", String(replicaPort), "--bind", "127.0.0.1", "--save", "", "--dir", directory,
                               "--replicaof", "127.0.0.1", String(primaryPort), "--logfile", directory + "/replica.log"])
        let conf = """
            port \(sentinelPort)
            bind 127.0.0.1
            dir \(directory)
            sentinel monitor mymaster 127.0.0.1 \(primaryPort) 1
            sentinel down-after-milliseconds mymaster 1000
            sentinel failover-timeout mymaster 4000
            logfile \(directory)/sentinel.log
            """
        try conf.write(toFile: directory + "/sentinel.conf", atomically: true, encoding: .utf8)
        try launch("sentinel", [directory + "/sentinel.conf", "--sentinel"])
    }

    private func launch(_ name: String, _ arguments: [String]) throws {
        let process = Spawn.process("/usr/bin/redis-server", arguments)
        try process.run()
        processes[name] = process
    }

    /// SIGKILL and wait for the exit, off the cooperative pool.
    func kill(_ name: String) async {
        guard let process = processes[name] else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        _ = try? await offPool { process.waitUntilExit() }
        processes[name] = nil
    }

    /// For `defer`: kill everything without waiting.
    func stopAll() {
        for process in processes.values where process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        processes = [:]
    }
}

@Suite("Redis high availability")
struct SentinelTests {
    @Test("the client finds the primary through Sentinel and follows a failover; the chat continues")
    func failover() async throws {
        let setup = try SentinelSetup()
        try setup.start()
        defer { setup.stopAll() }
        let sentinel = RedisClient(configuration: .init(host: "127.0.0.1", port: setup.sentinelPort), poolSize: 1)
        let primary = RedisClient(configuration: .init(host: "127.0.0.1", port: setup.primaryPort), poolSize: 1)
        try await eventually("replica linked and known to Sentinel (logs in \(setup.directory))", timeout: .seconds(40)) {
            let info = (try? await primary.send("INFO", "replication").string) ?? ""
            let replicas = (try? await sentinel.send("SENTINEL", "replicas", "mymaster").array?.count) ?? 0
            return info.contains("state=online") && replicas == 1
        }

        let cluster = try await TestCluster(redisURL: setup.url)
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let chat = try await cluster.startChat(on: b)
        let agentSocket = try await TestSocket.connect(a.wsURL, token: agent.token, label: "agent")
        let customer = try await TestSocket.connect(b.wsURL, token: chat.token, label: "customer")
        #expect(try await agentSocket.request("PICK", [:]).event == "ACK")
        _ = try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id])
        _ = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "before", "client_msg_id": "b"])
        let before = try await agentSocket.next("NEW_MESSAGE")
        let lastSeen = try #require(before.message?["id"] as? String)
        // Asynchronous replication: once the replica has the conversation, lose the primary.
        let replica = RedisClient(configuration: .init(host: "127.0.0.1", port: setup.replicaPort), poolSize: 1)
        try await eventually("replicated") {
            let newest = try? await replica.send("XREVRANGE", cluster.prefix + "conv:\(chat.id):msgs", "+", "-", "COUNT", "1")
            return newest?.array?.first?.array?.first?.string == lastSeen
        }
        await setup.kill("primary")

        try await eventually("Sentinel promoted the replica", timeout: .seconds(20)) {
            let reply = try? await sentinel.send("SENTINEL", "get-master-addr-by-name", "mymaster")
            return reply?.array?.last?.int == setup.replicaPort
        }
        _ = try await agentSocket.next("RESYNC", timeout: .seconds(20))
        _ = try await customer.next("RESYNC", timeout: .seconds(20))
        #expect(try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id, "last_message_id": lastSeen]).event == "ACK")
        #expect(try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id, "last_message_id": lastSeen]).event == "ACK")
        // Nodes write to the new primary: the chat goes on both ways.
        var sent = false
        for attempt in 0..<20 where !sent {
            let reply = try await customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "after", "client_msg_id": "a"])
            sent = reply.event == "ACK"
            if !sent { try await Task.sleep(for: .milliseconds(250 * (attempt + 1) / 4 + 100)) }
        }
        #expect(sent)
        _ = try await agentSocket.next("NEW_MESSAGE") { $0.message?["text"] as? String == "after" }
        #expect(try await agentSocket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "reply", "client_msg_id": "r"]).event == "ACK")
        _ = try await customer.next("NEW_MESSAGE") { $0.message?["text"] as? String == "reply" }
        await agentSocket.close(); await customer.close()
    }

    @Test("sentinel URLs parse; bad ones are refused")
    func urls() throws {
        let c = try RedisConfiguration(url: "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/mymaster/2")
        #expect(c.sentinels == [.init(host: "10.0.0.1", port: 26379), .init(host: "10.0.0.2", port: 26379)])
        #expect(c.masterName == "mymaster")
        #expect(c.password == "pw")
        #expect(c.database == 2)
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis+sentinel://10.0.0.1:26379") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis+sentinel://10.0.0.1:x/m") }
    }
}

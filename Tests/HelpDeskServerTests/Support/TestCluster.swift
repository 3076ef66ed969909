import Foundation
import Testing
import HelpDeskCore
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresClient
import RedisClient
import ServiceLifecycle
import TestSupport
@testable import HelpDeskServer

/// Several real nodes in one test: each a full server (HTTP, WebSocket, presence, flusher) on its
/// own port with its own Redis connections and node id, sharing one key prefix and one schema,
/// as nodes of one deployment do. They talk to each other only through Redis.
final class TestCluster: @unchecked Sendable {
    struct Node {
        let services: NodeServices
        let port: Int
        let group: ServiceGroup
        let task: Task<Void, any Error>
        var url: String { "http://127.0.0.1:\(port)" }
        var wsURL: String { "ws://127.0.0.1:\(port)/ws" }
    }

    let prefix: String
    let schema: String
    let databaseURL: String
    let redisURL: String
    let overrides: [String: String]
    private let lock = NIOLock()
    private var nodes: [Node] = []
    static let secret = "cluster-secret-0123456789abcdef"

    init(redisURL: String = TestEnvironment.redisURL, databaseURL: String? = nil, overrides: [String: String] = [:]) async throws {
        prefix = TestEnvironment.uniqueKeyPrefix()
        if let databaseURL {
            schema = "public"
            self.databaseURL = databaseURL
        } else {
            (schema, self.databaseURL) = try await TestEnvironment.makeSchema()
        }
        self.redisURL = redisURL
        self.overrides = overrides
    }

    func environment(nodeID: String) -> [String: String] {
        var env: [String: String] = [
            "HELPDESK_REDIS_URL": redisURL,
            "HELPDESK_DATABASE_URL": databaseURL,
            "HELPDESK_JWT_SECRET": Self.secret,
            "HELPDESK_KEY_PREFIX": prefix,
            "HELPDESK_NODE_ID": nodeID,
            "HELPDESK_HOST": "127.0.0.1",
            "HELPDESK_PORT": "0",
            "HELPDESK_LUA_DIR": TestEnvironment.repositoryRoot + "/lua",
            "HELPDESK_MIGRATIONS_DIR": TestEnvironment.repositoryRoot + "/migrations",
            "HELPDESK_PUBLIC_DIR": TestEnvironment.repositoryRoot + "/Public",
            "HELPDESK_PG_POOL_SIZE": "3",
            "HELPDESK_REDIS_POOL_SIZE": "2",
            "HELPDESK_HEARTBEAT_INTERVAL": "0.5",
        ]
        env.merge(overrides) { $1 }
        return env
    }

    /// Starts one more node and waits until it listens.
    @discardableResult
    func startNode(_ nodeID: String? = nil) async throws -> Node {
        let id = nodeID ?? "node-\(TestEnvironment.uniqueID().prefix(6))"
        var logger = Logger(label: id)
        logger.logLevel = ProcessInfo.processInfo.environment["HELPDESK_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        let services = try NodeServices(configuration: try ServerConfiguration.fromEnvironment(environment(nodeID: id)), logger: logger)
        let (ports, portsContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = try await buildApplication(services) { channel in
            portsContinuation.yield(channel.localAddress?.port ?? 0)
            portsContinuation.finish()
        }
        var configuration = ServiceGroupConfiguration(services: [app, services.drainService()], gracefulShutdownSignals: [], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        let group = ServiceGroup(configuration: configuration)
        let task = Task { try await group.run() }
        var port = 0
        for await p in ports { port = p }
        let node = Node(services: services, port: port, group: group, task: task)
        lock.withLock { nodes.append(node) }
        return node
    }

    /// Stops a node as SIGTERM does: drain (sockets closed with 1012), then stop its services.
    func stop(_ node: Node) async {
        await node.group.triggerGracefulShutdown()
        _ = try? await node.task.value
        await node.services.shutdown()
        lock.withLock { nodes.removeAll { $0.port == node.port } }
    }

    func shutdown() async {
        for node in lock.withLock({ nodes }) { await stop(node) }
    }

    // MARK: helpers

    /// A Redis client on the cluster's Redis, for looking at state.
    func redis() -> RedisClient { RedisClient(configuration: try! RedisConfiguration(url: redisURL), poolSize: 1) }

    /// A pool on the cluster's schema.
    func postgres() -> PostgresPool { PostgresPool(url: databaseURL, size: 2) }

    /// Creates a staff account and returns (id, access token) signed with the cluster's key.
    func staff(_ email: String, role: Role = .agent, capacity: Int = 3, supervisor: String? = nil, on node: Node) async throws -> (id: String, token: String) {
        let created = try await StaffAccounts(pool: node.services.postgres)
            .create(email: email, name: email.components(separatedBy: "@")[0], password: "password123", role: role.rawValue, supervisorEmail: supervisor, capacity: capacity)
        let now = Int(Date().timeIntervalSince1970)
        let token = node.services.tokens.sign(TokenClaims(sub: String(created.id), role: role.rawValue, iat: now, exp: now + 3600, name: email.components(separatedBy: "@")[0]))
        return (String(created.id), token)
    }

    /// An active chat: started over REST on `startedOn`, picked by a new agent whose socket is on
    /// `agentOn`, the customer's socket on `customerOn`; both sockets joined.
    func activeChat(startedOn: Node? = nil, customerOn: Node, agentOn: Node)
        async throws -> (id: String, customerToken: String, agent: (id: String, token: String), customer: TestSocket, agentSocket: TestSocket) {
        let agent = try await staff("agent\(TestEnvironment.uniqueID())@example.com", on: agentOn)
        let chat = try await startChat(on: startedOn ?? customerOn)
        let agentSocket = try await TestSocket.connect(agentOn.wsURL, token: agent.token, label: "agent")
        #expect(try await agentSocket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        let customer = try await TestSocket.connect(customerOn.wsURL, token: chat.token, label: "customer")
        #expect(try await customer.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        #expect(try await agentSocket.request("JOIN_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        return (chat.id, chat.token, agent, customer, agentSocket)
    }

    /// Starts a chat as a customer through REST; returns (conversation id, customer token).
    func startChat(on node: Node, email: String = "c\(TestEnvironment.uniqueID())@example.com", name: String = "Customer", categoryID: Int? = nil) async throws -> (id: String, token: String, position: Int) {
        var body: [String: Any] = ["name": name, "email": email]
        if let categoryID { body["category_id"] = categoryID }
        let (status, json) = try await HTTP.request("POST", node.url + "/api/v1/conversations", body: body)
        guard status == 201 || status == 200, let id = json["conversation_id"] as? String, let token = json["customer_token"] as? String else {
            throw HelpDeskError(.internalError, "start chat failed: \(status) \(json)")
        }
        return (id, token, json["position"] as? Int ?? 0)
    }
}

/// Tiny blocking-free HTTP client for tests (URLSession is available on Linux through FoundationNetworking).
enum HTTP {
    static func request(_ method: String, _ url: String, token: String? = nil, body: Any? = nil, raw: Data? = nil) async throws -> (Int, [String: Any]) {
        let (status, data) = try await requestData(method, url, token: token, body: body, raw: raw)
        return (status, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    static func requestArray(_ method: String, _ url: String, token: String? = nil) async throws -> (Int, [[String: Any]]) {
        let (status, data) = try await requestData(method, url, token: token, body: nil, raw: nil)
        return (status, (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? [])
    }

    static func requestData(_ method: String, _ url: String, token: String?, body: Any?, raw: Data?) async throws -> (Int, Data) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body { request.httpBody = try JSONSerialization.data(withJSONObject: body) }
        if let raw { request.httpBody = raw }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

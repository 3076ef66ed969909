import ArgumentParser
import Foundation
import HelpDeskCore
import HelpDeskServer
import Logging
import PostgresClient
import ServiceLifecycle

/// `helpdesk`: serve a node, migrate the database, manage staff accounts.
struct HelpDeskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "helpdesk",
        abstract: "HelpDesk: a real-time customer-support server node.",
        subcommands: [Serve.self, Migrate.self, UserCommand.self, CustomerCommand.self, DemoAccounts.self, Queue.self, OutboxCommand.self, ScriptsCommand.self])
}

/// Reads the configuration, sets up logging at its level.
func loadConfiguration() throws -> (ServerConfiguration, Logger) {
    let configuration = try ServerConfiguration.fromEnvironment()
    configuration.logFormat.bootstrap()
    var logger = Logger(label: "helpdesk")
    logger.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
    logger[metadataKey: "node"] = .string(configuration.nodeID)
    return (configuration, logger)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Migrate, then serve HTTP and WebSocket until SIGTERM or SIGINT.")

    @Option(help: "Port to listen on (overrides HELPDESK_PORT).") var port: Int?
    @Option(help: "Address to bind (overrides HELPDESK_HOST).") var host: String?
    @Option(help: "Node id (overrides HELPDESK_NODE_ID).") var nodeId: String?

    func run() async throws {
        var (configuration, logger) = try loadConfiguration()
        if let port { configuration.port = port }
        if let host { configuration.host = host }
        if let nodeId { configuration.nodeID = nodeId; logger[metadataKey: "node"] = .string(nodeId) }
        let services = try NodeServices(configuration: configuration, logger: logger)
        let app = try await buildApplication(services)
        // The drain runs after the application in the group, so on SIGTERM it goes first.
        var group = ServiceGroupConfiguration(services: [app, services.drainService()], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(configuration.drainTimeoutSeconds)
        group.maximumCancellationDuration = .seconds(2)
        try await ServiceGroup(configuration: group).run()
        await services.shutdown()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the migrations not yet applied.")

    func run() async throws {
        let (configuration, logger) = try loadConfiguration()
        let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: logger)
        let applied = try await Migrator(pool: pool, directory: configuration.migrationsDirectory, logger: logger).migrate()
        print(applied.isEmpty ? "database is up to date" : "applied: \(applied.joined(separator: ", "))")
        await pool.shutdown()
    }
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "user", abstract: "Manage staff accounts.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a staff account.")

        @Option var email: String
        @Option var name: String
        @Option var password: String
        @Option(help: "admin, supervisor or agent") var role: String
        @Option(help: "E-mail of the agent's supervisor.") var supervisorEmail: String?
        @Option(help: "Conversations the agent handles at once.") var capacity: Int = 3

        func run() async throws {
            let (configuration, logger) = try loadConfiguration()
            let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: logger)
            defer { Task { await pool.shutdown() } }
            let user = try await StaffAccounts(pool: pool).create(
                email: email, name: name, password: password, role: role, supervisorEmail: supervisorEmail, capacity: capacity)
            print("created \(user.role.rawValue) \(user.email) (id \(user.id))")
        }
    }
}

struct DemoAccounts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-accounts",
        abstract: "Create the demo admin, supervisor, agents and categories if absent; print the passwords once.")

    func run() async throws {
        let (configuration, logger) = try loadConfiguration()
        let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: logger)
        let created = try await StaffAccounts(pool: pool).ensureDemoAccounts()
        let categories = try await StaffAccounts(pool: pool).ensureDemoCategories()
        if !created.isEmpty {
            print("Demo accounts created (passwords are shown only now):")
            for (email, role, password) in created { print("  \(role.padding(toLength: 10, withPad: " ", startingAt: 0)) \(email)  \(password)") }
        }
        if categories {
            print("Demo categories created: Billing (Refunds under it) picked from the queue, Sales offered to agents (10 s wrap-up).")
        }
        await pool.shutdown()
    }
}

struct Queue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print who is waiting (and for how long) and the agents' load, from Redis.")

    func run() async throws {
        let (configuration, _) = try loadConfiguration()
        for line in try await QueueInspection(configuration: configuration).report() { print(line) }
    }
}

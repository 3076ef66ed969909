import ArgumentParser
import Foundation
import HelpDeskServer
import Logging

/// `helpdesk-bench pick-ceiling`: Redis's own ceiling for PICK (see `PickCeiling`), to set the
/// `pick` bench's figure beside. Runs under a key prefix of its own on the given Redis.
struct PickCeilingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pick-ceiling", abstract: "Redis's own cost and ceiling for PICK: the node's commands, sent straight to Redis.")

    @OptionGroup var services: ServiceURLs
    @Option(help: "Waiting customers.") var customers = 2_000
    @Option(help: "Racing agents.") var agents = 40
    @Option(help: "The Redis server process whose CPU to read.") var redisPid: Int32

    func run() async throws {
        lineBufferedOutput()
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        var logger = Logger(label: "pick-ceiling")
        logger.logLevel = .warning
        let configuration = try ServerConfiguration.fromEnvironment([
            "HELPDESK_REDIS_URL": services.redisURL,
            "HELPDESK_DATABASE_URL": services.databaseURL,
            "HELPDESK_JWT_SECRET": "pick-ceiling-secret-0123456789",
            "HELPDESK_KEY_PREFIX": "hd:{pickceiling-\(run)}:",
            "HELPDESK_NODE_ID": "pick-ceiling-\(run)",
            "HELPDESK_REDIS_POOL_SIZE": "4",
        ])
        let ceiling = try PickCeiling(configuration: configuration, logger: logger)
        print("pick-ceiling: \(agents) agents, \(customers) waiting customers, straight to Redis…")
        let ids = try await ceiling.prepare(customers: customers, agents: agents)
        let before = CPUSample.take([redisPid])
        let (picks, elapsed) = try await ceiling.run(agentIDs: ids)
        let after = CPUSample.take([redisPid])
        await ceiling.shutdown()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let redisSeconds = before.used(until: after, redisPid)
        let perPick = redisSeconds * 1e6 / Double(max(picks, 1))
        print("pick-ceiling: \(picks) picks in \(fmt(seconds, 2)) s (\(fmt(Double(picks) / seconds, 0))/s from this one process); "
              + "Redis CPU \(fmt(redisSeconds, 2)) s = \(fmt(perPick, 1)) µs per pick: at most \(fmt(1e6 / perPick, 0)) picks/s per Redis core")
        print("summary ceiling name=pick rps=\(fmt(1e6 / perPick, 0)) redis_us_per_op=\(fmt(perPick, 1)) driven_rps=\(fmt(Double(picks) / seconds, 0))")
        if picks != customers { throw ValidationError("\(picks) picks for \(customers) customers") }
    }
}

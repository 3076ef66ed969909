import ArgumentParser
import HelpDeskServer
import RedisClient

/// `helpdesk scripts`: the Lua function library this build calls (operators, `scripts/bench-ceilings.sh`).
struct ScriptsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scripts",
        abstract: "Load this build's Lua function library into Redis and print its version (functions are called <script>_<version>).")

    @Flag(help: "Only print the version; do not connect to Redis.") var versionOnly = false

    func run() async throws {
        let (configuration, logger) = try loadConfiguration()
        let scripts = try ScriptLibrary.load(directory: configuration.luaDirectory)
        if !versionOnly {
            let redis = RedisClient(configuration: try RedisConfiguration(url: configuration.redisURL), poolSize: 1, logger: logger)
            try await scripts.loadAll(on: redis)
            await redis.close()
        }
        print(scripts.version)
    }
}

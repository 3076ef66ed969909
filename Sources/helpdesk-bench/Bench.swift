import ArgumentParser
import Foundation
import Glibc

/// `helpdesk-bench`: load generators that measure a running deployment from the outside.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "helpdesk-bench",
        abstract: "Load generators for HelpDesk nodes.",
        // Register new benches here.
        subcommands: [Relay.self, Conns.self, Pick.self, PickCeilingBench.self, FlushBench.self, JSONBench.self])
}

/// Line-buffered stdout, so progress shows through `tee` and a killed run keeps its output.
func lineBufferedOutput() {
    // Swift 6 refuses to touch the C global `stdout`; look its value up instead (read once,
    // before any other thread prints).
    guard let symbol = dlsym(nil, "stdout") else { return }
    setvbuf(symbol.assumingMemoryBound(to: UnsafeMutablePointer<FILE>.self).pointee, nil, _IOLBF, 0)
}

/// A number with `digits` decimals, for reports.
func fmt(_ value: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", value)
}

/// The Redis and PostgreSQL a bench that runs the server's own services in process talks to
/// (`flush`, `pick-ceiling`); each run works under a key prefix (and a schema) of its own.
struct ServiceURLs: ParsableArguments {
    @Option(help: "Redis URL.") var redisURL = ProcessInfo.processInfo.environment["HELPDESK_REDIS_URL"] ?? "redis://127.0.0.1:6379"
    @Option(help: "PostgreSQL URL.")
    var databaseURL = ProcessInfo.processInfo.environment["HELPDESK_DATABASE_URL"] ?? "postgresql://postgres@127.0.0.1:5432/helpdesk"
}

import ArgumentParser
import Foundation

/// `helpdesk-bench`: load generators that measure a running deployment from the outside.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "helpdesk-bench",
        abstract: "Load generators for HelpDesk nodes.",
        // Register new benches here (e.g. `Flush.self`, from FlushBench.swift).
        subcommands: [Relay.self, Conns.self, Pick.self, JSONBench.self])
}

/// A number with `digits` decimals, for reports.
func fmt(_ value: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", value)
}

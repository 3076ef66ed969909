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

import HelpDeskCore

/// First-response targets per priority, in seconds: `HELPDESK_SLA_FIRST_RESPONSE`, e.g.
/// `low=600,normal=300,high=120,urgent=60` (the defaults). Priorities left out keep their
/// default; an unknown priority or a value that is not 1...604800 stops the node at start-up.
///
/// A conversation meets its target when the first reply of its agent that the customer saw
/// (internal notes do not count) came within the target of its entering the queue (its latest
/// round, after a reopen). It misses it when that reply came later, or never came and the
/// conversation ended after the target had passed. One that ended unanswered before its target
/// passed (the customer left after 20 s of a 300 s target) is not counted either way.
public struct SLATargets: Sendable, Equatable {
    public static let priorities = ["low", "normal", "high", "urgent"]
    public static let defaults = SLATargets(seconds: ["low": 600, "normal": 300, "high": 120, "urgent": 60])

    /// priority -> seconds, for every priority in `priorities`.
    public private(set) var seconds: [String: Int]

    init(seconds: [String: Int]) { self.seconds = seconds }

    public init(parsing text: String) throws {
        var seconds = Self.defaults.seconds
        for item in text.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, Self.priorities.contains(pair[0]) else {
                throw HelpDeskError(.validationFailed,
                                    "HELPDESK_SLA_FIRST_RESPONSE: \"\(item)\" is not priority=seconds with a priority of \(Self.priorities.joined(separator: ", "))")
            }
            guard let value = Int(pair[1]), (1...604_800).contains(value) else {
                throw HelpDeskError(.validationFailed, "HELPDESK_SLA_FIRST_RESPONSE: \(pair[0]) must be 1 to 604800 seconds, got \(pair[1])")
            }
            seconds[pair[0]] = value
        }
        self.seconds = seconds
    }

    /// The target of a priority (an unknown one is measured as `normal`).
    public func target(_ priority: String) -> Int { seconds[priority] ?? seconds["normal"] ?? 300 }
}

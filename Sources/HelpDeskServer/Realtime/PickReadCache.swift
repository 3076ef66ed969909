import NIOConcurrencyHelpers

/// What earlier fairest picks on this node read before their script: the queues set, the category
/// tree and each agent's categories field.
///
/// A fairest pick needs the heads of the agent's queues, and which queues those are takes a read of
/// their own (the field, the set, the tree): two round trips. With this, a pick reads the field and
/// the set again together with the heads of the queues they implied last time, in one, and uses
/// the heads only if both are unchanged (`LiveStore.fairestPickPlan`). The tree is not read again:
/// pick.lua checks the queues it is given against the live tree and answers stale, and the retry
/// reads everything afresh. So nothing here can make a pick wrong, only slower when it is out of date.
final class PickReadCache: Sendable {
    struct Guess: Sendable {
        var categories: String
        var members: Set<String>
        var queues: [String]
        /// Conversations on offer at the last read: the heads are read that much further.
        var offeredCount: Int
    }

    private struct State {
        var members: Set<String> = []
        var tree = CategoryTree()
        var known = false
        var offeredCount = 0
        /// agent id → its categories field and the queues it serves under `members` and `tree`.
        var agents: [String: (categories: String, queues: [String])] = [:]
    }

    /// Agents remembered at most (a node serves far fewer; past it the memory starts over).
    static let maxAgents = 10_000
    private let state = NIOLockedValueBox(State())

    /// The pick-routed queues an agent with this categories field serves, sorted.
    static func queues(members: Set<String>, tree: CategoryTree, categories: String) -> [String] {
        let mine = CategoryTree.list(categories)
        return members.filter { tree.picks(mine, category: $0) }.sorted()
    }

    func guess(agentID: String) -> Guess? {
        state.withLockedValue { state in
            guard state.known, let agent = state.agents[agentID] else { return nil }
            return Guess(categories: agent.categories, members: state.members, queues: agent.queues, offeredCount: state.offeredCount)
        }
    }

    /// A full read: the set and tree for every agent, and this agent's field.
    func remember(agentID: String, categories: String, members: Set<String>, tree: CategoryTree, offeredCount: Int) {
        state.withLockedValue { state in
            if !state.known || state.members != members || state.tree != tree {
                state.agents.removeAll(keepingCapacity: true)
                (state.members, state.tree, state.known) = (members, tree, true)
            }
            if state.agents.count >= Self.maxAgents { state.agents.removeAll() }
            state.offeredCount = offeredCount
            state.agents[agentID] = (categories, Self.queues(members: members, tree: tree, categories: categories))
        }
    }

    /// How many conversations were on offer at the latest read.
    func offered(_ count: Int) {
        state.withLockedValue { $0.offeredCount = count }
    }
}

import Foundation
import HelpDeskCore
import RedisClient

/// Supervisors act on the queue and on their own team (the agents whose supervisor they are);
/// admins everywhere (issue 10 #16). The team is the agent hash's `supervisor_id`, the same one
/// presence and escalations are routed by (agent_connect.lua writes it, `PATCH /users` keeps it: `LiveStore.updateAgentProfile`).
extension LiveStore {
    /// Throws `forbidden` when `caller` is a supervisor and `agentID` (an agent, or nil/empty for
    /// the queue) is outside its team. Other roles pass: their scripts check what they may do.
    /// A supervisor's own conversations (taken over: it is their assignee) are in its scope.
    func requireTeamScope(_ caller: Caller, agentID: String?) async throws {
        guard caller.role == .supervisor, let agentID, !agentID.isEmpty, agentID != caller.id else { return }
        let supervisor = try await redis.send("HGET", keys.agent(agentID), "supervisor_id").string
        guard supervisor == caller.id else {
            throw HelpDeskError(.forbidden, "that agent is in another supervisor's team")
        }
    }

    /// The same for a conversation: waiting ones (the queue) pass, others by their agent's team.
    func requireTeamScope(_ caller: Caller, conversationID: String) async throws {
        guard caller.role == .supervisor else { return }
        let agent = try await redis.send("HGET", keys.conversation(conversationID), "agent_id").string
        try await requireTeamScope(caller, agentID: agent)
    }
}

import Foundation
import HelpDeskCore
import Hummingbird

/// The workflow routes the pages need beyond the conversation basics: a supervisor takes a
/// conversation over, a waiting customer leaves the queue, and whom a chat can be transferred to.
/// The same actions exist on the socket (`TAKE_OVER`, `CANCEL`); both go through `LiveStore`.
struct WorkflowsController: Sendable {
    let store: LiveStore
    /// Take over and cancel free an agent's room (capacity or an offer): customers may be offered.
    let router: OfferRouter

    func addRoutes(to authenticated: RouterGroup<AuthenticatedContext>) {
        authenticated.post("conversations/:id/takeover") { _, context in
            try context.require(.supervisor, .admin)
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            _ = try await store.takeOver(conversationID: id, actor: context.caller)
            router.trigger()
            guard let view = try await store.conversation(id) else { throw HelpDeskError(.notFound, "no such conversation") }
            return try Response.json(view)
        }

        authenticated.post("conversations/:id/cancel") { _, context in
            try context.require(.customer)
            let id = try ConversationRules.conversationID(context.parameters.require("id"))
            try ConversationRules.requireOwnConversation(context.caller, id)
            try await store.cancel(conversationID: id, customer: context.caller)
            router.trigger()
            guard let view = try await store.conversation(id) else { throw HelpDeskError(.notFound, "no such conversation") }
            return try Response.json(view)
        }

        // Agents see every colleague they could hand a chat to; a supervisor its own team (it
        // may transfer only there); admins everyone. Names and load only, no e-mail.
        authenticated.get("agents/available") { _, context in
            try context.require(.agent, .supervisor, .admin)
            let team = context.caller.role == .supervisor ? context.caller.id : nil
            return try Response.json(try await store.transferTargets(excluding: context.caller.id, team: team))
        }
    }
}

import Foundation
import HelpDeskCore
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import PostgresClient

/// `/ws` and `/api/v1/ws-tickets`: authenticates the upgrade, then runs one socket's session.
struct WebSocketController: Sendable {
    let hub: ConnectionHub
    let store: LiveStore
    let users: UserStore
    let services: NodeServices
    var router: OfferRouter { services.parts.router }

    /// Frames above this size get an ERROR (the socket's hard limit is larger, see `maxFrameSize`).
    static let maxFrameBytes = 64 * 1024
    /// The WebSocket layer's own limit: past this the library closes the socket (1009).
    static let maxFrameSize = 1 << 20
    static let maxMessageCharacters = ConversationRules.maxMessageCharacters
    /// Errors tolerated per minute before the socket is closed for policy violation.
    static let errorBudgetPerMinute = 20

    func addRoutes(router: Router<AppRequestContext>, authenticated: RouterGroup<AuthenticatedContext>) {
        authenticated.post("ws-tickets") { request, context in
            // The ticket stands for the bearer token of this request, for 30 s, once.
            guard let header = request.headers[.authorization] else { throw HelpDeskError(.unauthorized, "missing bearer token") }
            let ticket = Base64URL.encode(Crypto.randomBytes(24))
            try await services.redis.send("SET", services.keys.wsTicket(ticket), String(header.dropFirst(7)), "EX", "30")
            return try Response.json(["ticket": ticket])
        }

        router.group("ws")
            .add(middleware: WebSocketAuthMiddleware(services: services))
            .ws { _, context in
                // A draining node takes no new sockets; the client retries through the balancer.
                guard !services.drain.isDraining else { throw HelpDeskError(.unavailable, "this node is shutting down; reconnect") }
                guard let caller = context.caller else { throw HelpDeskError(.unauthorized, "a ticket or bearer token is required") }
                guard hub.admits(ip: context.clientIP, caller: caller) else {
                    throw HelpDeskError(.rateLimited, "too many sockets from this address or for this user")
                }
                return .upgrade([:])
            } onUpgrade: { inbound, outbound, context in
                guard let caller = context.requestContext.caller else { return }
                await self.run(caller: caller, remoteIP: context.requestContext.clientIP, channel: context.requestContext.channel,
                               inbound: inbound, outbound: outbound, logger: context.logger)
            }
    }

    /// One socket, from HELLO to close.
    func run(caller: Caller, remoteIP: String, channel: any Channel, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, logger: Logger) async {
        var categories: Set<String> = []
        var capacity = "-", categoryList = "-", supervisor = "-", name = caller.name
        if caller.role == .agent, let id = Int(caller.id) {
            // The account's current capacity and categories; if PostgreSQL is down, Redis keeps the last known.
            if let user = try? await users.find(id: id) {
                guard user.active else {
                    try? await outbound.close(.policyViolation, reason: "account deactivated")
                    return
                }
                capacity = String(user.capacity)
                categoryList = user.categoryIds.map(String.init).joined(separator: ",")
                categories = Set(user.categoryIds.map(String.init))
                supervisor = user.supervisorId.map(String.init) ?? ""
                name = user.name
            }
        }
        // Frames go out through the session's outbox, written on the channel's event loop; only the
        // close frame goes through the WebSocket library, whose state machine must see it.
        let session = SocketSession(id: hub.makeSessionID(), caller: caller, categories: categories, remoteIP: remoteIP, channel: channel,
                                   outboundByteLimit: hub.caps.outboundBytes) { code, reason in
            Task { try? await outbound.close(code, reason: reason) }
        }

        do {
            var status: String?
            if caller.role == .agent {
                let (store, node) = (self.store, services.configuration.nodeID)
                let (capacity, categoryList, supervisor, name) = (capacity, categoryList, supervisor, name)
                status = try await hub.register(session) { first in
                    first
                        ? try await store.agentConnected(agentID: caller.id, node: node, name: name,
                                                         capacity: capacity, categories: categoryList, supervisorID: supervisor)
                        : try await store.agentStatus(caller.id)
                }?.value
            } else {
                _ = try await hub.register(session)
            }
            session.send(ServerFrame.encode("HELLO", HelloData(
                nodeId: services.configuration.nodeID,
                user: .init(id: caller.id, role: caller.role.rawValue, name: name, status: status),
                serverTime: epochMillis(services.clock()))))
            if caller.role == .agent {
                // A new socket (a reload, another tab) learns what is waiting for the agent's answer.
                if let routing = try? await store.routingState(agentID: caller.id) {
                    if let until = routing.wrapUpUntil {
                        session.send(ServerFrame.encode("WRAP_UP_STARTED", WrapUpStartedData(conversationId: nil, wrapUpUntil: until)))
                    }
                    for (conversation, expires) in routing.offers {
                        session.send(ServerFrame.encode("CONVERSATION_OFFERED", OfferedData(conversation: conversation, expiresAt: expires)))
                    }
                }
                // online (again), maybe with free capacity: customers may be waiting for it
                router.trigger()
            }
            if caller.role == .customer, let conversation = caller.conversationID {
                // A customer follows its own conversation from the start (assignment, close, queue position).
                try await hub.join(session, conversationID: conversation, lastMessageID: nil, sendHistory: false)
                if let view = try await store.conversation(conversation), view.status == "waiting" {
                    hub.trackWaiting(session, conversationID: conversation, category: view.categoryId)
                }
            }
            var handler = FrameHandler(session: session, hub: hub, store: store, logger: logger)
            handler.callTimeout = services.configuration.callTimeoutSeconds
            handler.router = router
            for try await message in inbound.messages(maxSize: Self.maxFrameSize) {
                // A socket the server closed acts no more, whatever its client keeps sending.
                if session.isClosed { break }
                await handler.handle(message)
                if handler.shouldClose {
                    session.close(.policyViolation, "too many invalid frames")
                    break
                }
            }
        } catch let error as HelpDeskError where error.code == .rateLimited {
            // Over a socket cap (a race past the upgrade's check): refused with the reason.
            session.send(ServerFrame.error(error, ref: nil))
            session.close(.policyViolation, error.message)
        } catch {
            logger.debug("socket ended", metadata: ["error": "\(error)"])
        }
        if caller.role == .agent {
            let (store, node) = (self.store, services.configuration.nodeID)
            _ = try? await hub.unregister(session) {
                try await store.agentDisconnected(agentID: caller.id, node: node)
                return nil
            }?.value
        } else {
            _ = hub.unregister(session)
        }
        // The close the server asked for (policy, expiry, too slow) or a normal one; awaited here, so
        // the WebSocket library does not close with its own code first when this returns.
        session.close(.normalClosure, "bye")
        if let (code, reason) = session.requestedClose { try? await outbound.close(code, reason: reason) }
    }
}

struct HelloData: Encodable {
    /// `status` is set for agents: their presence (online or away), which survives reconnects.
    struct User: Encodable { var id: String; var role: String; var name: String; var status: String? }
    var nodeId: String
    var user: User
    var serverTime: Int64
}

/// Sets the caller of a `/ws` upgrade from `?ticket=` (single use) or a Bearer header.
struct WebSocketAuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let services: NodeServices

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        var context = context
        context.clientIP = clientIP(request: request, remote: context.remoteAddress, trustProxy: services.configuration.trustProxy)
        var token: String?
        if let ticket = request.uri.queryParameters.get("ticket") {
            // GETDEL: a ticket works once, on whichever node the upgrade lands.
            token = try await services.redis.send("GETDEL", services.keys.wsTicket(ticket)).string
            if token == nil { throw HelpDeskError(.unauthorized, "unknown or used ticket") }
        } else if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            token = String(header.dropFirst(7))
        }
        if let token {
            context.caller = try Caller(claims: try services.tokens.verify(token, now: services.clock()))
        }
        return try await next(request, context)
    }
}

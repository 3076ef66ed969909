import Foundation
import HelpDeskCore
import Hummingbird
import Logging
import NIOCore
import NIOWebSocket
import PostgresClient

/// `/ws` and `/api/v1/ws-tickets`: decides an upgrade, then starts and ends each socket's session
/// (its frames are `SocketConnection`'s and `FrameHandler`'s).
struct WebSocketController: Sendable {
    let hub: ConnectionHub
    let store: LiveStore
    let users: UserStore
    let services: NodeServices
    var router: OfferRouter { services.parts.router }

    /// Frames above this size get an ERROR (the socket's hard limit is larger, see `maxFrameSize`).
    static let maxFrameBytes = 64 * 1024
    /// The WebSocket layer's own limit for a message (a frame, or fragments together): past this
    /// the socket is closed (1009). Above `maxFrameBytes` so an oversized frame still gets its
    /// ERROR; small so a slowly sent partial frame holds little memory.
    static let maxFrameSize = 128 * 1024
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
            .get { request, context in
                // The upgrade itself is SocketServerChannel's: this route only decides (and says why not).
                guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                    throw HelpDeskError(.badRequest, "/ws is a WebSocket: send an upgrade request")
                }
                // A draining node takes no new sockets; the client retries through the balancer.
                guard !services.drain.isDraining else { throw HelpDeskError(.unavailable, "this node is shutting down; reconnect") }
                guard let caller = context.caller else { throw HelpDeskError(.unauthorized, "a ticket or bearer token is required") }
                guard hub.admits(ip: context.clientIP, caller: caller) else {
                    throw HelpDeskError(.rateLimited, "too many sockets from this address or for this user")
                }
                context.socketUpgrade.set(SocketUpgrade(caller: caller, clientIP: context.clientIP,
                                                        batchesQueueChanges: try Self.batchesQueueChanges(request)))
                return Response(status: .ok)
            }
    }

    /// `?queue_changes=`: batched (QUEUE_CHANGES) or single (QUEUE_UPDATED, the default); anything
    /// else is refused, before a ticket is spent on it (`WebSocketAuthMiddleware`).
    static func batchesQueueChanges(_ request: Request) throws -> Bool {
        switch request.uri.queryParameters.get(QueueChangesFrame.parameter) {
        case nil, QueueChangesFrame.single?: return false
        case QueueChangesFrame.batched?: return true
        case let other?:
            throw HelpDeskError(.validationFailed, "\(QueueChangesFrame.parameter) must be batched or single, not \(other.prefix(40))")
        }
    }

    /// Installs an upgraded socket's handlers (on its event loop); the connection starts at once.
    func startSocket(channel: any Channel, upgrade: SocketUpgrade) throws {
        let connection = SocketConnection(upgrade: upgrade, channel: channel, controller: self, logger: services.logger)
        try channel.pipeline.syncOperations.addHandlers([
            // fragments into whole messages, bounded in size and count
            NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 256, maxAccumulatedFrameSize: Self.maxFrameSize),
            SocketChannelHandler(connection: connection),
        ])
    }

    /// A socket's start: the account's current state (staff), the session, HELLO; a customer
    /// follows its own conversation from the start. Nil when the socket is refused.
    func start(_ connection: SocketConnection) async -> SocketSession? {
        let caller = connection.upgrade.caller
        var categories: Set<String> = []
        var capacity = "-", categoryList = "-", supervisor = "-", name = caller.name
        // The account's current state; if PostgreSQL is down, Redis keeps an agent's last known.
        if caller.isStaff, let id = Int(caller.id), let user = try? await users.find(id: id) {
            // A token outlives a deactivation or a role change by up to its lifetime: the account
            // decides, not the token (SESSION_ENDED closed the sockets already open).
            guard user.active, user.role == caller.role else {
                let reason = user.active ? "role changed: sign in again" : "account deactivated"
                connection.channel.eventLoop.execute { connection.sendClose(.policyViolation, reason) }
                connection.channel.eventLoop.scheduleTask(in: SocketSession.closeGrace) { connection.channel.close(promise: nil) }
                return nil
            }
            if caller.role == .agent {
                capacity = String(user.capacity)
                categoryList = user.categoryList
                categories = Set(user.categoryIds.map(String.init))
                supervisor = user.supervisorId.map(String.init) ?? ""
                name = user.name
            }
        }
        let session = SocketSession(id: hub.makeSessionID(), caller: caller, categories: categories, remoteIP: connection.upgrade.clientIP,
                                    batchesQueueChanges: connection.upgrade.batchesQueueChanges, channel: connection.channel, outboundByteLimit: hub.caps.outboundBytes,
                                    closer: { [weak connection] code, reason in connection?.sendClose(code, reason) },
                                    keepalive: { [weak connection] ping, close in connection?.keepalive(pingAfter: ping, closeAfter: close) })
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
            // A drain that began while this socket was starting did not see it: it goes now.
            if services.drain.isDraining {
                session.close(.unknown(1012), "service restart: reconnect")
                return session
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
                try await hub.join(session, conversationID: conversation, lastMessageID: nil, sendHistory: false)
                if let view = try await store.conversation(conversation), view.status == "waiting" {
                    hub.trackWaiting(session, conversationID: conversation, category: view.categoryId)
                }
            }
        } catch let error as HelpDeskError where error.code == .rateLimited {
            // Over a socket cap (a race past the upgrade's check): refused with the reason.
            session.send(ServerFrame.error(error, ref: nil))
            session.close(.policyViolation, error.message)
        } catch {
            services.logger.debug("socket start failed", metadata: ["error": "\(error)"])
            session.close(.unknown(1011), "could not start: reconnect")
        }
        return session
    }

    /// A socket's end (its connection is gone): out of the registry; an agent's last socket on this
    /// node leaves presence (behind its earlier presence updates).
    func finish(_ connection: SocketConnection, session: SocketSession?) async {
        guard let session else { return }
        let caller = session.caller
        if caller.role == .agent {
            let (store, node) = (self.store, services.configuration.nodeID)
            _ = try? await hub.unregister(session) {
                try await store.agentDisconnected(agentID: caller.id, node: node)
                return nil
            }?.value
        } else {
            _ = hub.unregister(session)
        }
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
        // a refused option must not spend the single-use ticket
        _ = try WebSocketController.batchesQueueChanges(request)
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

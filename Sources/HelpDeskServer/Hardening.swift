import Foundation
import HelpDeskCore
import Hummingbird
import RedisClient

/// Security headers on every response (pages, API, errors): the pages load only their own
/// scripts, styles and sockets, cannot be framed, and are not content-sniffed (issue 10 #19).
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Fits the pages in `Public/`: scripts and styles from files only (no inline code or style
    /// attributes), the WebSocket and API on the same origin, media from the camera (calls).
    static var contentSecurityPolicy: String {
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
            + "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    }

    static var headers: [(String, String)] {
        [("Content-Security-Policy", contentSecurityPolicy),
         ("X-Content-Type-Options", "nosniff"),
         ("X-Frame-Options", "DENY"),
         ("Referrer-Policy", "no-referrer"),
         ("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        for (name, value) in Self.headers { response.headers[.init(name)!] = value }
        return response
    }
}

/// `POST /api/v1/ws-tickets`, counted per user and per IP in lua/ratelimit.lua: tickets are
/// Redis writes, so one token (or one address) must not be able to mint them without bound (#2).
struct TicketRateLimitMiddleware: RouterMiddleware {
    typealias Context = AuthenticatedContext
    let services: NodeServices

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .post, request.uri.path.hasSuffix("/ws-tickets") else { return try await next(request, context) }
        let configuration = services.configuration
        let ip = clientIP(request: request, remote: context.remoteAddress, trustProxy: configuration.trustProxy)
        let wait = try await services.scripts.run(
            "ratelimit", keys: [services.keys.ticketsByUser(context.caller.id), services.keys.ticketsByIP(ip)],
            arguments: ["hit", String(configuration.ticketWindowSeconds * 1000),
                        String(configuration.ticketLimitPerUser), String(configuration.ticketLimitPerIP)],
            on: services.redis).int ?? 0
        guard wait == 0 else {
            throw HelpDeskError(.rateLimited, "too many WebSocket tickets; try again in \((wait + 999) / 1000) s")
        }
        return try await next(request, context)
    }
}

/// `GET /api/v1/rtc/ice-servers` only for someone who can be in a call right now (#15): TURN
/// credentials let their holder relay traffic through our coturn, so anonymous visitors and staff
/// who never take part in calls get none. Customers: the conversation of their token is active.
/// Agents: at least one active conversation is assigned to them. Supervisors and admins: never
/// (calls are between a conversation's customer and its agent, lua/call_invite.lua).
struct CallParticipantMiddleware: RouterMiddleware {
    typealias Context = AuthenticatedContext
    let store: LiveStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard try await Self.inActiveConversation(context.caller, store: store) else {
            throw HelpDeskError(.forbidden, "call servers are given only to the customer and the agent of an active conversation")
        }
        return try await next(request, context)
    }

    static func inActiveConversation(_ caller: Caller, store: LiveStore) async throws -> Bool {
        switch caller.role {
        case .customer:
            guard let id = caller.conversationID else { return false }
            return try await store.redis.send("HGET", store.keys.conversation(id), "status").string == "active"
        case .agent:
            let ids = (try await store.redis.send("SMEMBERS", store.keys.agentConversations(caller.id)).array ?? []).compactMap(\.string)
            guard !ids.isEmpty else { return false }
            let read = try await store.redis.pipeline(ids.map { ["HMGET", store.keys.conversation($0), "status", "agent_id"] })
            return read.contains { reply in
                let fields = reply.array ?? []
                return fields.count == 2 && fields[0].string == "active" && fields[1].string == caller.id
            }
        case .supervisor, .admin:
            return false
        }
    }
}

/// Constant-time comparison of a presented secret with the expected one.
func secretsMatch(_ presented: String, _ expected: String) -> Bool {
    let a = Crypto.sha256(Array(presented.utf8)), b = Crypto.sha256(Array(expected.utf8))
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}

import Foundation
import HelpDeskCore
import Hummingbird
import NIOCore

/// `/api/v1/auth/*`: login, refresh, logout, me.
struct AuthController: Sendable {
    let auth: AuthService
    let users: UserStore
    let trustProxy: Bool

    struct LoginBody: Decodable { var email: String; var password: String }
    struct RefreshBody: Decodable { var refreshToken: String }
    struct LogoutBody: Decodable { var refreshToken: String? }

    func addRoutes(public api: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AuthenticatedContext>) {
        api.post("auth/login") { request, context in
            let body = try await request.decodeJSON(LoginBody.self, context: context)
            let ip = clientIP(request: request, remote: context.remoteAddress, trustProxy: trustProxy)
            switch try await auth.login(email: body.email, password: body.password, ip: ip) {
            case .staff(let session): return try Response.json(session)
            case .customer(let session): return try Response.json(session)
            }
        }
        api.post("auth/refresh") { request, context in
            let body = try await request.decodeJSON(RefreshBody.self, context: context)
            return try Response.json(try await auth.refresh(body.refreshToken))
        }
        authenticated.post("auth/logout") { request, context in
            let userID = try staffID(context.caller)
            let hasBody = request.headers[.contentLength].map { $0 != "0" } ?? false
            let body = hasBody ? try await request.decodeJSON(LogoutBody.self, context: context) : LogoutBody(refreshToken: nil)
            try await auth.logout(userID: userID, refreshToken: body.refreshToken)
            return Response(status: .noContent)
        }
        authenticated.get("auth/me") { _, context in
            if context.caller.isAccount {
                guard let account = try await CustomerAccounts(pool: auth.pool).find(id: context.caller.id) else {
                    throw HelpDeskError(.unauthorized, "account no longer active")
                }
                return try Response.json(account)
            }
            if context.caller.role == .customer {
                return try Response.json(["id": context.caller.id, "role": "customer", "name": context.caller.name, "conversation_id": context.caller.conversationID ?? ""])
            }
            guard let user = try await users.find(id: try staffID(context.caller)), user.active else {
                throw HelpDeskError(.unauthorized, "account no longer active")
            }
            return try Response.json(user)
        }
    }
}

/// The numeric user id of a staff caller; customers are refused.
func staffID(_ caller: Caller) throws -> Int {
    guard caller.isStaff, let id = Int(caller.id) else { throw HelpDeskError(.forbidden, "staff only") }
    return id
}

/// The client's IP: the TCP peer, or `X-Real-IP` when the node sits behind our own proxy.
func clientIP(request: Request, remote: SocketAddress?, trustProxy: Bool) -> String {
    if trustProxy, let forwarded = request.headers[.init("X-Real-IP")!], !forwarded.isEmpty { return forwarded }
    return remote?.ipAddress ?? "unknown"
}

import HelpDeskCore
import Hummingbird
import NIOCore

/// The context of every request: Hummingbird's core storage, the WebSocket upgrade slot, and the
/// caller once `BearerAuthMiddleware` has verified a token.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Where the `/ws` route leaves its decision for `SocketServerChannel`.
    let socketUpgrade = SocketUpgradeSlot()
    /// The TCP peer, for per-IP limits.
    public let remoteAddress: SocketAddress?
    /// The connection: after a WebSocket upgrade, the socket's outbox writes frames to it directly.
    public let channel: any Channel
    /// Set by `BearerAuthMiddleware` when the request carried a valid token.
    public var caller: Caller?
    /// The client's address as the socket caps count it (set by `WebSocketAuthMiddleware`).
    public var clientIP = ""

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
        self.channel = source.channel
        self.caller = nil
    }

    /// JSON bodies of REST routes are small; anything larger is refused before decoding.
    public var maxUploadSize: Int { 64 * 1024 }
}

/// The context of routes that need a caller: the caller is not optional here, so a handler can
/// never forget the check. Built from `AppRequestContext`; without a caller it throws 401.
public struct AuthenticatedContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let caller: Caller
    public let remoteAddress: SocketAddress?

    public init(context: AppRequestContext) throws {
        guard let caller = context.caller else {
            throw HelpDeskError(.unauthorized, "missing bearer token")
        }
        self.coreContext = context.coreContext
        self.caller = caller
        self.remoteAddress = context.remoteAddress
    }

    public var maxUploadSize: Int { 64 * 1024 }

    /// Throws 403 unless the caller has one of `roles`.
    public func require(_ roles: Role...) throws {
        guard roles.contains(caller.role) else {
            throw HelpDeskError(.forbidden, "this action needs the role \(roles.map(\.rawValue).joined(separator: " or "))")
        }
    }
}

/// Verifies a `Bearer` token when present and stores the caller; a bad token is 401 at once
/// (a request that sends a token means to be authenticated, so we never fall back to anonymous).
struct BearerAuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let tokens: JWTSigner
    let clock: @Sendable () -> Date

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        var context = context
        if let header = request.headers[.authorization] {
            guard header.count > 7, header.prefix(7).lowercased() == "bearer " else {
                throw HelpDeskError(.unauthorized, "Authorization must be a Bearer token")
            }
            let claims = try tokens.verify(String(header.dropFirst(7)), now: clock())
            context.caller = try Caller(claims: claims)
        }
        return try await next(request, context)
    }
}

import Foundation

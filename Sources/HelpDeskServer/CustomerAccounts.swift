import Foundation
import HelpDeskCore
import Hummingbird
import PostgresClient

/// A customer account as the API shows it (register, login, `auth/me`).
struct CustomerAccountView: Codable, Sendable, Equatable {
    var id: String
    var role = "customer"
    var name: String
    var email: String
}

/// What a customer's sign-in (register or login) returns: an access token that owns the account's
/// conversations. Customers get no refresh token: they sign in again when it expires.
struct CustomerSession: Encodable, Sendable {
    var accessToken: String
    var expiresIn: Int
    var user: CustomerAccountView
}

/// Optional customer accounts in PostgreSQL (`customer_accounts`). An account owns the
/// conversations it started while signed in (their customer id is the account id, and the archive
/// row carries `account_id`), never the anonymous chats of its e-mail address.
public struct CustomerAccounts: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Creates an account; nil when the e-mail already has one (customer or staff).
    func create(name: String, email: String, passwordHash: String) async throws -> CustomerAccountView? {
        let id = UUID().uuidString.lowercased()
        // One statement: a staff address is refused like a registered one, and two registrations
        // of one address at once cannot both pass (the unique index decides).
        let rows = try await pool.query("""
            INSERT INTO customer_accounts (id, email, name, password_hash)
            SELECT $1::uuid, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2))
            ON CONFLICT (lower(email)) DO NOTHING
            RETURNING id::text AS id
            """, [id, email, name, passwordHash])
        guard rows.first != nil else { return nil }
        return CustomerAccountView(id: id, name: name, email: email)
    }

    /// The account of an e-mail with its password hash, active or not.
    func credentials(email: String) async throws -> (account: CustomerAccountView, hash: String, active: Bool)? {
        guard let row = try await pool.query(
            "SELECT id::text AS id, name, email, password_hash, active FROM customer_accounts WHERE lower(email) = lower($1)", [email]).first
        else { return nil }
        return (CustomerAccountView(id: try row.decode("id"), name: try row.decode("name"), email: try row.decode("email")),
                try row.decode("password_hash"), try row.decode("active"))
    }

    /// An active account by id.
    func find(id: String) async throws -> CustomerAccountView? {
        guard UUID(uuidString: id) != nil else { return nil }
        guard let row = try await pool.query(
            "SELECT id::text AS id, name, email FROM customer_accounts WHERE id = $1::uuid AND active", [id]).first
        else { return nil }
        return CustomerAccountView(id: try row.decode("id"), name: try row.decode("name"), email: try row.decode("email"))
    }

    /// Sets a new password (`helpdesk customer reset-password`): there is no e-mail sending, so an
    /// admin sets one and tells the customer. Returns false when no account has this e-mail.
    public func resetPassword(email rawEmail: String, password: String) async throws -> Bool {
        let email = try Validate.email(rawEmail)
        let hash = try await AuthService.hashOffLoop(try Validate.password(password))
        let updated = try await pool.query(
            "UPDATE customer_accounts SET password_hash = $2, updated_at = now() WHERE lower(email) = lower($1)", [email, hash])
        return updated.affectedRows > 0
    }
}

/// `POST /auth/register`, `GET /me/conversations`.
struct CustomerAccountsController: Sendable {
    let accounts: CustomerAccounts
    let store: LiveStore
    let archive: ArchiveStore
    let services: NodeServices

    struct RegisterBody: Decodable { var name: String; var email: String; var password: String }

    struct ConversationsReply: Encodable {
        var conversations: [ConversationView]
        /// Ask again with `before` = this (creation ms) for older ones; absent on the last page.
        var nextBefore: Int64?
    }

    func addRoutes(public api: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AuthenticatedContext>) {
        api.post("auth/register") { request, context in
            let body = try await request.decodeJSON(RegisterBody.self, context: context)
            let name = try Validate.text(body.name, field: "name", max: 100)
            let email = try Validate.email(body.email)
            let password = try Validate.password(body.password)
            // Counted per IP before anything is looked up, like chat starts: a 409 tells whether an
            // address has an account (register has to say so), so guessing is bounded here.
            let ip = clientIP(request: request, remote: context.remoteAddress, trustProxy: services.configuration.trustProxy)
            let wait = try await services.scripts.run("ratelimit", keys: [services.keys.registrationsByIP(ip)], arguments: [
                "hit", String(services.configuration.registerWindowSeconds * 1000), String(services.configuration.registerLimitPerIP),
            ], on: services.redis).int ?? 0
            guard wait == 0 else { throw HelpDeskError(.rateLimited, "too many accounts registered from here; try again in \((wait + 999) / 1000) s") }
            let hash = try await AuthService.hashOffLoop(password)
            guard let account = try await accounts.create(name: name, email: email, passwordHash: hash) else {
                throw HelpDeskError(.conflict, "this e-mail is already registered; sign in instead")
            }
            return try Response.json(session(for: account), status: .created)
        }

        authenticated.get("me/conversations") { request, context in
            let caller = context.caller
            guard caller.isAccount else { throw HelpDeskError(.forbidden, "sign in to a customer account to list your conversations") }
            let q = request.uri.queryParameters
            let limit = try Validate.range(try Self.int(q.get("limit"), field: "limit") ?? 20, field: "limit", 1...100)
            let before = try Self.int(q.get("before"), field: "before").map(Int64.init)
            // Live (and recently closed, not yet archived) ones from Redis, the rest from PostgreSQL;
            // a conversation in both (reopened, or archived and still retained) shows as it is live.
            let ids = (try await services.redis.send(
                "ZREVRANGEBYSCORE", services.keys.accountConversations(caller.id), before.map { "(" + String($0) } ?? "+inf", "-inf",
                "LIMIT", "0", String(limit)).array ?? []).compactMap(\.string)
            var byID: [String: ConversationView] = [:]
            for view in try await archive.conversations(account: caller.id, before: before, limit: limit) { byID[view.id] = view }
            for view in try await store.conversations(ids) where view.customer.id == caller.id { byID[view.id] = view }
            let page = Array(byID.values.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }.prefix(limit))
            return try Response.json(ConversationsReply(conversations: page, nextBefore: page.count == limit ? page.last?.createdAt : nil))
        }
    }

    static func int(_ text: String?, field: String) throws -> Int? {
        guard let text else { return nil }
        guard let n = Int(text) else { throw HelpDeskError(.validationFailed, "\(field) must be a number") }
        return n
    }

    func session(for account: CustomerAccountView) -> CustomerSession {
        CustomerSession.issue(for: account, tokens: services.tokens, ttl: services.configuration.accessTokenTTL, now: services.clock())
    }
}

extension CustomerSession {
    /// An account token: role customer, the account id as subject, bound to no conversation.
    static func issue(for account: CustomerAccountView, tokens: JWTSigner, ttl: Int, now: Date) -> CustomerSession {
        let iat = Int(now.timeIntervalSince1970)
        let token = tokens.sign(TokenClaims(sub: account.id, role: Role.customer.rawValue, iat: iat, exp: iat + ttl, name: account.name, acct: true))
        return CustomerSession(accessToken: token, expiresIn: ttl, user: account)
    }
}

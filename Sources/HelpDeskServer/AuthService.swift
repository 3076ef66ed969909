import Foundation
import HelpDeskCore
import PostgresClient
import RedisClient

/// What a successful login or refresh returns.
struct SessionTokens: Codable, Sendable {
    var accessToken: String
    var refreshToken: String
    var expiresIn: Int
    var user: UserRecord
}

/// What a login returns: a staff session (with a refresh token) or a customer account's.
enum LoginReply: Sendable {
    case staff(SessionTokens)
    case customer(CustomerSession)
}

/// Logins, refresh-token rotation and logout for staff; access tokens for customers.
struct AuthService: Sendable {
    let users: UserStore
    let pool: PostgresPool
    let redis: RedisClient
    let scripts: RedisScripts
    let keys: RedisKeys
    let tokens: JWTSigner
    let configuration: ServerConfiguration
    let clock: @Sendable () -> Date

    /// A hash verified when the e-mail is unknown, so that both failures take the same time.
    static let decoyHash = (try? PasswordHasher().hash(UUID().uuidString)) ?? ""

    /// Checks the password; the same 401 for an unknown e-mail, a wrong password and a deactivated account.
    /// Failed attempts are counted per e-mail+IP and per IP; past either limit that IP gets 429, while
    /// the right password from another IP still works (nobody can lock a user out from afar).
    func login(email rawEmail: String, password: String, ip: String) async throws -> LoginReply {
        // the same check as when the account was made: a control character (a NUL that libpq would
        // cut short) or a malformed address is a 400, never a fresh rate-limit counter per variant
        let email = try Validate.email(rawEmail)
        guard password.utf8.count <= 1024 else { throw HelpDeskError(.validationFailed, "password is too long") }
        let limitKeys = [keys.loginFailuresByEmailAndIP(email, ip), keys.loginFailuresByIP(ip)]
        let window = String(configuration.loginWindowSeconds * 1000)
        let limits = [String(configuration.loginLimitPerEmail), String(configuration.loginLimitPerIP)]
        // Count the attempt before checking the password, so parallel guesses cannot all slip
        // under the limit; a successful login gives its attempt back.
        let waitMs = try await scripts.run("ratelimit", keys: limitKeys, arguments: ["hit", window] + limits, on: redis).int ?? 0
        if waitMs > 0 {
            throw HelpDeskError(.rateLimited, "too many failed logins; try again in \((waitMs + 999) / 1000) s")
        }
        let found = try await users.credentials(email: email)
        // No staff account: perhaps a customer's (register never lets one address have both).
        // One hash is verified either way, the decoy when neither exists, so the answer's time
        // does not tell which kind of account, if any, an address has.
        let customer = found == nil ? try await CustomerAccounts(pool: pool).credentials(email: email) : nil
        let hash = found?.1 ?? customer?.hash ?? Self.decoyHash
        let matches = try await Self.verifyOffLoop(password, hash)
        if let customer, matches, customer.active {
            _ = try? await redis.pipeline(limitKeys.map { ["DECR", $0] })
            return .customer(CustomerSession.issue(for: customer.account, tokens: tokens, ttl: configuration.accessTokenTTL, now: clock()))
        }
        guard let (user, _) = found, matches, user.active else {
            throw HelpDeskError(.invalidCredentials, "wrong e-mail or password")
        }
        _ = try? await redis.pipeline(limitKeys.map { ["DECR", $0] })
        return .staff(try await issue(for: user, family: UUID()))
    }

    /// scrypt takes tens of milliseconds and a lot of memory: never on an event loop.
    static func verifyOffLoop(_ password: String, _ hash: String) async throws -> Bool {
        try await NIOThreadPoolRunner.run { PasswordHasher.verify(password, against: hash) }
    }

    static func hashOffLoop(_ password: String) async throws -> String {
        try await NIOThreadPoolRunner.run { try PasswordHasher().hash(password) }
    }

    /// Exchanges a refresh token for a new pair. Each refresh token works once; presenting a used
    /// one again revokes every token of its login (someone else has a copy).
    func refresh(_ refreshToken: String) async throws -> SessionTokens {
        let hash = Self.digest(refreshToken)
        enum Outcome: Sendable { case rotated(userID: Int, family: UUID), reused, invalid }
        let outcome: Outcome = try await pool.transaction { connection in
            let rows = try connection.query("""
                UPDATE refresh_tokens SET used_at = now()
                WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
                RETURNING user_id, family_id
                """, [hash])
            if let row = rows.first {
                return .rotated(userID: try row.decode("user_id"), family: try row.decode("family_id"))
            }
            let reused = try connection.query("""
                UPDATE refresh_tokens SET revoked_at = now()
                WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL)
                  AND revoked_at IS NULL
                """, [hash])
            return reused.affectedRows > 0 ? .reused : .invalid
        }
        switch outcome {
        case .rotated(let userID, let family):
            guard let user = try await users.find(id: userID), user.active else {
                throw HelpDeskError(.unauthorized, "invalid refresh token")
            }
            return try await issue(for: user, family: family)
        case .reused:
            throw HelpDeskError(.unauthorized, "refresh token already used; all sessions of this login were ended")
        case .invalid:
            throw HelpDeskError(.unauthorized, "invalid refresh token")
        }
    }

    /// Revokes one refresh token of the caller, or all of them when none is given.
    func logout(userID: Int, refreshToken: String?) async throws {
        if let refreshToken {
            try await pool.query("UPDATE refresh_tokens SET revoked_at = now() WHERE token_hash = $1 AND user_id = $2 AND revoked_at IS NULL",
                                 [Self.digest(refreshToken), userID])
        } else {
            try await pool.query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [userID])
        }
    }

    /// A signed access token for a staff account.
    func accessToken(for user: UserRecord) -> String {
        let now = Int(clock().timeIntervalSince1970)
        return tokens.sign(TokenClaims(sub: String(user.id), role: user.role.rawValue, iat: now, exp: now + configuration.accessTokenTTL, name: user.name))
    }

    private func issue(for user: UserRecord, family: UUID) async throws -> SessionTokens {
        let refresh = Base64URL.encode(Crypto.randomBytes(32))
        let expires = clock().addingTimeInterval(TimeInterval(configuration.refreshTokenTTL))
        try await pool.query("INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at) VALUES ($1, $2, $3, $4)",
                             [Self.digest(refresh), user.id, family, expires])
        return SessionTokens(accessToken: accessToken(for: user), refreshToken: refresh, expiresIn: configuration.accessTokenTTL, user: user)
    }

    /// Refresh tokens are stored only as SHA-256 hex digests.
    static func digest(_ token: String) -> String {
        Crypto.sha256(Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

import NIOPosix

/// Runs CPU-heavy work (scrypt) on NIO's shared blocking pool instead of an event loop.
enum NIOThreadPoolRunner {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}

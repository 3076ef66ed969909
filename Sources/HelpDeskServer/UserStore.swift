import Foundation
import HelpDeskCore
import PostgresClient

/// A staff account as the API shows it (never with its password hash).
struct UserRecord: Codable, Sendable, Equatable {
    var id: Int
    var email: String
    var name: String
    var role: Role
    var supervisorId: Int?
    var capacity: Int
    var active: Bool
    var categoryIds: [Int]
    var createdAt: Date

    /// The categories as the agent hash in Redis keeps them (`categories`: a comma list).
    var categoryList: String { categoryIds.map(String.init).joined(separator: ",") }
}

/// Fields of a new account, already validated.
struct NewUser: Sendable {
    var email: String
    var name: String
    var passwordHash: String
    var role: Role
    var supervisorID: Int?
    var capacity: Int
    var categoryIDs: [Int]
}

/// Changes to an account; nil leaves a field as it is. `supervisorID` is doubly optional so that
/// JSON `null` (clear it) and an absent key (keep it) differ.
struct UserChanges: Sendable {
    var email: String?
    var name: String?
    var passwordHash: String?
    var role: Role?
    var supervisorID: Int??
    var capacity: Int?
    var active: Bool?
    var categoryIDs: [Int]?
}

/// Staff accounts in PostgreSQL.
struct UserStore: Sendable {
    let pool: PostgresPool

    static let selectUsers = """
        SELECT u.id, u.email, u.name, u.role, u.supervisor_id, u.capacity, u.active, u.created_at,
               coalesce((SELECT string_agg(category_id::text, ',' ORDER BY category_id) FROM agent_categories ac WHERE ac.user_id = u.id), '') AS category_ids
        FROM users u
        """

    static func record(_ row: PostgresRow) throws -> UserRecord {
        guard let role = Role(rawValue: try row.decode("role", as: String.self)) else {
            throw PostgresError(.decodingFailed, "unknown role in users row")
        }
        return UserRecord(
            id: try row.decode("id"),
            email: try row.decode("email"),
            name: try row.decode("name"),
            role: role,
            supervisorId: try row.optional("supervisor_id"),
            capacity: try row.decode("capacity"),
            active: try row.decode("active"),
            categoryIds: try row.decode("category_ids", as: String.self).split(separator: ",").compactMap { Int($0) },
            createdAt: try row.decode("created_at")
        )
    }

    /// The account and its password hash, for login.
    func credentials(email: String) async throws -> (UserRecord, String)? {
        let rows = try await pool.query(
            Self.selectUsers.replacingOccurrences(of: "SELECT u.id,", with: "SELECT u.password_hash, u.id,") + " WHERE lower(u.email) = lower($1)",
            [email])
        guard let row = rows.first else { return nil }
        return (try Self.record(row), try row.decode("password_hash"))
    }

    func find(id: Int) async throws -> UserRecord? {
        try await pool.query(Self.selectUsers + " WHERE u.id = $1", [id]).first.map(Self.record)
    }

    /// All accounts, or the agents of one supervisor.
    func list(supervisorID: Int? = nil, role: Role? = nil) async throws -> [UserRecord] {
        let rows = try await pool.query(
            Self.selectUsers + " WHERE ($1::bigint IS NULL OR u.supervisor_id = $1) AND ($2::text IS NULL OR u.role = $2) ORDER BY u.id",
            [supervisorID, role?.rawValue])
        return try rows.rows.map(Self.record)
    }

    /// Creates an account; a taken e-mail is `conflict`.
    func create(_ user: NewUser) async throws -> UserRecord {
        let id: Int = try await pool.transaction { connection in
            try Self.checkReferences(connection, supervisorID: user.supervisorID, categoryIDs: user.categoryIDs)
            let row: PostgresRow?
            do {
                row = try connection.query(
                    "INSERT INTO users (email, name, password_hash, role, supervisor_id, capacity) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    [user.email, user.name, user.passwordHash, user.role.rawValue, user.supervisorID, user.capacity]).first
            } catch let error as PostgresError where error.isUniqueViolation {
                throw HelpDeskError(.conflict, "an account with this e-mail already exists")
            }
            guard let id = try row?.decode("id", as: Int.self) else { throw PostgresError(.queryFailed, "INSERT returned no id") }
            try Self.setCategories(connection, userID: id, categoryIDs: user.categoryIDs)
            return id
        }
        guard let record = try await find(id: id) else { throw HelpDeskError(.internalError, "created user vanished") }
        return record
    }

    /// Applies changes; returns the updated account, or nil if there is none with that id.
    func update(id: Int, _ changes: UserChanges) async throws -> UserRecord? {
        let found: Bool = try await pool.transaction { connection in
            let supervisor: Int? = changes.supervisorID ?? nil
            if supervisor == id { throw HelpDeskError(.validationFailed, "a user cannot supervise themselves") }
            try Self.checkReferences(connection, supervisorID: supervisor, categoryIDs: changes.categoryIDs ?? [])
            let rows: PostgresRows
            do {
                rows = try connection.query("""
                    UPDATE users SET
                        email = coalesce($2, email),
                        name = coalesce($3, name),
                        password_hash = coalesce($4, password_hash),
                        role = coalesce($5, role),
                        supervisor_id = CASE WHEN $6 THEN $7::bigint ELSE supervisor_id END,
                        capacity = coalesce($8, capacity),
                        active = coalesce($9, active),
                        updated_at = now()
                    WHERE id = $1
                    RETURNING id
                    """,
                    [id, changes.email, changes.name, changes.passwordHash, changes.role?.rawValue,
                     changes.supervisorID != nil, supervisor, changes.capacity, changes.active])
            } catch let error as PostgresError where error.isUniqueViolation {
                throw HelpDeskError(.conflict, "an account with this e-mail already exists")
            }
            guard !rows.isEmpty else { return false }
            if let categories = changes.categoryIDs { try Self.setCategories(connection, userID: id, categoryIDs: categories) }
            if changes.active == false || changes.passwordHash != nil {
                // A deactivated account or a new password ends every session.
                try connection.query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [id])
            }
            return true
        }
        return found ? try await find(id: id) : nil
    }

    private static func checkReferences(_ connection: PostgresConnection, supervisorID: Int?, categoryIDs: [Int]) throws {
        if let supervisorID {
            let rows = try connection.query("SELECT 1 FROM users WHERE id = $1 AND role IN ('supervisor', 'admin') AND active", [supervisorID])
            if rows.isEmpty { throw HelpDeskError(.validationFailed, "supervisor_id \(supervisorID) is not an active supervisor") }
        }
        for category in Set(categoryIDs) {
            if try connection.query("SELECT 1 FROM categories WHERE id = $1", [category]).isEmpty {
                throw HelpDeskError(.validationFailed, "category \(category) does not exist")
            }
        }
    }

    private static func setCategories(_ connection: PostgresConnection, userID: Int, categoryIDs: [Int]) throws {
        try connection.query("DELETE FROM agent_categories WHERE user_id = $1", [userID])
        for category in Set(categoryIDs).sorted() {
            try connection.query("INSERT INTO agent_categories (user_id, category_id) VALUES ($1, $2)", [userID, category])
        }
    }
}

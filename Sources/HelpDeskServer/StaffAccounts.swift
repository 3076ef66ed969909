import Foundation
import HelpDeskCore
import PostgresClient

/// Account creation for the command line (`helpdesk user create`, demo accounts), with the same
/// validation as the REST route.
public struct StaffAccounts: Sendable {
    let users: UserStore

    public init(pool: PostgresPool) {
        self.users = UserStore(pool: pool)
    }

    /// A created account, as the CLI reports it.
    public struct Created: Sendable {
        public let id: Int
        public let email: String
        public let role: Role
    }

    public func create(email: String, name: String, password: String, role: String, supervisorEmail: String?, capacity: Int) async throws -> Created {
        var supervisorID: Int?
        if let supervisorEmail {
            guard let (supervisor, _) = try await users.credentials(email: try Validate.email(supervisorEmail)) else {
                throw HelpDeskError(.validationFailed, "no account \(supervisorEmail)")
            }
            supervisorID = supervisor.id
        }
        let record = try await users.create(NewUser(
            email: try Validate.email(email),
            name: try Validate.text(name, field: "name", max: 100),
            passwordHash: try await AuthService.hashOffLoop(try Validate.password(password)),
            role: try UsersController.role(role),
            supervisorID: supervisorID,
            capacity: try Validate.range(capacity, field: "capacity", 1...50),
            categoryIDs: []))
        return Created(id: record.id, email: record.email, role: record.role)
    }

    /// With no categories yet: Billing with Refunds under it (pick routing) and Sales, whose
    /// customers are offered to agents, with 10 s of wrap-up. Returns whether it created them.
    /// Nodes mirror them into Redis when they start.
    public func ensureDemoCategories() async throws -> Bool {
        let pool = users.pool
        guard try await pool.query("SELECT 1 FROM categories LIMIT 1").isEmpty else { return false }
        let billing: Int = try await pool.query("INSERT INTO categories (name) VALUES ('Billing') RETURNING id").first!.decode("id")
        try await pool.query("INSERT INTO categories (name, parent_id) VALUES ('Refunds', $1)", [billing])
        try await pool.query("INSERT INTO categories (name, routing, wrap_up_s) VALUES ('Sales', 'offer', 10)")
        return true
    }

    /// Creates admin@example.com, supervisor@example.com and agent1/agent2@example.com when absent,
    /// each with a random password; returns (email, role, password) of those it created.
    public func ensureDemoAccounts() async throws -> [(String, String, String)] {
        let demo: [(String, String, String, String?)] = [
            ("admin@example.com", "Ada Admin", "admin", nil),
            ("supervisor@example.com", "Sam Supervisor", "supervisor", nil),
            ("agent1@example.com", "Alex Agent", "agent", "supervisor@example.com"),
            ("agent2@example.com", "Blake Agent", "agent", "supervisor@example.com"),
        ]
        var created: [(String, String, String)] = []
        for (email, name, role, supervisor) in demo {
            if try await users.credentials(email: email) != nil { continue }
            let password = Base64URL.encode(Crypto.randomBytes(9))
            _ = try await create(email: email, name: name, password: password, role: role, supervisorEmail: supervisor, capacity: 3)
            created.append((email, role, password))
        }
        return created
    }
}

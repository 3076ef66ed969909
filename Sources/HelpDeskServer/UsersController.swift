import Foundation
import HelpDeskCore
import Hummingbird

/// `/api/v1/users`: admins manage staff accounts; supervisors read their own agents.
struct UsersController: Sendable {
    let users: UserStore
    /// For keeping a connected agent's team, capacity and categories in Redis in step.
    var store: LiveStore? = nil
    /// Routes offers after such a change (more room, or new categories, can make a match).
    var offers: OfferRouter? = nil

    struct CreateBody: Decodable {
        var email: String
        var name: String
        var password: String
        var role: String
        var supervisorId: Int?
        var capacity: Int?
        var categoryIds: [Int]?
    }

    /// PATCH body: every field optional; `supervisor_id: null` clears the supervisor.
    struct UpdateBody: Decodable {
        var email: String?
        var name: String?
        var password: String?
        var role: String?
        var supervisorId: Int??
        var capacity: Int?
        var active: Bool?
        var categoryIds: [Int]?

        enum CodingKeys: String, CodingKey {
            case email, name, password, role, supervisorId, capacity, active, categoryIds
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            email = try c.decodeIfPresent(String.self, forKey: .email)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            password = try c.decodeIfPresent(String.self, forKey: .password)
            role = try c.decodeIfPresent(String.self, forKey: .role)
            if c.contains(.supervisorId) {
                supervisorId = .some(try c.decodeNil(forKey: .supervisorId) ? nil : try c.decode(Int.self, forKey: .supervisorId))
            }
            capacity = try c.decodeIfPresent(Int.self, forKey: .capacity)
            active = try c.decodeIfPresent(Bool.self, forKey: .active)
            categoryIds = try c.decodeIfPresent([Int].self, forKey: .categoryIds)
        }
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("users") { request, context in
            let roleFilter = try request.uri.queryParameters.get("role").map(Self.role)
            switch context.caller.role {
            case .admin:
                return try Response.json(try await users.list(role: roleFilter))
            case .supervisor:
                return try Response.json(try await users.list(supervisorID: try staffID(context.caller), role: roleFilter))
            default:
                throw HelpDeskError(.forbidden, "only admins and supervisors may list staff")
            }
        }
        group.post("users") { request, context in
            try context.require(.admin)
            let body = try await request.decodeJSON(CreateBody.self, context: context)
            let new = NewUser(
                email: try Validate.email(body.email),
                name: try Validate.text(body.name, field: "name", max: 100),
                passwordHash: try await AuthService.hashOffLoop(try Validate.password(body.password)),
                role: try Self.role(body.role),
                supervisorID: body.supervisorId,
                capacity: try Validate.range(body.capacity ?? 3, field: "capacity", 1...50),
                categoryIDs: body.categoryIds ?? [])
            return try Response.json(try await users.create(new), status: .created)
        }
        group.get("users/:id") { _, context in
            let id = try context.parameters.require("id", as: Int.self)
            guard let user = try await users.find(id: id) else { throw HelpDeskError(.notFound, "no user \(id)") }
            let caller = context.caller
            let allowed = caller.role == .admin || caller.id == String(id)
                || (caller.role == .supervisor && user.supervisorId.map(String.init) == caller.id)
            // Someone who may not see the account learns nothing about whether it exists.
            guard allowed else { throw HelpDeskError(.notFound, "no user \(id)") }
            return try Response.json(user)
        }
        group.patch("users/:id") { request, context in
            try context.require(.admin)
            let id = try context.parameters.require("id", as: Int.self)
            let body = try await request.decodeJSON(UpdateBody.self, context: context)
            if body.active == false, String(id) == context.caller.id {
                throw HelpDeskError(.validationFailed, "you cannot deactivate your own account")
            }
            let changes = UserChanges(
                email: try body.email.map { try Validate.email($0) },
                name: try body.name.map { try Validate.text($0, field: "name", max: 100) },
                passwordHash: try await body.password.asyncMap { try await AuthService.hashOffLoop(try Validate.password($0)) },
                role: try body.role.map(Self.role),
                supervisorID: body.supervisorId,
                capacity: try body.capacity.map { try Validate.range($0, field: "capacity", 1...50) },
                active: body.active,
                categoryIDs: body.categoryIds)
            let before = try await users.find(id: id)
            guard let user = try await users.update(id: id, changes) else { throw HelpDeskError(.notFound, "no user \(id)") }
            // An open socket acts with the account it opened with: end it where that changed.
            if let reason = Self.sessionEndReason(before: before, after: user, deactivating: body.active == false) {
                try await store?.endSessions(userID: String(id), reason: reason)
            }
            // What routing reads lives in Redis too: a connected agent follows the change at once.
            if user.role == .agent, body.supervisorId != nil || body.capacity != nil || body.categoryIds != nil {
                try await store?.updateAgentProfile(
                    agentID: String(id), capacity: body.capacity.map { _ in user.capacity },
                    categories: body.categoryIds.map { _ in user.categoryList },
                    supervisorID: body.supervisorId.map { _ in user.supervisorId.map(String.init) ?? "" })
                offers?.trigger()
            }
            return try Response.json(user)
        }
        group.delete("users/:id") { _, context in
            try context.require(.admin)
            let id = try context.parameters.require("id", as: Int.self)
            guard String(id) != context.caller.id else { throw HelpDeskError(.validationFailed, "you cannot deactivate your own account") }
            guard let user = try await users.update(id: id, UserChanges(active: false)) else { throw HelpDeskError(.notFound, "no user \(id)") }
            try await store?.endSessions(userID: String(id), reason: "deactivated")
            return try Response.json(user)
        }
    }

    /// Why a change ends the user's live sockets, if it does: a deactivation (asked for again,
    /// it publishes again: an earlier try may have failed after PostgreSQL committed), or another
    /// role (its sockets were opened with the old one's rights; the pages send the role unchanged
    /// with every save, so only a change counts). Both are refused at a new socket's start too.
    static func sessionEndReason(before: UserRecord?, after: UserRecord, deactivating: Bool) -> String? {
        if deactivating && !after.active { return "deactivated" }
        if let before, before.role != after.role { return "role_changed" }
        return nil
    }

    static func role(_ text: String) throws -> Role {
        guard let role = Role(rawValue: text), Role.staff.contains(role) else {
            throw HelpDeskError(.validationFailed, "role must be admin, supervisor or agent")
        }
        return role
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}

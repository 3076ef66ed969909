import Foundation
import HelpDeskCore
import Hummingbird
import PostgresClient

/// `/api/v1/categories`: anyone reads (the customer form lists them); admins manage.
struct CategoriesController: Sendable {
    let pool: PostgresPool

    struct Category: Codable, Sendable {
        var id: Int
        var name: String
        var parentId: Int?
        var active: Bool
    }

    struct CreateBody: Decodable { var name: String; var parentId: Int? }
    struct UpdateBody: Decodable { var name: String?; var active: Bool? }

    static func category(_ row: PostgresRow) throws -> Category {
        Category(id: try row.decode("id"), name: try row.decode("name"), parentId: try row.optional("parent_id"), active: try row.decode("active"))
    }

    func addRoutes(public api: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AuthenticatedContext>) {
        api.get("categories") { request, context in
            // Admins may ask for deactivated ones too (`?all=1`), to reactivate them.
            let all = request.uri.queryParameters.get("all") == "1" && context.caller?.role == .admin
            let rows = try await pool.query("SELECT id, name, parent_id, active FROM categories WHERE active OR $1 ORDER BY coalesce(parent_id, id), parent_id NULLS FIRST, name", [all])
            return try Response.json(try rows.rows.map(Self.category))
        }
        authenticated.post("categories") { request, context in
            try context.require(.admin)
            let body = try await request.decodeJSON(CreateBody.self, context: context)
            let name = try Validate.text(body.name, field: "name", max: 80)
            if let parent = body.parentId {
                let rows = try await pool.query("SELECT parent_id FROM categories WHERE id = $1", [parent])
                guard let row = rows.first else { throw HelpDeskError(.validationFailed, "parent category \(parent) does not exist") }
                guard try row.optional("parent_id", as: Int.self) == nil else {
                    throw HelpDeskError(.validationFailed, "subcategories cannot have subcategories")
                }
            }
            do {
                let row = try await pool.query("INSERT INTO categories (name, parent_id) VALUES ($1, $2) RETURNING id, name, parent_id, active", [name, body.parentId]).first!
                return try Response.json(try Self.category(row), status: .created)
            } catch let error as PostgresError where error.isUniqueViolation {
                throw HelpDeskError(.conflict, "a category with this name already exists there")
            }
        }
        authenticated.patch("categories/:id") { request, context in
            try context.require(.admin)
            let id = try context.parameters.require("id", as: Int.self)
            let body = try await request.decodeJSON(UpdateBody.self, context: context)
            let name = try body.name.map { try Validate.text($0, field: "name", max: 80) }
            do {
                guard let row = try await pool.query(
                    "UPDATE categories SET name = coalesce($2, name), active = coalesce($3, active) WHERE id = $1 RETURNING id, name, parent_id, active",
                    [id, name, body.active]).first else { throw HelpDeskError(.notFound, "no category \(id)") }
                return try Response.json(try Self.category(row))
            } catch let error as PostgresError where error.isUniqueViolation {
                throw HelpDeskError(.conflict, "a category with this name already exists there")
            }
        }
        authenticated.delete("categories/:id") { _, context in
            try context.require(.admin)
            let id = try context.parameters.require("id", as: Int.self)
            // Archived conversations keep their category id, so categories are deactivated, not deleted.
            let rows = try await pool.query("UPDATE categories SET active = false WHERE id = $1 OR parent_id = $1 RETURNING id", [id])
            guard !rows.isEmpty else { throw HelpDeskError(.notFound, "no category \(id)") }
            return Response(status: .noContent)
        }
    }
}

import Foundation
import HelpDeskCore
import Hummingbird
import PostgresClient

/// `/api/v1/categories`: anyone reads (the customer form lists them); admins manage. Each category
/// routes its customers by `pick` (agents take them from the queue) or `offer` (offered to one
/// agent at a time), and gives its agents `wrap_up_s` seconds of wrap-up after a close. Category
/// `0` is the uncategorised queue: not listed, but `GET`/`PATCH /categories/0` read and set its
/// routing and wrap-up. Every change is mirrored into Redis for the routing scripts.
struct CategoriesController: Sendable {
    let pool: PostgresPool
    let router: OfferRouter

    struct Category: Codable, Sendable {
        var id: Int
        var name: String
        var parentId: Int?
        var active: Bool
        var routing: String
        var wrapUpS: Int
    }

    struct CreateBody: Decodable { var name: String; var parentId: Int?; var routing: String?; var wrapUpS: Int? }
    struct UpdateBody: Decodable { var name: String?; var active: Bool?; var routing: String?; var wrapUpS: Int? }

    static let columns = "id, name, parent_id, active, routing, wrap_up_s"
    /// The uncategorised queue's name in the API (the pages call it General).
    static let uncategorisedName = "General"

    static func category(_ row: PostgresRow) throws -> Category {
        Category(id: try row.decode("id"), name: try row.decode("name"), parentId: try row.optional("parent_id"), active: try row.decode("active"),
                 routing: try row.decode("routing"), wrapUpS: try row.decode("wrap_up_s"))
    }

    static func validRouting(_ routing: String?) throws -> String? {
        guard let routing else { return nil }
        guard routing == "pick" || routing == "offer" else { throw HelpDeskError(.validationFailed, "routing must be pick or offer") }
        return routing
    }

    static func validWrapUp(_ seconds: Int?) throws -> Int? {
        try seconds.map { try Validate.range($0, field: "wrap_up_s", 0...3600) }
    }

    func uncategorised() async throws -> Category {
        guard let row = try await pool.query("SELECT routing, wrap_up_s FROM uncategorised_queue").first else {
            throw HelpDeskError(.internalError, "uncategorised_queue has no row")
        }
        return Category(id: 0, name: Self.uncategorisedName, parentId: nil, active: true,
                        routing: try row.decode("routing"), wrapUpS: try row.decode("wrap_up_s"))
    }

    func addRoutes(public api: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AuthenticatedContext>) {
        api.get("categories") { request, context in
            // Admins may ask for deactivated ones too (`?all=1`), to reactivate them.
            let all = request.uri.queryParameters.get("all") == "1" && context.caller?.role == .admin
            let rows = try await pool.query("SELECT \(Self.columns) FROM categories WHERE active OR $1 ORDER BY coalesce(parent_id, id), parent_id NULLS FIRST, name", [all])
            return try Response.json(try rows.rows.map(Self.category))
        }
        api.get("categories/:id") { _, context in
            let id = try context.parameters.require("id", as: Int.self)
            if id == 0 { return try Response.json(try await uncategorised()) }
            guard let row = try await pool.query("SELECT \(Self.columns) FROM categories WHERE id = $1", [id]).first,
                  try row.decode("active", as: Bool.self) || context.caller?.role == .admin else {
                throw HelpDeskError(.notFound, "no category \(id)")
            }
            return try Response.json(try Self.category(row))
        }
        authenticated.post("categories") { request, context in
            try context.require(.admin)
            let body = try await request.decodeJSON(CreateBody.self, context: context)
            let name = try Validate.text(body.name, field: "name", max: 80)
            let routing = try Self.validRouting(body.routing) ?? "pick"
            let wrapUp = try Self.validWrapUp(body.wrapUpS) ?? 0
            if let parent = body.parentId {
                let rows = try await pool.query("SELECT parent_id FROM categories WHERE id = $1", [parent])
                guard let row = rows.first else { throw HelpDeskError(.validationFailed, "parent category \(parent) does not exist") }
                guard try row.optional("parent_id", as: Int.self) == nil else {
                    throw HelpDeskError(.validationFailed, "subcategories cannot have subcategories")
                }
            }
            do {
                let row = try await pool.query("INSERT INTO categories (name, parent_id, routing, wrap_up_s) VALUES ($1, $2, $3, $4) RETURNING \(Self.columns)",
                                               [name, body.parentId, routing, wrapUp]).first!
                await router.categoriesChanged()
                return try Response.json(try Self.category(row), status: .created)
            } catch let error as PostgresError where error.isUniqueViolation {
                throw HelpDeskError(.conflict, "a category with this name already exists there")
            }
        }
        authenticated.patch("categories/:id") { request, context in
            try context.require(.admin)
            let id = try context.parameters.require("id", as: Int.self)
            let body = try await request.decodeJSON(UpdateBody.self, context: context)
            let routing = try Self.validRouting(body.routing)
            let wrapUp = try Self.validWrapUp(body.wrapUpS)
            if id == 0 {
                guard body.name == nil, body.active == nil else {
                    throw HelpDeskError(.validationFailed, "the uncategorised queue has only routing and wrap_up_s")
                }
                try await pool.query("UPDATE uncategorised_queue SET routing = coalesce($1, routing), wrap_up_s = coalesce($2, wrap_up_s), updated_at = now()",
                                     [routing, wrapUp])
                await router.categoriesChanged()
                return try Response.json(try await uncategorised())
            }
            let name = try body.name.map { try Validate.text($0, field: "name", max: 80) }
            do {
                guard let row = try await pool.query("""
                    UPDATE categories SET name = coalesce($2, name), active = coalesce($3, active), routing = coalesce($4, routing),
                        wrap_up_s = coalesce($5, wrap_up_s), updated_at = now()
                    WHERE id = $1 RETURNING \(Self.columns)
                    """, [id, name, body.active, routing, wrapUp]).first else { throw HelpDeskError(.notFound, "no category \(id)") }
                await router.categoriesChanged()
                return try Response.json(try Self.category(row))
            } catch let error as PostgresError where error.isUniqueViolation {
                throw HelpDeskError(.conflict, "a category with this name already exists there")
            }
        }
        authenticated.delete("categories/:id") { _, context in
            try context.require(.admin)
            let id = try context.parameters.require("id", as: Int.self)
            // Archived conversations keep their category id, so categories are deactivated, not deleted.
            let rows = try await pool.query("UPDATE categories SET active = false, updated_at = now() WHERE id = $1 OR parent_id = $1 RETURNING id", [id])
            guard !rows.isEmpty else { throw HelpDeskError(.notFound, "no category \(id)") }
            await router.categoriesChanged()
            return Response(status: .noContent)
        }
    }
}

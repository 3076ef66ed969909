import Foundation
import HelpDeskProtocol

/// `GET /openapi.json`: the REST API as OpenAPI 3.1, generated from the route table below.
///
/// This file is the one place a route is described; `OpenAPIDocumentTests` holds it to the
/// router (every route `buildRouter` serves is here and every entry here is served), so adding a
/// route without describing it fails the tests. The schemas (`APISchemas`) are shared with the
/// AsyncAPI document of the WebSocket (`AsyncAPIDocument`).
enum APIDocument {
    /// Who may call a route.
    enum Auth {
        /// Anyone.
        case none
        /// A bearer token is read when sent (e.g. a customer token resumes its chat), not required.
        case optionalBearer
        /// A staff or customer access token.
        case bearer
        /// `HELPDESK_METRICS_TOKEN` (off, 404, without it).
        case metricsToken
        /// The WebSocket upgrade: `?ticket=` or a bearer token.
        case socket
    }

    /// One answer of a route: its status and body (a schema, or none).
    struct Reply {
        var status: Int
        var description: String
        var schema: [String: Any]?
        var contentType = "application/json"
    }

    /// A query parameter.
    struct Query {
        var name: String
        var schema: [String: Any]
        var description: String
    }

    struct Route {
        var method: String
        /// OpenAPI form: `/api/v1/users/{id}`.
        var path: String
        var auth: Auth
        var tag: String
        var summary: String
        var query: [Query] = []
        /// A JSON request body (`required` unless `bodyOptional`).
        var body: [String: Any]? = nil
        var bodyOptional = false
        var replies: [Reply]
    }

    static let v1 = "/api/v1"

    // MARK: the route table

    /// Every route of `buildRouter` but the static files (`/vendor/chart.min.js`; `/docs` and the
    /// pages are files in `Public/`, served by the file middleware, not routes).
    static var routes: [Route] {
        typealias S = APISchemas
        var r: [Route] = []
        // health
        r.append(Route(method: "GET", path: "/healthz", auth: .none, tag: "health", summary: "The process answers",
                       replies: [Reply(status: 200, description: "alive", schema: S.ref("Health"))]))
        r.append(Route(method: "GET", path: "/readyz", auth: .none, tag: "health", summary: "Redis and PostgreSQL answer within a second",
                       replies: [Reply(status: 200, description: "ready", schema: S.ref("Readiness")),
                                 Reply(status: 503, description: "not ready, or draining", schema: S.ref("Readiness"))]))
        r.append(Route(method: "GET", path: "/metrics", auth: .metricsToken, tag: "health", summary: "Prometheus text (off, 404, without HELPDESK_METRICS_TOKEN)",
                       replies: [Reply(status: 200, description: "Prometheus exposition format", schema: S.string, contentType: "text/plain")]))
        r.append(Route(method: "GET", path: "/openapi.json", auth: .none, tag: "docs", summary: "This document",
                       replies: [Reply(status: 200, description: "OpenAPI 3.1", schema: S.object)]))
        r.append(Route(method: "GET", path: "/asyncapi.json", auth: .none, tag: "docs", summary: "The WebSocket protocol as AsyncAPI 3.0",
                       replies: [Reply(status: 200, description: "AsyncAPI 3.0", schema: S.object)]))
        r.append(Route(method: "GET", path: "/ws", auth: .socket, tag: "realtime",
                       summary: "The WebSocket: upgrade with `?ticket=` (POST /api/v1/ws-tickets) or a bearer token; frames in /asyncapi.json",
                       query: [Query(name: "ticket", schema: S.string, description: "single-use ticket, 30 s"),
                               Query(name: "queue_changes", schema: S.enumeration(["batched", "single"]),
                                     description: "batched: a window's queue changes in one QUEUE_CHANGES frame; single (the default): one QUEUE_UPDATED each")],
                       replies: [Reply(status: 101, description: "switching protocols (an upgrade request)", schema: nil)]))
        // auth
        r.append(Route(method: "POST", path: v1 + "/auth/login", auth: .none, tag: "auth", summary: "Sign in: staff (tokens and the account) or a customer account (an access token, no refresh token)",
                       body: S.obj(["email": S.string, "password": S.string], required: ["email", "password"]),
                       replies: [Reply(status: 200, description: "tokens and the account",
                                       schema: ["oneOf": [S.ref("SessionTokens"), S.ref("CustomerSession")]])]))
        r.append(Route(method: "POST", path: v1 + "/auth/register", auth: .none, tag: "auth", summary: "Create a customer account (rate limited per IP; 409 when the e-mail is registered)",
                       body: S.obj(["name": S.string, "email": S.string, "password": S.string], required: ["name", "email", "password"]),
                       replies: [Reply(status: 201, description: "the account, signed in", schema: S.ref("CustomerSession"))]))
        r.append(Route(method: "GET", path: v1 + "/me/conversations", auth: .bearer, tag: "auth", summary: "A customer account's conversations, live and archived, newest first",
                       query: [Query(name: "before", schema: S.ms, description: "creation ms: the page before it (`next_before`)"),
                               Query(name: "limit", schema: S.range(1, 100), description: "at most this many (default 20)")],
                       replies: [Reply(status: 200, description: "a page of conversations", schema: S.ref("CustomerConversations"))]))
        r.append(Route(method: "POST", path: v1 + "/auth/refresh", auth: .none, tag: "auth", summary: "A new token pair for a refresh token (rotated)",
                       body: S.obj(["refresh_token": S.string], required: ["refresh_token"]),
                       replies: [Reply(status: 200, description: "tokens and the account", schema: S.ref("SessionTokens"))]))
        r.append(Route(method: "POST", path: v1 + "/auth/logout", auth: .bearer, tag: "auth", summary: "Staff: revoke a refresh token (or all of the caller's)",
                       body: S.obj(["refresh_token": S.nullable(S.string)]), bodyOptional: true,
                       replies: [Reply(status: 204, description: "signed out", schema: nil)]))
        r.append(Route(method: "GET", path: v1 + "/auth/me", auth: .bearer, tag: "auth", summary: "The caller (a staff account, or a customer and its conversation)",
                       replies: [Reply(status: 200, description: "the caller", schema: ["oneOf": [S.ref("User"), S.ref("CustomerMe")]])]))
        r.append(Route(method: "POST", path: v1 + "/ws-tickets", auth: .bearer, tag: "realtime", summary: "A single-use WebSocket ticket (30 s) standing for the bearer token",
                       replies: [Reply(status: 200, description: "the ticket", schema: S.obj(["ticket": S.string], required: ["ticket"]))]))
        r.append(Route(method: "GET", path: v1 + "/rtc/ice-servers", auth: .bearer, tag: "realtime",
                       summary: "STUN/TURN servers for a call (the customer or agent of an active conversation)",
                       replies: [Reply(status: 200, description: "ICE servers", schema: S.obj(
                           ["ice_servers": S.array(S.object), "ttl": S.integer], required: ["ice_servers", "ttl"]))]))
        // users
        r.append(Route(method: "GET", path: v1 + "/users", auth: .bearer, tag: "users", summary: "Staff accounts (admins: all; supervisors: their agents)",
                       query: [Query(name: "role", schema: S.enumeration(["admin", "supervisor", "agent"]), description: "only this role")],
                       replies: [Reply(status: 200, description: "accounts", schema: S.array(S.ref("User")))]))
        r.append(Route(method: "POST", path: v1 + "/users", auth: .bearer, tag: "users", summary: "Admins: create a staff account",
                       body: S.ref("UserCreate"),
                       replies: [Reply(status: 201, description: "created", schema: S.ref("User"))]))
        r.append(Route(method: "GET", path: v1 + "/users/{id}", auth: .bearer, tag: "users", summary: "One account (admins; the account itself; its supervisor)",
                       replies: [Reply(status: 200, description: "the account", schema: S.ref("User"))]))
        r.append(Route(method: "PATCH", path: v1 + "/users/{id}", auth: .bearer, tag: "users", summary: "Admins: change an account (`supervisor_id: null` clears it)",
                       body: S.ref("UserUpdate"),
                       replies: [Reply(status: 200, description: "the account", schema: S.ref("User"))]))
        r.append(Route(method: "DELETE", path: v1 + "/users/{id}", auth: .bearer, tag: "users", summary: "Admins: deactivate an account",
                       replies: [Reply(status: 200, description: "the deactivated account", schema: S.ref("User"))]))
        // categories
        r.append(Route(method: "GET", path: v1 + "/categories", auth: .optionalBearer, tag: "categories", summary: "Active categories (`?all=1`: admins, with deactivated ones)",
                       query: [Query(name: "all", schema: S.enumeration(["1"]), description: "admins: deactivated ones too")],
                       replies: [Reply(status: 200, description: "categories", schema: S.array(S.ref("Category")))]))
        r.append(Route(method: "GET", path: v1 + "/categories/{id}", auth: .optionalBearer, tag: "categories", summary: "One category (`0`: the uncategorised queue)",
                       replies: [Reply(status: 200, description: "the category", schema: S.ref("Category"))]))
        r.append(Route(method: "POST", path: v1 + "/categories", auth: .bearer, tag: "categories", summary: "Admins: create a category",
                       body: S.ref("CategoryCreate"),
                       replies: [Reply(status: 201, description: "created", schema: S.ref("Category"))]))
        r.append(Route(method: "PATCH", path: v1 + "/categories/{id}", auth: .bearer, tag: "categories", summary: "Admins: change a category (`0`: routing and wrap-up only)",
                       body: S.ref("CategoryUpdate"),
                       replies: [Reply(status: 200, description: "the category", schema: S.ref("Category"))]))
        r.append(Route(method: "DELETE", path: v1 + "/categories/{id}", auth: .bearer, tag: "categories", summary: "Admins: deactivate a category and its subcategories",
                       replies: [Reply(status: 204, description: "deactivated", schema: nil)]))
        // conversations
        r.append(Route(method: "POST", path: v1 + "/conversations", auth: .optionalBearer, tag: "conversations",
                       summary: "A customer starts a chat (a customer token resumes its open one)",
                       body: S.ref("ConversationStart"),
                       replies: [Reply(status: 201, description: "queued", schema: S.ref("ConversationStarted")),
                                 Reply(status: 200, description: "the caller's open conversation", schema: S.ref("ConversationStarted"))]))
        r.append(Route(method: "GET", path: v1 + "/conversations", auth: .bearer, tag: "conversations", summary: "Staff: live and archived conversations, newest first",
                       query: [Query(name: "status", schema: S.enumeration(["waiting", "active", "closed", "abandoned"]), description: "only this status"),
                               Query(name: "agent_id", schema: S.integer, description: "only this agent's"),
                               Query(name: "category_id", schema: S.integer, description: "only this category's"),
                               Query(name: "limit", schema: S.range(1, 500), description: "at most this many (default 50)"),
                               Query(name: "before", schema: ["type": "integer", "minimum": 0, "maximum": 253_402_300_799_999], description: "page: created (live) / closed (archived) before this time, ms")],
                       replies: [Reply(status: 200, description: "conversations", schema: S.array(S.ref("Conversation")))]))
        r.append(Route(method: "GET", path: v1 + "/conversations/{id}", auth: .bearer, tag: "conversations", summary: "One conversation (its customer, its agent, staff who may see it)",
                       replies: [Reply(status: 200, description: "the conversation", schema: S.ref("Conversation"))]))
        r.append(Route(method: "GET", path: v1 + "/conversations/{id}/messages", auth: .bearer, tag: "conversations", summary: "Its messages, paged",
                       query: [Query(name: "after", schema: S.string, description: "a message id: the page after it"),
                               Query(name: "limit", schema: S.range(1, 1000), description: "at most this many (default 500)")],
                       replies: [Reply(status: 200, description: "a page of messages", schema: S.ref("MessagePage"))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/messages", auth: .bearer, tag: "conversations", summary: "Send a message (as SEND_MESSAGE)",
                       body: S.ref("MessageSend"),
                       replies: [Reply(status: 201, description: "stored", schema: S.ref("MessageSent")),
                                 Reply(status: 200, description: "a duplicate `client_msg_id`: stored before", schema: S.ref("MessageSent"))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/attachments", auth: .bearer, tag: "conversations",
                       summary: "Upload a file (the body; its type as Content-Type: PNG, JPEG, GIF, WebP, PDF, text) to send with a message",
                       query: [Query(name: "name", schema: S.string, description: "the file's name")],
                       replies: [Reply(status: 201, description: "stored, not yet sent", schema: S.ref("Attachment"))]))
        r.append(Route(method: "GET", path: v1 + "/attachments/{id}", auth: .bearer, tag: "conversations",
                       summary: "Download a file (its conversation's participants and staff; 404 to others)",
                       replies: [Reply(status: 200, description: "the file, as an attachment", schema: ["type": "string", "format": "binary"],
                                       contentType: "application/octet-stream")]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/assign", auth: .bearer, tag: "workflows", summary: "Supervisors, admins: assign a waiting conversation to an agent",
                       body: S.obj(["agent_id": S.integer], required: ["agent_id"]),
                       replies: [Reply(status: 200, description: "the conversation", schema: S.ref("Conversation"))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/close", auth: .bearer, tag: "workflows", summary: "Close it (as CLOSE_CONVERSATION)",
                       body: S.obj(["resolution": S.nullable(S.string)]), bodyOptional: true,
                       replies: [Reply(status: 200, description: "the conversation", schema: S.ref("Conversation"))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/transfer", auth: .bearer, tag: "workflows", summary: "To an agent with room, or back to a queue",
                       body: S.obj(["agent_id": S.nullable(S.integer), "category_id": S.nullable(S.integer), "note": S.nullable(S.string)]),
                       replies: [Reply(status: 200, description: "the conversation", schema: S.ref("Conversation"))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/escalate", auth: .bearer, tag: "workflows", summary: "Its agent flags it for the supervisors",
                       body: S.obj(["note": S.nullable(S.string)]), bodyOptional: true,
                       replies: [Reply(status: 200, description: "the conversation", schema: S.ref("Conversation"))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/reopen", auth: .bearer, tag: "workflows", summary: "A closed conversation still in Redis back to its queue",
                       replies: [Reply(status: 200, description: "queued again", schema: S.obj(
                           ["conversation_id": S.string, "position": S.integer, "status": S.string], required: ["conversation_id", "status"]))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/rating", auth: .bearer, tag: "conversations", summary: "The customer rates its closed conversation (1-5)",
                       body: S.obj(["rating": S.range(1, 5), "comment": S.nullable(S.string)], required: ["rating"]),
                       replies: [Reply(status: 200, description: "the rating", schema: S.obj(
                           ["conversation_id": S.string, "rating": S.integer, "comment": S.nullable(S.string)], required: ["conversation_id", "rating"]))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/takeover", auth: .bearer, tag: "workflows", summary: "Supervisors, admins: become its assignee (as TAKE_OVER)",
                       replies: [Reply(status: 200, description: "the conversation", schema: S.ref("Conversation"))]))
        r.append(Route(method: "POST", path: v1 + "/conversations/{id}/cancel", auth: .bearer, tag: "workflows", summary: "The customer of a waiting chat leaves the queue (as CANCEL)",
                       replies: [Reply(status: 200, description: "the conversation, abandoned", schema: S.ref("Conversation"))]))
        r.append(Route(method: "GET", path: v1 + "/agents/available", auth: .bearer, tag: "workflows", summary: "Whom a chat can be transferred to",
                       replies: [Reply(status: 200, description: "agents with room", schema: S.array(S.ref("TransferTarget")))]))
        // queue and presence
        r.append(Route(method: "GET", path: v1 + "/queue", auth: .bearer, tag: "queue", summary: "Waiting conversations (an agent: those it may pick)",
                       query: [Query(name: "category_id", schema: S.integer, description: "only this category's")],
                       replies: [Reply(status: 200, description: "waiting conversations, in queue order", schema: S.array(S.ref("Conversation")))]))
        r.append(Route(method: "POST", path: v1 + "/queue/pick", auth: .bearer, tag: "queue", summary: "Agents: take that conversation, or the fairest waiting (as PICK)",
                       body: S.obj(["conversation_id": S.nullable(S.string)]), bodyOptional: true,
                       replies: [Reply(status: 200, description: "the conversation", schema: S.ref("Conversation"))]))
        r.append(Route(method: "GET", path: v1 + "/presence", auth: .bearer, tag: "queue", summary: "Supervisors (their team), admins: agents' presence and load",
                       replies: [Reply(status: 200, description: "agents", schema: S.array(S.ref("Presence")))]))
        r.append(Route(method: "PUT", path: v1 + "/presence/me", auth: .bearer, tag: "queue", summary: "Agents: online or away (as SET_STATUS)",
                       body: S.obj(["status": S.enumeration(["online", "away"])], required: ["status"]),
                       replies: [Reply(status: 200, description: "the status", schema: S.obj(["status": S.string], required: ["status"]))]))
        // analytics
        let window = [Query(name: "from", schema: S.string, description: "ISO 8601 date or time (default: 30 days before `to`)"),
                      Query(name: "to", schema: S.string, description: "ISO 8601 date or time (default: now)")]
        r.append(Route(method: "GET", path: v1 + "/analytics/summary", auth: .bearer, tag: "analytics", summary: "Supervisors, admins: counts and averages over a window",
                       query: window, replies: [Reply(status: 200, description: "the summary", schema: S.ref("AnalyticsSummary"))]))
        r.append(Route(method: "GET", path: v1 + "/analytics/team", auth: .bearer, tag: "analytics", summary: "A supervisor's team: per-agent figures and SLA",
                       query: window + [Query(name: "supervisor_id", schema: S.integer, description: "admins: that supervisor's team")],
                       replies: [Reply(status: 200, description: "the team's figures", schema: S.ref("TeamAnalytics"))]))
        r.append(Route(method: "GET", path: v1 + "/analytics/supervisors", auth: .bearer, tag: "analytics", summary: "Admins: every supervisor's team in one table",
                       query: window, replies: [Reply(status: 200, description: "per supervisor", schema: S.array(S.ref("SupervisorFigures")))]))
        r.append(Route(method: "GET", path: v1 + "/analytics/conversations.csv", auth: .bearer, tag: "analytics", summary: "CSV export of the conversations of a window",
                       query: window + [Query(name: "supervisor_id", schema: S.integer, description: "admins: that supervisor's team")],
                       replies: [Reply(status: 200, description: "CSV", schema: S.string, contentType: "text/csv")]))
        return r
    }

    // MARK: the document

    static func operationID(_ route: Route) -> String {
        var words: [String] = [route.method.lowercased()]
        for part in route.path.split(separator: "/") where part != "api" && part != "v1" {
            let clean = part.replacingOccurrences(of: "{", with: "by_").replacingOccurrences(of: "}", with: "")
                .replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_")
            words.append(clean)
        }
        return words.joined(separator: "_")
    }

    static func operation(_ route: Route) -> [String: Any] {
        var op: [String: Any] = ["summary": route.summary, "operationId": operationID(route), "tags": [route.tag]]
        var parameters: [[String: Any]] = []
        for name in pathParameters(route.path) {
            let schema: [String: Any] = name == "id" && route.path.contains("/conversations/") ? APISchemas.conversationID : APISchemas.integer
            parameters.append(["name": name, "in": "path", "required": true, "schema": schema, "description": "the id"])
        }
        for q in route.query {
            parameters.append(["name": q.name, "in": "query", "required": false, "schema": q.schema, "description": q.description])
        }
        if !parameters.isEmpty { op["parameters"] = parameters }
        if let body = route.body {
            op["requestBody"] = ["required": !route.bodyOptional, "content": ["application/json": ["schema": body]]]
        }
        var responses: [String: Any] = [:]
        for reply in route.replies {
            var response: [String: Any] = ["description": reply.description]
            if let schema = reply.schema { response["content"] = [reply.contentType: ["schema": schema]] }
            responses[String(reply.status)] = response
        }
        // Every other answer is the error object (400, 401, 403, 404, 409, 429, 503, ...).
        responses["default"] = ["$ref": "#/components/responses/Error"]
        op["responses"] = responses
        switch route.auth {
        case .none: op["security"] = [[String: Any]]()
        case .optionalBearer: op["security"] = [[:], ["bearerAuth": [String]()]]
        case .bearer: op["security"] = [["bearerAuth": [String]()]]
        case .metricsToken: op["security"] = [["metricsToken": [String]()]]
        case .socket: op["security"] = [["wsTicket": [String]()], ["bearerAuth": [String]()]]
        }
        return op
    }

    static func pathParameters(_ path: String) -> [String] {
        path.split(separator: "/").compactMap { part in
            part.hasPrefix("{") && part.hasSuffix("}") ? String(part.dropFirst().dropLast()) : nil
        }
    }

    /// The whole document as a JSON object.
    static func document() -> [String: Any] {
        var paths: [String: [String: Any]] = [:]
        for route in routes {
            paths[route.path, default: [:]][route.method.lowercased()] = operation(route)
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "HelpDesk API",
                "version": "1",
                "description": "Real-time customer support. REST under /api/v1; the WebSocket protocol is /asyncapi.json; "
                    + "docs/protocol.md describes both in prose. Every error is {\"error\": {\"code\", \"message\", \"request_id\"}}. "
                    + "Times in conversations and messages are milliseconds since the epoch.",
            ],
            "servers": [["url": "/"]],
            "tags": Array(Set(routes.map(\.tag))).sorted().map { ["name": $0] },
            "paths": paths,
            "components": [
                "schemas": APISchemas.components,
                "responses": [
                    "Error": ["description": "an error", "content": ["application/json": ["schema": APISchemas.ref("Error")]]],
                ],
                "securitySchemes": [
                    "bearerAuth": ["type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                   "description": "a staff access token (POST /api/v1/auth/login) or a customer token (POST /api/v1/conversations)"],
                    "metricsToken": ["type": "http", "scheme": "bearer", "description": "HELPDESK_METRICS_TOKEN"],
                    "wsTicket": ["type": "apiKey", "in": "query", "name": "ticket", "description": "POST /api/v1/ws-tickets, single use, 30 s"],
                ],
            ],
        ]
    }

    /// The document as served (sorted keys, so it is the same on every node).
    static let json: Data = encode(document())

    static func encode(_ object: [String: Any]) -> Data {
        // The document is built from literals above: it always serialises.
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }
}

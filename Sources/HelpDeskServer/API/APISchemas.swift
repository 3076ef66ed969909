import Foundation

/// JSON Schemas of the API's objects, shared by `/openapi.json` and `/asyncapi.json`. They follow
/// the Swift types that encode the replies (`ConversationView`, `MessageView`, `UserRecord`,
/// `CategoriesController.Category`, ...; JSON keys are their snake_case names). Optional fields
/// may be absent or null; only what every reply carries is `required`.
enum APISchemas {
    static var string: [String: Any] { ["type": "string"] }
    static var integer: [String: Any] { ["type": "integer"] }
    static var number: [String: Any] { ["type": "number"] }
    static var boolean: [String: Any] { ["type": "boolean"] }
    static var object: [String: Any] { ["type": "object"] }
    /// Milliseconds since the epoch.
    static var ms: [String: Any] { ["type": "integer", "format": "int64", "description": "milliseconds since the epoch"] }
    static var conversationID: [String: Any] { ["type": "string", "format": "uuid"] }

    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }
    static func array(_ items: [String: Any]) -> [String: Any] { ["type": "array", "items": items] }
    static func nullable(_ schema: [String: Any]) -> [String: Any] { ["anyOf": [schema, ["type": "null"]]] }
    static func enumeration(_ values: [String]) -> [String: Any] { ["type": "string", "enum": values] }
    static func range(_ low: Int, _ high: Int) -> [String: Any] { ["type": "integer", "minimum": low, "maximum": high] }
    static func obj(_ properties: [String: Any], required: [String] = [], description: String? = nil) -> [String: Any] {
        var schema: [String: Any] = ["type": "object", "properties": properties]
        if !required.isEmpty { schema["required"] = required }
        if let description { schema["description"] = description }
        return schema
    }

    static var roles: [String] { ["admin", "supervisor", "agent"] }

    /// `components.schemas` of both documents.
    static var components: [String: Any] {
        var c: [String: Any] = [:]
        c["Error"] = obj(["error": obj(["code": string, "message": string, "request_id": string], required: ["code", "message", "request_id"])],
                     required: ["error"], description: "every error reply; `code` is one of docs/protocol.md's error codes")
        c["Health"] = obj(["status": string, "node_id": string], required: ["status", "node_id"])
        c["Readiness"] = obj(["status": string, "node_id": string, "redis": string, "postgres": string], required: ["status", "node_id"])
        c["Person"] = obj(["id": string, "name": string, "email": nullable(string)], required: ["id", "name"],
                      description: "`email` only in REST replies to staff")
        c["Actor"] = obj(["id": string, "role": string, "name": nullable(string)], required: ["id", "role"])
        c["Conversation"] = obj([
            "id": conversationID,
            "status": enumeration(["waiting", "active", "closed", "abandoned"]),
            "customer": ref("Person"),
            "agent": nullable(ref("Person")),
            "category_id": string,
            "subject": string,
            "priority": enumeration(["low", "normal", "high", "urgent"]),
            "created_at": ms, "enqueued_at": ms,
            "assigned_at": nullable(ms), "first_response_at": nullable(ms), "closed_at": nullable(ms),
            "resolution": nullable(string),
            "escalated": nullable(boolean), "escalation_note": nullable(string), "escalated_at": nullable(ms),
            "rating": nullable(integer), "rating_comment": nullable(string), "wait_seconds": nullable(integer),
        ], required: ["id", "status", "customer", "category_id", "subject", "priority", "created_at", "enqueued_at"])
        c["Message"] = obj([
            "id": ["type": "string", "description": "a Redis stream id, `<ms>-<seq>`"],
            "sender": obj(["id": string, "role": string, "name": string], required: ["id", "role", "name"]),
            "text": string, "sent_at": ms, "client_msg_id": string, "internal": boolean,
            "attachments": array(ref("Attachment")),
        ], required: ["id", "sender", "text", "sent_at", "client_msg_id", "internal"])
        c["Attachment"] = obj(["id": ["type": "string", "format": "uuid"], "name": string, "size": integer, "content_type": string],
                              required: ["id", "name", "size", "content_type"])
        c["CustomerSession"] = obj([
            "access_token": string, "expires_in": integer,
            "user": obj(["id": string, "role": ["const": "customer"], "name": string, "email": string], required: ["id", "role", "name", "email"]),
        ], required: ["access_token", "expires_in", "user"])
        c["CustomerConversations"] = obj(["conversations": array(ref("Conversation")), "next_before": nullable(ms)],
                                         required: ["conversations"])
        c["MessagePage"] = obj(["conversation_id": string, "messages": array(ref("Message")), "has_more": boolean, "next_after": string],
                           required: ["conversation_id", "messages", "has_more"])
        c["MessageSend"] = obj(["text": ["type": "string", "maxLength": 4000], "client_msg_id": string, "internal": nullable(boolean),
                                "attachment_ids": nullable(array(["type": "string", "format": "uuid"]))],
                           required: ["text", "client_msg_id"])
        c["MessageSent"] = obj(["conversation_id": string, "message_id": string, "client_msg_id": string, "duplicate": boolean],
                           required: ["conversation_id", "message_id", "client_msg_id", "duplicate"])
        c["ConversationStart"] = obj(["name": string, "email": ["type": "string", "format": "email"], "category_id": nullable(integer),
                                  "subject": nullable(string), "priority": nullable(enumeration(["low", "normal", "high", "urgent"]))],
                                 required: ["name", "email"])
        c["ConversationStarted"] = obj(["conversation_id": string, "customer_token": string, "position": integer, "status": string],
                                   required: ["conversation_id", "customer_token", "position", "status"])
        c["User"] = obj([
            "id": integer, "email": string, "name": string, "role": enumeration(roles),
            "supervisor_id": nullable(integer), "capacity": integer, "active": boolean,
            "category_ids": array(integer), "created_at": ["type": "string", "format": "date-time"],
        ], required: ["id", "email", "name", "role", "capacity", "active", "category_ids", "created_at"], description: "a staff account")
        c["UserCreate"] = obj(["email": string, "name": string, "password": string, "role": enumeration(roles),
                           "supervisor_id": nullable(integer), "capacity": nullable(range(1, 50)), "category_ids": nullable(array(integer))],
                          required: ["email", "name", "password", "role"])
        c["UserUpdate"] = obj(["email": nullable(string), "name": nullable(string), "password": nullable(string), "role": nullable(enumeration(roles)),
                           "supervisor_id": nullable(integer), "capacity": nullable(range(1, 50)), "active": nullable(boolean),
                           "category_ids": nullable(array(integer))])
        c["CustomerMe"] = obj(["id": string, "role": enumeration(["customer"]), "name": string, "conversation_id": string],
                          required: ["id", "role", "name"])
        c["SessionTokens"] = obj(["access_token": string, "refresh_token": string, "expires_in": integer, "user": ref("User")],
                             required: ["access_token", "refresh_token", "expires_in", "user"])
        c["Category"] = obj(["id": integer, "name": string, "parent_id": nullable(integer), "active": boolean,
                         "routing": enumeration(["pick", "offer"]), "wrap_up_s": integer],
                        required: ["id", "name", "active", "routing", "wrap_up_s"])
        c["CategoryCreate"] = obj(["name": string, "parent_id": nullable(integer), "routing": nullable(enumeration(["pick", "offer"])),
                               "wrap_up_s": nullable(range(0, 3600))], required: ["name"])
        c["CategoryUpdate"] = obj(["name": nullable(string), "active": nullable(boolean), "routing": nullable(enumeration(["pick", "offer"])),
                               "wrap_up_s": nullable(range(0, 3600))])
        c["Presence"] = obj(["agent_id": string, "name": string, "status": string, "active": integer, "capacity": integer, "node_id": string,
                         "connected": boolean, "since": ms, "last_seen": ms, "offers": integer, "wrap_up_until": nullable(ms)],
                        required: ["agent_id", "name", "status", "active", "capacity", "connected", "offers"])
        c["TransferTarget"] = obj(["id": string, "name": string, "status": string, "active": integer, "capacity": integer],
                              required: ["id", "name", "status", "active", "capacity"])
        c["AnalyticsSummary"] = obj(["from": string, "to": string, "by_status": array(object), "by_category": array(object),
                                 "by_priority": array(object), "per_day": array(object),
                                 "average_wait_s": nullable(number), "average_first_response_s": nullable(number),
                                 "average_handle_s": nullable(number), "abandonment_rate": nullable(number),
                                 "average_rating": nullable(number), "ratings": integer],
                                required: ["from", "to", "by_status", "by_category", "by_priority", "per_day", "ratings"])
        let figures: [String: Any] = ["handled": integer, "closed": integer, "average_first_response_s": nullable(number),
                                      "average_handle_s": nullable(number), "csat": nullable(number), "ratings": integer,
                                      "sla_met": integer, "sla_total": integer, "sla_share": nullable(number)]
        let figureKeys = ["handled", "closed", "ratings", "sla_met", "sla_total"]
        c["Figures"] = obj(figures, required: figureKeys, description: "handled, closed, first response and handle time (s), CSAT, SLA met")
        c["Count"] = obj(["key": string, "count": integer], required: ["key", "count"])
        c["DayCounts"] = obj(["day": string, "created": integer, "closed": integer, "abandoned": integer], required: ["day", "created", "closed", "abandoned"])
        c["TeamAnalytics"] = obj([
            "from": string, "to": string, "supervisor": nullable(obj(["id": string, "name": string], required: ["id", "name"])),
            "agents": array(obj(figures.merging(["agent_id": string, "name": string, "active": boolean]) { $1 },
                                required: ["agent_id", "name", "active"] + figureKeys)),
            "totals": ref("Figures"),
            "sla": array(obj(["priority": string, "target_s": integer, "met": integer, "total": integer, "share": nullable(number)],
                             required: ["priority", "target_s", "met", "total"])),
            "per_day": array(ref("DayCounts")), "by_status": array(ref("Count")), "by_category": array(ref("Count")),
        ], required: ["from", "to", "agents", "totals", "sla", "per_day", "by_status", "by_category"])
        c["SupervisorFigures"] = obj(figures.merging(["supervisor_id": string, "name": string, "agents": integer]) { $1 },
                                     required: ["supervisor_id", "name", "agents"] + figureKeys)
        return c
    }
}

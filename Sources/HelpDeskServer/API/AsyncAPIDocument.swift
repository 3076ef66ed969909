import Foundation
import HelpDeskProtocol

/// `GET /asyncapi.json`: the WebSocket protocol as AsyncAPI 3.0, generated from the event names
/// themselves (`ClientEventName.allCases`, `ServerEventName.allCases`): the payload tables below are
/// exhaustive switches, so a new event does not compile until it has a schema. The document
/// describes the server: it receives client events and sends server events on `/ws`.
enum AsyncAPIDocument {
    typealias S = APISchemas

    static var conversationOnly: [String: Any] { S.obj(["conversation_id": S.conversationID], required: ["conversation_id"]) }
    static var callIDs: [String: Any] { S.obj(["conversation_id": S.conversationID, "call_id": S.string], required: ["conversation_id", "call_id"]) }
    static var rtcSignal: [String: Any] {
        S.obj(["type": S.enumeration(["offer", "answer", "ice-candidate"]), "sdp": S.nullable(S.string), "candidate": S.nullable(S.object)], required: ["type"])
    }

    /// `data` of each client event.
    static func data(_ event: ClientEventName) -> (summary: String, schema: [String: Any]) {
        switch event {
        case .ping: ("answered by PONG", S.obj([:]))
        case .joinConversation: ("follow a conversation; HISTORY brings the messages after `last_message_id`",
                                 S.obj(["conversation_id": S.conversationID, "last_message_id": S.nullable(S.string)], required: ["conversation_id"]))
        case .leaveConversation: ("stop following a conversation", conversationOnly)
        case .sendMessage: ("send a message (`internal`: staff only; `attachment_ids`: the sender's unsent uploads; `echo: false`: the ACK carries "
                            + "the stored `message` and this socket does not get it again as NEW_MESSAGE)",
                            S.obj(["conversation_id": S.conversationID, "text": ["type": "string", "maxLength": 4000], "client_msg_id": S.string,
                                   "internal": S.nullable(S.boolean), "attachment_ids": S.nullable(["type": "array", "items": S.string, "maxItems": 5]),
                                   "echo": S.nullable(S.boolean)], required: ["conversation_id", "text", "client_msg_id"]))
        case .typing: ("the caller is typing, or stopped", S.obj(["conversation_id": S.conversationID, "typing": S.boolean], required: ["conversation_id", "typing"]))
        case .pick: ("agents: that conversation, or the fairest waiting", S.obj(["conversation_id": S.nullable(S.conversationID)]))
        case .closeConversation: ("close a conversation", S.obj(["conversation_id": S.conversationID, "resolution": S.nullable(S.string)], required: ["conversation_id"]))
        case .setStatus: ("agents: online or away", S.obj(["status": S.enumeration(["online", "away"])], required: ["status"]))
        case .takeOver: ("supervisors, admins: become the assignee", conversationOnly)
        case .cancel: ("the customer of a waiting conversation leaves the queue", conversationOnly)
        case .callInvite: ("ring the other side", S.obj(["conversation_id": S.conversationID, "call_id": S.string,
                                                        "media": S.nullable(S.enumeration(["audio", "video"]))], required: ["conversation_id", "call_id"]))
        case .callAccept: ("answer a call", callIDs)
        case .callReject: ("turn a call down", callIDs)
        case .callEnd: ("hang up", callIDs)
        case .rtcSignal: ("WebRTC signalling for a call", S.obj(["conversation_id": S.conversationID, "call_id": S.string, "signal": rtcSignal],
                                                                 required: ["conversation_id", "call_id", "signal"]))
        case .acceptOffer: ("the agent takes the conversation offered to it", conversationOnly)
        case .declineOffer: ("the agent turns the offer down", conversationOnly)
        case .endWrapUp: ("the agent is ready before its wrap-up is over", S.obj([:]))
        }
    }

    /// `data` of each server event.
    static func data(_ event: ServerEventName) -> (summary: String, schema: [String: Any]) {
        let person = S.ref("Person"), actor = S.ref("Actor"), conversation = S.ref("Conversation")
        return switch event {
        case .hello: ("on connect", S.obj(["node_id": S.string, "user": S.obj(["id": S.string, "role": S.string, "name": S.string, "status": S.nullable(S.string)],
                                                                             required: ["id", "role", "name"]), "server_time": S.ms],
                                          required: ["node_id", "user", "server_time"]))
        case .ack: ("answers a client event that had a `ref` (its data depends on the event)", S.object)
        case .error: ("a client event was refused (with its `ref`, if any)", S.obj(["code": S.string, "message": S.string], required: ["code", "message"]))
        case .pong: ("answers PING", S.obj([:]))
        case .resync: ("this node lost its pub/sub connection: JOIN again with the last message id", S.obj([:]))
        case .history: ("after a JOIN: messages after `last_message_id`, paged", S.obj(
            ["conversation_id": S.conversationID, "messages": S.array(S.ref("Message")), "has_more": S.nullable(S.boolean),
             "next_after": S.nullable(S.string)], required: ["conversation_id", "messages"]))
        case .newMessage: ("a message in a joined conversation", S.obj(["conversation_id": S.conversationID, "message": S.ref("Message")],
                                                                      required: ["conversation_id", "message"]))
        case .typing: ("someone in the conversation is typing, or stopped", S.obj(
            ["conversation_id": S.conversationID, "user_id": S.string, "role": S.nullable(S.string), "typing": S.boolean], required: ["conversation_id", "user_id", "typing"]))
        case .queueStatus: ("a waiting customer's place changed", S.obj(
            ["conversation_id": S.conversationID, "position": S.integer, "estimated_wait_s": S.integer], required: ["conversation_id", "position", "estimated_wait_s"]))
        case .queueUpdated: ("a conversation entered or left a queue the socket watches", S.obj(
            ["op": S.enumeration(["added", "removed"]), "conversation": conversation], required: ["op", "conversation"]))
        case .queueChanges: ("sockets opened with `?queue_changes=batched`: every QUEUE_UPDATED of one batch window (50 ms), in order, in one frame", S.obj(
            ["changes": S.array(S.obj(["op": S.enumeration(["added", "removed"]), "conversation": conversation], required: ["op", "conversation"]))],
            required: ["changes"]))
        case .conversationAssigned: ("an agent has the conversation", S.obj(
            ["conversation": conversation, "agent": person, "transferred_from": S.nullable(S.string), "note": S.nullable(S.string)], required: ["conversation", "agent"]))
        case .conversationClosed: ("the conversation ended", S.obj(
            ["conversation_id": S.conversationID, "closed_by": S.nullable(actor), "resolution": S.nullable(S.string), "closed_at": S.ms],
            required: ["conversation_id", "closed_at"]))
        case .conversationRequeued: ("back in its queue (its agent went offline, ...)", S.obj(
            ["conversation_id": S.conversationID, "reason": S.string], required: ["conversation_id", "reason"]))
        case .conversationTransferred: ("to another agent or queue; `taken_over`: a supervisor or admin took it", S.obj(
            ["conversation_id": S.conversationID, "from_agent_id": S.string, "agent": S.nullable(person), "category_id": S.nullable(S.string),
             "note": S.nullable(S.string), "taken_over": S.nullable(S.boolean), "at": S.nullable(S.ms)], required: ["conversation_id", "from_agent_id"]))
        case .conversationReopened: ("a closed conversation is back in its queue", S.obj(
            ["conversation_id": S.conversationID, "by": actor], required: ["conversation_id", "by"]))
        case .conversationEscalated: ("an agent asked its supervisor for help", S.obj(
            ["conversation_id": S.conversationID, "note": S.string, "by": actor, "customer": S.nullable(person), "subject": S.nullable(S.string),
             "conversation": S.nullable(conversation)], required: ["conversation_id", "note", "by"]))
        case .presenceUpdated: ("an agent's presence or load changed", S.ref("Presence"))
        case .callInvite: ("the other side rings", callFrom(media: true))
        case .callAccept: ("the other side answered", callFrom(media: false))
        case .callReject: ("the other side turned the call down", callFrom(media: false))
        case .callEnd: ("the call ended", S.obj(
            ["conversation_id": S.conversationID, "call_id": S.string, "from": S.nullable(actor), "reason": S.nullable(S.string), "duration_s": S.nullable(S.integer)],
            required: ["conversation_id", "call_id"]))
        case .rtcSignal: ("WebRTC signalling from the other side", S.obj(
            ["conversation_id": S.conversationID, "call_id": S.string, "signal": rtcSignal, "from": S.nullable(actor)], required: ["conversation_id", "call_id", "signal"]))
        case .conversationOffered: ("a customer is offered to this agent until `expires_at`", S.obj(
            ["conversation": conversation, "expires_at": S.ms], required: ["conversation", "expires_at"]))
        case .offerRevoked: ("an offer ended unanswered", S.obj(
            ["conversation_id": S.conversationID, "reason": S.enumeration(["declined", "expired", "closed"]), "status": S.nullable(S.string)],
            required: ["conversation_id", "reason"]))
        case .wrapUpStarted: ("no offers until `wrap_up_until`", S.obj(
            ["conversation_id": S.nullable(S.conversationID), "wrap_up_until": S.ms], required: ["wrap_up_until"]))
        case .wrapUpEnded: ("wrap-up is over", S.obj(["reason": S.enumeration(["ready", "elapsed"])], required: ["reason"]))
        case .categoriesUpdated: ("staff: these categories' routing, wrap-up or parents changed", S.obj(
            ["category_ids": S.array(S.string)], required: ["category_ids"]))
        case .profileUpdated: ("to the agent: an admin changed its capacity or categories; its queue changes follow the new ones", S.obj(
            ["capacity": S.integer, "category_ids": S.array(S.string)], required: ["capacity", "category_ids"]))
        case .sessionEnded: ("to a staff user, before its sockets close (1008): the account was deactivated or its role changed", S.obj(
            ["reason": S.enumeration(["deactivated", "role_changed"])], required: ["reason"]))
        }
    }

    static func callFrom(media: Bool) -> [String: Any] {
        var properties: [String: Any] = ["conversation_id": S.conversationID, "call_id": S.string, "from": S.nullable(S.ref("Actor"))]
        if media { properties["media"] = S.nullable(S.enumeration(["audio", "video"])) }
        return S.obj(properties, required: ["conversation_id", "call_id"])
    }

    /// `{"event": NAME, "data": {...}, "ref": "..."}`.
    static func frame(_ name: String, data: [String: Any]) -> [String: Any] {
        S.obj(["event": ["type": "string", "const": name], "data": data, "ref": S.nullable(S.string)], required: ["event"])
    }

    static func messageID(client name: String) -> String { "client_" + name }
    static func messageID(server name: String) -> String { "server_" + name }

    /// The whole document as a JSON object.
    static func document() -> [String: Any] {
        var messages: [String: Any] = [:]
        var channelMessages: [String: Any] = [:]
        var operations: [String: Any] = [:]
        func add(id: String, name: String, summary: String, schema: [String: Any], action: String) {
            messages[id] = ["name": name, "title": name, "summary": summary, "contentType": "application/json", "payload": frame(name, data: schema)]
            channelMessages[id] = ["$ref": "#/components/messages/\(id)"]
            operations[(action == "receive" ? "receive_" : "send_") + name] = [
                "action": action, "channel": ["$ref": "#/channels/socket"], "summary": summary,
                "messages": [["$ref": "#/channels/socket/messages/\(id)"]],
            ]
        }
        for event in ClientEventName.allCases {
            let (summary, schema) = data(event)
            add(id: messageID(client: event.rawValue), name: event.rawValue, summary: summary, schema: schema, action: "receive")
        }
        for event in ServerEventName.allCases {
            let (summary, schema) = data(event)
            add(id: messageID(server: event.rawValue), name: event.rawValue, summary: summary, schema: schema, action: "send")
        }
        return [
            "asyncapi": "3.0.0",
            "info": [
                "title": "HelpDesk WebSocket",
                "version": "1",
                "description": "One JSON object per text frame: {\"event\", \"data\", \"ref\"}. A client event with a `ref` is answered by ACK or ERROR "
                    + "with that `ref`. Limits, close codes and who may send what: docs/protocol.md. REST: /openapi.json.",
            ],
            "defaultContentType": "application/json",
            "channels": [
                "socket": [
                    "address": "/ws",
                    "title": "The WebSocket of a node",
                    "description": "GET /ws?ticket=<POST /api/v1/ws-tickets> (or Authorization: Bearer), upgraded to a WebSocket",
                    "messages": channelMessages,
                ],
            ],
            "operations": operations,
            "components": ["messages": messages, "schemas": APISchemas.components],
        ]
    }

    static let json: Data = APIDocument.encode(document())
}

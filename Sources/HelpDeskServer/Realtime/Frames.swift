import Foundation
import HelpDeskCore

/// Typing indicators: published by the node itself (no script stores them).
struct TypingData: Encodable {
    var conversationId: String
    var userId: String
    var role: String
    var typing: Bool
}

/// The reply to a stored message (REST `POST /conversations/{id}/messages`).
struct SendAck: Encodable {
    var conversationId: String
    var messageId: String
    var clientMsgId: String
    var duplicate: Bool
}

extension ServerFrame {
    /// `{"event": name, "data": data, "ref": ref}` through the API's JSON coder: for frames off the
    /// hot path (HELLO) whose data are Codable views.
    static func encode<T: Encodable>(_ event: String, _ data: T, ref: String? = nil) -> String {
        do {
            return String(decoding: try JSON.encoder.encode(Envelope(event: event, data: data, ref: ref)), as: UTF8.self)
        } catch {
            return #"{"event":"ERROR","data":{"code":"internal_error","message":"could not encode a reply"}}"#
        }
    }
}

private struct Envelope<T: Encodable>: Encodable {
    var event: String
    var data: T
    var ref: String?
}

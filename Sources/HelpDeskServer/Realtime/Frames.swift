import Foundation
import HelpDeskCore

/// The envelope of every client frame: `{"event": "NAME", "data": {...}, "ref": "..."}`.
struct ClientEnvelope: Decodable {
    var event: String
    var ref: String?
}

/// The same envelope with its `data` decoded as the event's type.
struct ClientFrame<Payload: Decodable>: Decodable {
    var data: Payload
}

/// Data of the client events.
enum ClientEvent {
    struct Join: Decodable { var conversationId: String; var lastMessageId: String? }
    struct Leave: Decodable { var conversationId: String }
    struct Send: Decodable {
        var conversationId: String
        var text: String
        var clientMsgId: String
        var isInternal: Bool?
        enum CodingKeys: String, CodingKey { case conversationId, text, clientMsgId, isInternal = "internal" }
    }
    struct Typing: Decodable { var conversationId: String; var typing: Bool }
    struct Pick: Decodable { var conversationId: String? }
    struct Close: Decodable { var conversationId: String; var resolution: String? }
    struct SetStatus: Decodable { var status: String }
}

struct TypingData: Encodable {
    var conversationId: String
    var userId: String
    var role: String
    var typing: Bool
}

/// Server frames, encoded once and written as they are to every recipient.
enum ServerFrame {
    private struct Envelope<T: Encodable>: Encodable {
        var event: String
        var data: T
        var ref: String?
    }

    /// `{"event": name, "data": data, "ref": ref}` as JSON text.
    static func encode<T: Encodable>(_ event: String, _ data: T, ref: String? = nil) -> String {
        do {
            return String(decoding: try JSON.encoder.encode(Envelope(event: event, data: data, ref: ref)), as: UTF8.self)
        } catch {
            return #"{"event":"ERROR","data":{"code":"internal_error","message":"could not encode a reply"}}"#
        }
    }

    static func error(_ error: HelpDeskError, ref: String?) -> String {
        encode("ERROR", ["code": error.code.rawValue, "message": error.message], ref: ref)
    }

    /// An ACK carrying raw JSON data built elsewhere (e.g. by a Lua script).
    static func ack<T: Encodable>(ref: String?, _ data: T) -> String {
        encode("ACK", data, ref: ref)
    }
}

/// Turns decoding failures of a frame into the `ERROR` a client sees.
func decodeFrame<T: Decodable>(_ type: T.Type, from bytes: Data) throws -> T {
    do {
        return try JSON.decoder.decode(ClientFrame<T>.self, from: bytes).data
    } catch let error as DecodingError {
        throw HelpDeskError(error.helpDeskCode, error.readableMessage)
    }
}

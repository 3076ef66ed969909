import Foundation
import HelpDeskCore
import Hummingbird

/// Call signaling: lua/call_*.lua keep the invariants (one call per conversation, only its
/// customer and its agent, only while active); this shapes arguments and replies.
extension LiveStore {
    /// Runs one call operation (`invite`, `accept`, `reject`, `end`, `signal`: lua/call_<op>.lua)
    /// for `caller` in `conversationID`. `extra`: media and timeout ms (invite), the signal JSON (signal).
    func call(_ op: String, conversationID: String, callID: String, caller: Caller, extra: [String] = []) async throws {
        let id = conversationID
        let callKeys = op == "signal"
            ? [keys.conversation(id), keys.call(id), keys.conversationChannel(id)]
            : [keys.conversation(id), keys.call(id), keys.ringingCalls, keys.events(id), keys.conversationChannel(id)]
        let reply = try await scripts.run("call_" + op, keys: callKeys, arguments: [
            nowOverride, id, callID, caller.id, caller.role.rawValue, caller.name,
        ] + extra, on: redis)
        let r = reply.array ?? []
        guard r.first?.string == "ok" else {
            let code = r.count > 1 ? r[1].string : nil
            if code == "busy" { throw HelpDeskError(.busy, "a call is already ringing or running in this conversation") }
            if code == "not_found" { throw HelpDeskError(.notFound, "no such call") }
            if code == "validation_failed" { throw HelpDeskError(.validationFailed, "signal must be a JSON object") }
            throw Self.scriptError(code)
        }
    }

    /// Ends ringing calls nobody answered in time (both sides get CALL_END missed). Candidates are
    /// the calls:ringing entries due by Redis's clock; call_expire.lua decides each.
    @discardableResult
    func expireCalls() async throws -> Int {
        let read = try await redis.pipeline([["TIME"], ["ZRANGE", keys.ringingCalls, "0", "99", "WITHSCORES"]])
        var ended = 0
        for id in Self.dueMembers(read[1], atMost: redisNow(read[0])) {
            let reply = try await scripts.run("call_expire", keys: [keys.ringingCalls, keys.call(id), keys.events(id), keys.conversationChannel(id)],
                                              arguments: [nowOverride, id], on: redis)
            ended += reply.int ?? 0
        }
        return ended
    }
}

/// Client events of calls.
enum CallEvent {
    struct Invite: Decodable { var conversationId: String; var callId: String; var media: String? }
    struct Step: Decodable { var conversationId: String; var callId: String }
    struct Signal: Decodable { var conversationId: String; var callId: String; var signal: SignalBody }
    struct SignalBody: Codable {
        var type: String
        var sdp: String?
        var candidate: JSONCandidate?
    }
    /// An ICE candidate as the browser's RTCIceCandidate.toJSON() gives it.
    struct JSONCandidate: Codable {
        var candidate: String?
        var sdpMid: String?
        var sdpMLineIndex: Int?
        var usernameFragment: String?
    }
}

extension FrameHandler {
    /// CALL_INVITE, CALL_ACCEPT, CALL_REJECT, CALL_END, RTC_SIGNAL; nil for other events.
    func handleCall(_ event: String, _ bytes: Data, callTimeout: Int) async throws -> [String: String]? {
        switch event {
        case "CALL_INVITE":
            let data = try decodeFrame(CallEvent.Invite.self, from: bytes)
            let media = data.media ?? "audio"
            guard media == "audio" || media == "video" else { throw HelpDeskError(.validationFailed, "media must be audio or video") }
            let (conversation, call) = try Self.callIDs(data.conversationId, data.callId)
            try await store.call("invite", conversationID: conversation, callID: call, caller: caller, extra: [media, String(callTimeout * 1000)])
            return ["conversation_id": conversation, "call_id": call]
        case "CALL_ACCEPT", "CALL_REJECT", "CALL_END":
            let data = try decodeFrame(CallEvent.Step.self, from: bytes)
            let (conversation, call) = try Self.callIDs(data.conversationId, data.callId)
            let op = ["CALL_ACCEPT": "accept", "CALL_REJECT": "reject", "CALL_END": "end"][event]!
            try await store.call(op, conversationID: conversation, callID: call, caller: caller)
            return ["conversation_id": conversation, "call_id": call]
        case "RTC_SIGNAL":
            let data = try decodeFrame(CallEvent.Signal.self, from: bytes)
            guard ["offer", "answer", "ice-candidate"].contains(data.signal.type) else {
                throw HelpDeskError(.validationFailed, "signal.type must be offer, answer or ice-candidate")
            }
            let (conversation, call) = try Self.callIDs(data.conversationId, data.callId)
            let signal = String(decoding: try JSONEncoder().encode(data.signal), as: UTF8.self)
            try await store.call("signal", conversationID: conversation, callID: call, caller: caller, extra: [signal])
            return ["conversation_id": conversation, "call_id": call]
        default:
            return nil
        }
    }

    static func callIDs(_ conversation: String, _ call: String) throws -> (String, String) {
        let conversation = try conversationID(conversation)
        guard (1...64).contains(call.count), call.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
            throw HelpDeskError(.validationFailed, "call_id must be 1 to 64 letters, digits or dashes")
        }
        return (conversation, call)
    }
}

/// `GET /api/v1/rtc/ice-servers`: STUN servers, and TURN with credentials valid for `turnTTL`.
struct ICEServersController: Sendable {
    let configuration: ServerConfiguration
    let clock: @Sendable () -> Date

    struct ICEServer: Encodable {
        var urls: [String]
        var username: String?
        var credential: String?
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("rtc/ice-servers") { _, context in
            var servers: [ICEServer] = []
            if !configuration.stunURLs.isEmpty { servers.append(ICEServer(urls: configuration.stunURLs)) }
            if !configuration.turnURLs.isEmpty, let secret = configuration.turnSecret {
                let expires = Int(clock().timeIntervalSince1970) + configuration.turnTTL
                let credentials = TurnCredentials(secret: secret, userID: context.caller.id, expiresAt: expires)
                servers.append(ICEServer(urls: configuration.turnURLs, username: credentials.username, credential: credentials.credential))
            }
            return try Response.json(["ice_servers": AnyEncodable(servers), "ttl": AnyEncodable(configuration.turnTTL)])
        }
    }
}

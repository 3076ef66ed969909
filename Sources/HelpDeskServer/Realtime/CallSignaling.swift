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

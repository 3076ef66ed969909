import Foundation
import HelpDeskCore
import NIOConcurrencyHelpers
import RedisClient
import TestSupport
import Testing
@testable import HelpDeskServer

/// Runs the scripts of lua/ directly through a `LiveStore` on the shared test Redis under a
/// private prefix, with a guard in front of every script that fails any command on a key the
/// script was not given in KEYS, and a tap that records every payload published on the prefix's
/// channels.
final class ScriptFixture: Sendable {
    let prefix: String
    let keys: RedisKeys
    let redis: RedisClient
    let store: LiveStore
    let subscriber: RedisSubscriber
    private let runner: Task<Void, any Error>
    private let pump: Task<Void, Never>
    private let received = NIOLockedValueBox<[(channel: String, payload: String)]>([])
    private let marks = NIOLockedValueBox(0)

    /// Lua put before the prelude (once, when the library loads): shadows `redis` with a checking
    /// copy for the prelude and every script. Every command but TIME names a key first
    /// (DEL/EXISTS/UNLINK: only keys); each must be in the call's KEYS (`keyGuardCall` sets them).
    static let keyGuard = """
    -- the global `redis` of a call (a library's functions get a fuller one than its loading code)
    local function real_redis() return redis end
    local declared = {}
    local function check_keys(cmd, ...)
      local name = string.upper(cmd)
      if name == 'TIME' then return end
      local args = {...}
      local n = (name == 'DEL' or name == 'EXISTS' or name == 'UNLINK') and #args or 1
      for i = 1, n do
        if not declared[args[i]] then error('undeclared key ' .. tostring(args[i]) .. ' used by ' .. name) end
      end
    end
    -- a copy with checking call and pcall; a function library has no setmetatable, and no pairs
    -- while it loads, so the first call fills it (keyGuardCall)
    local redis = {register_function = redis.register_function}
    local guarded = false
    local function guard_redis()
      if guarded then return end
      guarded = true
      local real = real_redis()
      for name, value in pairs(real) do redis[name] = value end
      redis.call = function(cmd, ...) check_keys(cmd, ...); return real.call(cmd, ...) end
      redis.pcall = function(cmd, ...) check_keys(cmd, ...); return real.pcall(cmd, ...) end
    end
    """

    /// At the start of every call: the keys this call may touch.
    static let keyGuardCall = """
    guard_redis()
    declared = {}
    for _, k in ipairs(KEYS) do declared[k] = true end
    """

    /// The repository's scripts (prelude included), each behind `keyGuard`.
    static func guardedScripts() throws -> RedisScripts {
        let plain = try RedisScripts(directory: TestEnvironment.repositoryRoot + "/lua")
        return RedisScripts(sources: plain.sources, prelude: keyGuard + "\n" + plain.prelude, callPreamble: keyGuardCall)
    }

    init(clock: @escaping @Sendable () -> Date = { Date() }, scriptClock: (@Sendable () -> Date)? = nil) async throws {
        prefix = TestEnvironment.uniqueKeyPrefix()
        keys = RedisKeys(prefix: prefix)
        let configuration = try RedisConfiguration(url: TestEnvironment.redisURL)
        redis = RedisClient(configuration: configuration, poolSize: 2)
        store = LiveStore(redis: redis, scripts: try Self.guardedScripts(), keys: keys, clock: clock, scriptClock: scriptClock)
        subscriber = RedisSubscriber(configuration: configuration, backoff: .milliseconds(20) ... .milliseconds(200))
        let subscriber = self.subscriber
        runner = Task { try await subscriber.run() }
        let received = self.received
        pump = Task {
            for await event in subscriber.events {
                if case .patternMessage(_, let channel, let payload) = event {
                    received.withLockedValue { $0.append((channel, payload)) }
                }
            }
        }
        let pattern = prefix + "ch:*"
        try await withTimeout(.seconds(5), "subscribing") {
            while true {
                do { return try await subscriber.psubscribe([pattern]) } catch let error as RedisError where error.code == .connectionClosed {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
        }
    }

    /// Every payload published since the last call, in order (a marker published last tells
    /// when all of them have arrived). Channel names are given without the prefix.
    func published() async throws -> [(channel: String, payload: String)] {
        let mark = marks.withLockedValue { $0 += 1; return $0 }
        let marker = "mark-\(mark)"
        try await redis.send("PUBLISH", prefix + "ch:mark", marker)
        try await waitUntil("the marker to come back") { [received] in
            received.withLockedValue { $0.contains { $0.payload == marker } }
        }
        let all = received.withLockedValue { items -> [(channel: String, payload: String)] in
            let index = items.firstIndex { $0.payload == marker }!
            let taken = Array(items[..<index])
            items.removeFirst(index + 1)
            return taken
        }
        return all.map { (String($0.channel.dropFirst(prefix.count)), $0.payload) }.filter { !$0.0.hasPrefix("ch:mark") }
    }

    func finish() async {
        runner.cancel()
        pump.cancel()
        await redis.close()
    }

    static func customer(_ id: String) -> Caller { Caller(id: id, role: .customer, name: "Cleo") }
    static func agent(_ id: String, _ name: String = "Ann") -> Caller { Caller(id: id, role: .agent, name: name) }
    static let supervisor = Caller(id: "900", role: .supervisor, name: "Sue")
}

/// One pub/sub payload split as nodes split it: `<kind>|<audience>|<key>\n<frame>`.
struct Published: CustomStringConvertible {
    let channel: String
    let kind: String
    let audience: String
    let key: String
    let frame: String
    let event: String
    let data: [String: Any]

    init(channel: String, payload: String) throws {
        self.channel = channel
        let newline = try #require(payload.firstIndex(of: "\n"), "no header line in \(payload)")
        let header = payload[..<newline].split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        try #require(header.count == 3, "header \(header) is not kind|audience|key")
        (kind, audience, key) = (header[0], header[1], header[2])
        frame = String(payload[payload.index(after: newline)...])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(frame.utf8)) as? [String: Any])
        event = try #require(object["event"] as? String)
        data = try #require(object["data"] as? [String: Any])
    }

    var description: String { "\(channel) \(kind)|\(audience)|\(key) \(event)" }
}

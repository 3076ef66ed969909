import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HelpDeskCore
import Testing
import TestSupport
@testable import HelpDeskServer

/// The WebSocket layer of our own upgrade channel (`SocketServerChannel`, `SocketChannelHandler`):
/// refusals with their reason, control frames, fragments, the close handshake.
@Suite("WebSocket layer", .serialized)
struct SocketProtocolTests {
    static func code(_ body: [String: Any]) -> String? { (body["error"] as? [String: Any])?["code"] as? String }

    @Test("a refused upgrade answers with the router's status and error object, and opens nothing")
    func refusalsSayWhy() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_MAX_SOCKETS_PER_USER": "1"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let anonymous = try RawWebSocket.refusedUpgrade(port: a.port, headers: [:])
        #expect(anonymous.status == 401 && Self.code(anonymous.body) == "unauthorized")
        let forged = try RawWebSocket.refusedUpgrade(port: a.port, headers: ["Authorization": "Bearer not-a-token"])
        #expect(forged.status == 401 && Self.code(forged.body) == "unauthorized")
        let usedTicket = try RawWebSocket.refusedUpgrade(port: a.port, path: "/ws?ticket=nope", headers: [:])
        #expect(usedTicket.status == 401 && Self.code(usedTicket.body) == "unauthorized")
        let elsewhere = try RawWebSocket.refusedUpgrade(port: a.port, path: "/api/v1/nothing", headers: [:])
        #expect(elsewhere.status == 400 && Self.code(elsewhere.body) == "bad_request")

        let agent = try await cluster.staff("one@example.com", on: a)
        let first = try await TestSocket.connect(a.wsURL, token: agent.token)
        let capped = try RawWebSocket.refusedUpgrade(port: a.port, headers: ["Authorization": "Bearer \(agent.token)"])
        #expect(capped.status == 429 && Self.code(capped.body) == "rate_limited")
        #expect(a.services.parts.hub.sessions(ofUser: agent.id).count == 1)
        // The same route without an upgrade is a clear 400, not a silent 200.
        let (plain, body) = try await HTTP.request("GET", a.url + "/ws", token: agent.token)
        #expect(plain == 400 && Self.code(body) == "bad_request")
        await first.close()
    }

    @Test("an upgrade on a kept-alive connection (a proxy's reused upstream) is sent to a new connection: 307, Connection: close")
    func lateUpgradeIsRedirected() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let fd = try RawWebSocket.connectTCP(port: a.port)
        defer { close(fd) }
        let requests = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + "GET /ws?ticket=abc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        _ = Array(requests.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var all: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }  // the server closes after the redirect
            all += buffer[0..<n]
        }
        let text = String(decoding: all, as: UTF8.self).lowercased()
        #expect(text.hasPrefix("http/1.1 200"), "the first request is served")
        #expect(text.contains("http/1.1 307"), "the late upgrade is redirected: \(text.suffix(300))")
        #expect(text.contains("location: /ws?ticket=abc"))
    }

    @Test("pings are answered with the same payload; a fragmented message is one frame; the close handshake is echoed")
    func controlFramesAndFragments() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("raw@example.com", on: a)
        let raw = try RawWebSocket(port: a.port, token: agent.token)
        let hello = try #require(raw.readFrame())
        #expect(hello.opcode == 0x1 && String(decoding: hello.payload, as: UTF8.self).contains("\"HELLO\""))

        #expect(raw.sendFrame(opcode: 0x9, payload: Array("are you there".utf8)))
        let pong = try #require(raw.readFrame())
        #expect(pong.opcode == 0xA && pong.payload == Array("are you there".utf8))

        // One JSON object in three fragments, a ping between them.
        let text = Array(#"{"event":"PING","ref":"fragmented"}"#.utf8)
        #expect(raw.sendFrame(opcode: 0x1, fin: false, payload: Array(text[0..<10])))
        #expect(raw.sendFrame(opcode: 0x9, payload: [7]))
        #expect(raw.sendFrame(opcode: 0x0, fin: false, payload: Array(text[10..<20])))
        #expect(raw.sendFrame(opcode: 0x0, fin: true, payload: Array(text[20...])))
        let control = try #require(raw.readFrame())
        #expect(control.opcode == 0xA && control.payload == [7])
        let reply = try #require(raw.readFrame())
        #expect(reply.opcode == 0x1 && String(decoding: reply.payload, as: UTF8.self).contains("\"fragmented\""))

        // The client closes with 1000: the server echoes the code, then the connection ends and
        // the socket leaves the registry.
        #expect(raw.sendFrame(opcode: 0x8, payload: [0x03, 0xE8]))
        let close = try #require(raw.readFrame())
        #expect(close.opcode == 0x8 && close.payload == [0x03, 0xE8])
        #expect(raw.readUntilClosed(timeout: .seconds(5)).closed)
        let hub = a.services.parts.hub
        try await waitUntil("the socket left the registry") { hub.sessions(ofUser: agent.id).isEmpty }
    }

    @Test("frames are handled in the order sent, even when the client sends far faster than they are handled")
    func orderUnderBackpressure() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_SOCKET_MESSAGE_RATE": "100000", "HELPDESK_SOCKET_MESSAGE_BURST": "100000"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let raw = try RawWebSocket(port: a.port, token: chat.token)
        // 300 messages in one burst: the node stops reading while its queue is full and resumes.
        for n in 0..<300 {
            #expect(raw.sendEvent("SEND_MESSAGE", ["conversation_id": chat.id, "text": "m\(n)", "client_msg_id": "k\(n)"]))
        }
        let redis = cluster.redis()
        let key = a.services.keys.messages(chat.id)
        try await waitUntil("all 300 stored", within: .seconds(20)) { try await redis.send("XLEN", key).int == 300 }
        let entries = try await redis.send("XRANGE", key, "-", "+").array ?? []
        let texts = entries.compactMap { MessageView(streamEntry: $0)?.text }
        #expect(texts == (0..<300).map { "m\($0)" })
    }

    @Test("a ping flood from a client that never reads is closed (1008) and holds no growing queue")
    func pingFlood() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let raw = try RawWebSocket(port: a.port, token: chat.token, receiveBuffer: 4096)
        var burst: [UInt8] = []
        for _ in 0..<150 { burst += RawWebSocket.frame(opcode: 0x9, payload: [1, 2, 3, 4]) }
        for _ in 0..<20 where raw.sendBytes(burst) {}
        #expect(raw.readUntilClosed(timeout: .seconds(10)).closed, "the server closed the flooding socket")
        let hub = a.services.parts.hub
        try await waitUntil("the socket left the registry") { hub.allSessions().isEmpty }
    }

    @Test("one read holding thousands of tiny frames closes the socket (1008) instead of queueing them all")
    func queueOverflow() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let raw = try RawWebSocket(port: a.port, token: chat.token)
        _ = raw.readFrame()  // HELLO
        // 40,000 tiny frames (~280 KB) in one write: queued whole they would cost ~10 MB of jobs.
        let one = RawWebSocket.frame(opcode: 0x1, payload: Array(#"{"event":"PING"}"#.utf8))
        var burst: [UInt8] = []
        burst.reserveCapacity(one.count * 40_000)
        for _ in 0..<40_000 { burst += one }
        _ = raw.sendBytes(burst)
        let close = raw.readClose()
        // Closed for policy: the queue's bound, or the error budget if the rate limit answered first.
        let payload = try #require(close)
        #expect(payload.count >= 2 && Int(payload[0]) << 8 | Int(payload[1]) == 1008)
        #expect(raw.readUntilClosed(timeout: .seconds(5)).closed)
        let hub = a.services.parts.hub
        try await waitUntil("the socket left the registry") { hub.allSessions().isEmpty }
    }

    @Test("a FIN without a close frame ends the socket at once, not at the keepalive")
    func halfCloseEndsTheSocket() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("fin@example.com", on: a)
        let raw = try RawWebSocket(port: a.port, token: agent.token)
        _ = raw.readFrame()  // HELLO: registered
        let hub = a.services.parts.hub
        #expect(hub.sessions(ofUser: agent.id).count == 1)
        raw.shutdownWrite()
        try await waitUntil("the socket left the registry", within: .seconds(5)) { hub.sessions(ofUser: agent.id).isEmpty }
        #expect(try await cluster.redis().send("HGET", a.services.keys.agent(agent.id), "connected").string != "1")
    }

    @Test("close codes a peer may not send are answered with 1002; a one-byte close payload too")
    func closeCodes() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("codes@example.com", on: a)
        for payload: [UInt8] in [[0x03, 0xED], [0x03], [0x13, 0x88]] {  // 1005, one byte, 5000
            let raw = try RawWebSocket(port: a.port, token: agent.token)
            _ = raw.readFrame()
            #expect(raw.sendFrame(opcode: 0x8, payload: payload))
            let reply = raw.readClose()
            #expect(reply == [0x03, 0xEA], "\(payload) → \(reply ?? [])")
        }
        let raw = try RawWebSocket(port: a.port, token: agent.token)
        _ = raw.readFrame()
        #expect(raw.sendFrame(opcode: 0x8, payload: [0x0F, 0xA0]))  // 4000: an application code, echoed
        let reply = raw.readClose()
        #expect(reply == [0x0F, 0xA0])
    }

    @Test("no connection outlives its socket (no reference cycle between handler and connection)")
    func connectionsAreFreed() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("freed@example.com", on: a)
        let before = SocketConnection.alive.withLockedValue { $0 }
        var sockets: [TestSocket] = []
        for _ in 0..<10 { sockets.append(try await TestSocket.connect(a.wsURL, token: agent.token)) }
        #expect(SocketConnection.alive.withLockedValue { $0 } >= before + 10)
        for socket in sockets { await socket.close() }
        // a server-side close too
        let closing = try await TestSocket.connect(a.wsURL, token: agent.token)
        for session in a.services.parts.hub.sessions(ofUser: agent.id) { session.close(.unknown(4000), "test") }
        try await closing.waitClosed()
        try await waitUntil("every connection freed", within: .seconds(10)) { SocketConnection.alive.withLockedValue { $0 } <= before }
    }
}

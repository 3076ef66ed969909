import Foundation
import HelpDeskCore
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Issue 10, the items of the `harden` branch: each test runs the attack against real nodes and
/// checks that it fails and changes nothing.
@Suite("issue 10 hardening", .serialized)
struct HardeningTests {
    /// An HTTP call with extra headers (X-Real-IP behind a trusted proxy); returns status, JSON and headers.
    static func call(_ method: String, _ url: String, token: String? = nil, body: Any? = nil, ip: String? = nil,
                     headers: [String: String] = [:]) async throws -> (status: Int, json: [String: Any], array: [[String: Any]], headers: [String: String]) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let ip { request.setValue(ip, forHTTPHeaderField: "X-Real-IP") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = try JSONSerialization.data(withJSONObject: body) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http?.allHeaderFields ?? [:] { fields[String(describing: name).lowercased()] = String(describing: value) }
        let parsed = try? JSONSerialization.jsonObject(with: data)
        return (http?.statusCode ?? 0, parsed as? [String: Any] ?? [:], parsed as? [[String: Any]] ?? [], fields)
    }

    static func code(_ json: [String: Any]) -> String? { json.errorCode }

    // MARK: #2 (rest): tickets, messages per conversation

    @Test("#2: ws-tickets are rate limited per user and per IP, with a clear 429")
    func ticketsRateLimited() async throws {
        let cluster = try await TestCluster(overrides: [
            "HELPDESK_TRUST_PROXY": "true", "HELPDESK_TICKET_LIMIT_PER_USER": "3", "HELPDESK_TICKET_LIMIT_PER_IP": "5"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let ann = try await cluster.staff("ann@example.com", on: a)
        let bob = try await cluster.staff("bob@example.com", on: a)
        let url = a.url + "/api/v1/ws-tickets"
        for _ in 0..<3 { #expect(try await Self.call("POST", url, token: ann.token, ip: "203.0.113.1").status == 200) }
        let refused = try await Self.call("POST", url, token: ann.token, ip: "203.0.113.2")
        #expect(refused.status == 429 && Self.code(refused.json) == "rate_limited")
        #expect(refused.json["ticket"] == nil)
        // The address's budget: Bob gets the rest of it, then that address is refused for him too.
        for _ in 0..<2 { #expect(try await Self.call("POST", url, token: bob.token, ip: "203.0.113.1").status == 200) }
        #expect(try await Self.call("POST", url, token: bob.token, ip: "203.0.113.1").status == 429)
        // Refused requests count too: Bob's own budget is spent now, from any address.
        #expect(try await Self.call("POST", url, token: bob.token, ip: "198.51.100.1").status == 429)
        let carol = try await cluster.staff("carol@example.com", on: a)
        #expect(try await Self.call("POST", url, token: carol.token, ip: "198.51.100.1").status == 200)
        // A refused ticket was never stored: only the 3 + 2 + 1 issued ones exist.
        let stored = try await cluster.redis().send("KEYS", cluster.prefix + "ticket:*").array ?? []
        #expect(stored.count == 6)
    }

    @Test("#2: a conversation holds at most HELPDESK_MAX_MESSAGES_PER_CONVERSATION messages (409 / ERROR conversation_full)")
    func conversationCap() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_MAX_MESSAGES_PER_CONVERSATION": "5"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.startChat(on: a)
        let url = a.url + "/api/v1/conversations/\(chat.id)/messages"
        for i in 0..<5 {
            #expect(try await Self.call("POST", url, token: chat.token, body: ["text": "m\(i)", "client_msg_id": "c\(i)"]).status == 201)
        }
        let full = try await Self.call("POST", url, token: chat.token, body: ["text": "one more", "client_msg_id": "c5"])
        #expect(full.status == 409 && Self.code(full.json) == "conversation_full")
        // A retry of a stored message still gets its id back (the dedupe answers before the cap).
        let retry = try await Self.call("POST", url, token: chat.token, body: ["text": "m0", "client_msg_id": "c0"])
        #expect(retry.status == 200 && retry.json["duplicate"] as? Bool == true)
        let socket = try await TestSocket.connect(a.wsURL, token: chat.token)
        let error = try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "again", "client_msg_id": "c6"])
        #expect(error.event == "ERROR" && error.code == "conversation_full")
        #expect(try await cluster.redis().send("XLEN", a.services.keys.messages(chat.id)).int == 5)
        // Another conversation is not affected.
        let other = try await cluster.startChat(on: a)
        #expect(try await Self.call("POST", a.url + "/api/v1/conversations/\(other.id)/messages", token: other.token,
                                    body: ["text": "hi", "client_msg_id": "x"]).status == 201)
        await socket.close()
    }

    // MARK: #9 login limiter

    @Test("#9: failed logins are counted per e-mail+IP and per IP: a stranger cannot lock a user out")
    func loginLockoutIsPerAddress() async throws {
        let cluster = try await TestCluster(overrides: [
            "HELPDESK_TRUST_PROXY": "true", "HELPDESK_LOGIN_LIMIT_PER_EMAIL": "3", "HELPDESK_LOGIN_LIMIT_PER_IP": "6"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        _ = try await cluster.staff("victim@example.com", on: a)
        let url = a.url + "/api/v1/auth/login"
        let wrong: [String: Any] = ["email": "victim@example.com", "password": "not-the-password"]
        let right: [String: Any] = ["email": "victim@example.com", "password": "password123"]
        for _ in 0..<3 { #expect(try await Self.call("POST", url, body: wrong, ip: "203.0.113.66").status == 401) }
        // The attacker's address is locked, even with the right password...
        let locked = try await Self.call("POST", url, body: right, ip: "203.0.113.66")
        #expect(locked.status == 429 && Self.code(locked.json) == "rate_limited")
        // ...the user, from its own address, is not.
        let login = try await Self.call("POST", url, body: right, ip: "198.51.100.20")
        #expect(login.status == 200 && login.json["access_token"] is String)
        // One address guessing many accounts hits the per-IP limit.
        for i in 0..<6 {
            _ = try await Self.call("POST", url, body: ["email": "guess\(i)@example.com", "password": "x"], ip: "192.0.2.99")
        }
        #expect(try await Self.call("POST", url, body: right, ip: "192.0.2.99").status == 429)
        #expect(try await Self.call("POST", url, body: right, ip: "198.51.100.21").status == 200)
    }

    // MARK: #11 e-mail squatting

    @Test("#11: a start without the chat's token gets a new conversation; the customer's name stays")
    func emailSquatting() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_ARCHIVE_RETENTION": "600"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let redis = cluster.redis()
        let url = a.url + "/api/v1/conversations"
        let victim = try await cluster.startChat(on: a, email: "victim@example.com", name: "Victim")
        // The squatter: same e-mail, no token. A conversation of its own, answered exactly like
        // a start for an address without an open chat (201), so nothing is revealed.
        let squat = try await Self.call("POST", url, body: ["name": "Mallory", "email": "VICTIM@example.com"])
        let fresh = try await Self.call("POST", url, body: ["name": "Nobody", "email": "nobody-\(UUID().uuidString.prefix(6))@example.com"])
        #expect(squat.status == 201 && fresh.status == 201)
        #expect(Set(squat.json.keys) == Set(fresh.json.keys))
        let squatID = try #require(squat.json["conversation_id"] as? String)
        #expect(squatID != victim.id)
        // The squatter's token opens only its own conversation.
        let squatToken = try #require(squat.json["customer_token"] as? String)
        #expect(try await Self.call("GET", url + "/\(victim.id)", token: squatToken).status == 404)
        // Nothing of the victim's changed: the stored name, its open conversation, its own chat.
        let customer = try await redis.send("HGETALL", a.services.keys.customer("victim@example.com")).fieldMap
        #expect(customer["name"] == "Victim" && customer["conv"] == victim.id)
        #expect(try await redis.send("HGET", a.services.keys.conversation(squatID), "customer_id").string != customer["id"])
        // The victim's token still resumes the victim's chat (exactly one open chat for its holder).
        let again = try await Self.call("POST", url, token: victim.token, body: ["name": "Victim", "email": "victim@example.com"])
        #expect(again.status == 200 && again.json["conversation_id"] as? String == victim.id)
        // Archived in either order, the customer keeps the first name it gave.
        for id in [victim.id, squatID] {
            #expect(try await Self.call("POST", url + "/\(id)/close", token: admin.token).status == 200)
        }
        let pool = cluster.postgres()
        try await waitUntil("both archived", within: .seconds(15)) {
            try await pool.query("SELECT count(*) AS n FROM conversations").first!.decode("n", as: Int.self) == 2
        }
        let names = try await pool.query("SELECT name FROM customers WHERE lower(email) = 'victim@example.com'").rows.map { try $0.decode("name", as: String.self) }
        #expect(names == ["Victim"])
        await pool.shutdown()
    }

    // MARK: #15 TURN

    @Test("#15: TURN credentials only for the customer and the agent of an active conversation")
    func turnCredentialsForParticipantsOnly() async throws {
        let cluster = try await TestCluster(overrides: [
            "HELPDESK_TURN_URLS": "turn:turn.example.com:3478", "HELPDESK_TURN_SECRET": "turn-secret-0123456789"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let chat = try await cluster.startChat(on: a)
        let url = a.url + "/api/v1/rtc/ice-servers"
        // Waiting customer, idle agent, admin: no relay for them.
        for token in [chat.token, agent.token, admin.token] {
            let refused = try await Self.call("GET", url, token: token)
            #expect(refused.status == 403 && Self.code(refused.json) == "forbidden")
            #expect(refused.json["ice_servers"] == nil)
        }
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await socket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        for token in [chat.token, agent.token] {
            let granted = try await Self.call("GET", url, token: token)
            let servers = granted.json["ice_servers"] as? [[String: Any]] ?? []
            #expect(granted.status == 200 && servers.contains { $0["username"] is String && $0["credential"] is String })
        }
        // Once the conversation is closed, no more.
        #expect(try await socket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        #expect(try await Self.call("GET", url, token: chat.token).status == 403)
        #expect(try await Self.call("GET", url, token: agent.token).status == 403)
        await socket.close()
    }

    // MARK: #16 supervisors' teams

    @Test("#16: a supervisor reads, assigns, transfers, monitors, writes and closes within its own team and the queue")
    func supervisorsActWithinTheirTeam() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let sue = try await cluster.staff("sue@example.com", role: .supervisor, on: a)
        _ = try await cluster.staff("sam@example.com", role: .supervisor, on: a)
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let mine = try await cluster.staff("mine@example.com", supervisor: "sue@example.com", on: a)
        let theirs = try await cluster.staff("theirs@example.com", supervisor: "sam@example.com", on: a)
        let mineSocket = try await TestSocket.connect(a.wsURL, token: mine.token)
        let theirSocket = try await TestSocket.connect(a.wsURL, token: theirs.token)
        let x = try await cluster.startChat(on: a), y = try await cluster.startChat(on: a), z = try await cluster.startChat(on: a)
        #expect(try await mineSocket.request("PICK", ["conversation_id": x.id]).event == "ACK")
        #expect(try await theirSocket.request("PICK", ["conversation_id": y.id]).event == "ACK")
        let base = a.url + "/api/v1/conversations/"

        // Monitor: the own team's chat and the queue, not another team's.
        let supervisor = try await TestSocket.connect(a.wsURL, token: sue.token)
        #expect(try await supervisor.request("JOIN_CONVERSATION", ["conversation_id": x.id]).event == "ACK")
        #expect(try await supervisor.request("JOIN_CONVERSATION", ["conversation_id": z.id]).event == "ACK")
        let join = try await supervisor.request("JOIN_CONVERSATION", ["conversation_id": y.id])
        #expect(join.event == "ERROR" && join.code == "forbidden")
        let note = try await supervisor.request("SEND_MESSAGE", ["conversation_id": y.id, "text": "psst", "client_msg_id": "s1", "internal": true])
        #expect(note.event == "ERROR" && note.code == "forbidden")
        #expect(try await supervisor.request("SEND_MESSAGE", ["conversation_id": x.id, "text": "ok", "client_msg_id": "s2", "internal": true]).event == "ACK")
        // Read over REST: the own team's chat and the queue, not another team's (nor in the list).
        #expect(try await Self.call("GET", base + x.id, token: sue.token).status == 200)
        #expect(try await Self.call("GET", base + z.id + "/messages", token: sue.token).status == 200)
        let other = try await Self.call("GET", base + y.id, token: sue.token)
        #expect(other.status == 403 && Self.code(other.json) == "forbidden")
        #expect(try await Self.call("GET", base + y.id + "/messages", token: sue.token).status == 403)
        let listed = Set(try await Self.call("GET", a.url + "/api/v1/conversations?limit=500", token: sue.token).array.compactMap { $0["id"] as? String })
        #expect(listed.isSuperset(of: [x.id, z.id]) && !listed.contains(y.id))
        let all = Set(try await Self.call("GET", a.url + "/api/v1/conversations?limit=500", token: admin.token).array.compactMap { $0["id"] as? String })
        #expect(all.isSuperset(of: [x.id, y.id, z.id]))
        // Close, over REST and the socket; transfer; assign to another team's agent: all refused.
        let close = try await Self.call("POST", base + y.id + "/close", token: sue.token)
        #expect(close.status == 403 && Self.code(close.json) == "forbidden")
        let socketClose = try await supervisor.request("CLOSE_CONVERSATION", ["conversation_id": y.id])
        #expect(socketClose.event == "ERROR" && socketClose.code == "forbidden")
        #expect(try await Self.call("POST", base + y.id + "/transfer", token: sue.token, body: ["agent_id": Int(mine.id)!]).status == 403)
        #expect(try await Self.call("POST", base + x.id + "/transfer", token: sue.token, body: ["agent_id": Int(theirs.id)!]).status == 403)
        #expect(try await Self.call("POST", base + z.id + "/assign", token: sue.token, body: ["agent_id": Int(theirs.id)!]).status == 403)
        let redis = cluster.redis()
        #expect(try await redis.send("HMGET", a.services.keys.conversation(y.id), "status", "agent_id").array?.map(\.string) == ["active", theirs.id])
        #expect(try await redis.send("XLEN", a.services.keys.messages(y.id)).int == 0)
        #expect(try await redis.send("HGET", a.services.keys.conversation(z.id), "status").string == "waiting")

        // Within the team: assign from the queue, close.
        #expect(try await Self.call("POST", base + z.id + "/assign", token: sue.token, body: ["agent_id": Int(mine.id)!]).status == 200)
        #expect(try await Self.call("POST", base + x.id + "/close", token: sue.token).status == 200)
        // Admins act everywhere.
        let adminSocket = try await TestSocket.connect(a.wsURL, token: admin.token)
        #expect(try await adminSocket.request("JOIN_CONVERSATION", ["conversation_id": y.id]).event == "ACK")
        #expect(try await adminSocket.request("CLOSE_CONVERSATION", ["conversation_id": y.id]).event == "ACK")
        for socket in [mineSocket, theirSocket, supervisor, adminSocket] { await socket.close() }
    }

    // MARK: #18 queue

    @Test("#18: GET /queue shows an agent only its categories' customers, without e-mail")
    func queueScopedForAgents() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let pool = cluster.postgres()
        let billing: Int = try await pool.query("INSERT INTO categories (name) VALUES ('Billing') RETURNING id").first!.decode("id")
        let sales: Int = try await pool.query("INSERT INTO categories (name) VALUES ('Sales') RETURNING id").first!.decode("id")
        let agent = try await cluster.staff("billing-agent@example.com", on: a)
        try await pool.query("INSERT INTO agent_categories (user_id, category_id) VALUES ($1, $2)", [Int(agent.id)!, billing])
        let generalist = try await cluster.staff("any@example.com", on: a)
        let supervisor = try await cluster.staff("sup@example.com", role: .supervisor, on: a)
        let inBilling = try await cluster.startChat(on: a, categoryID: billing)
        let inSales = try await cluster.startChat(on: a, categoryID: sales)

        let seen = try await Self.call("GET", a.url + "/api/v1/queue", token: agent.token)
        #expect(seen.status == 200 && seen.array.map { $0["id"] as? String } == [inBilling.id])
        #expect(seen.array.allSatisfy { ($0["customer"] as? [String: Any])?["email"] == nil })
        #expect(try await Self.call("GET", a.url + "/api/v1/queue?category_id=\(sales)", token: agent.token).array.isEmpty)
        // An agent without categories serves every queue (as pick.lua), still without e-mail.
        let all = try await Self.call("GET", a.url + "/api/v1/queue", token: generalist.token)
        #expect(Set(all.array.compactMap { $0["id"] as? String }) == [inBilling.id, inSales.id])
        #expect(all.array.allSatisfy { ($0["customer"] as? [String: Any])?["email"] == nil })
        // Supervisors keep the e-mail.
        let staff = try await Self.call("GET", a.url + "/api/v1/queue", token: supervisor.token)
        #expect(staff.array.count == 2 && staff.array.allSatisfy { ($0["customer"] as? [String: Any])?["email"] is String })
        // Once assigned to it, the agent sees the e-mail of its conversation.
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await socket.request("PICK", ["conversation_id": inBilling.id]).event == "ACK")
        let own = try await Self.call("GET", a.url + "/api/v1/conversations/\(inBilling.id)", token: agent.token)
        #expect((own.json["customer"] as? [String: Any])?["email"] is String)
        await socket.close()
        await pool.shutdown()
    }

    // MARK: #19 headers and metrics

    @Test("#19: every response carries the security headers; /metrics needs its token")
    func securityHeadersAndMetrics() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_METRICS_TOKEN": "metrics-token-0123456789"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let responses = [
            try await Self.call("GET", a.url + "/"), try await Self.call("GET", a.url + "/agent/"),
            try await Self.call("GET", a.url + "/assets/app.css"), try await Self.call("GET", a.url + "/api/v1/categories"),
            try await Self.call("GET", a.url + "/api/v1/nothing-here"), try await Self.call("GET", a.url + "/api/v1/queue"),
            try await Self.call("POST", a.url + "/api/v1/auth/login", body: ["email": 1]), try await Self.call("GET", a.url + "/healthz"),
        ]
        #expect(responses.map(\.status) == [200, 200, 200, 200, 404, 401, 400, 200])
        for response in responses {
            let csp = response.headers["content-security-policy"] ?? ""
            #expect(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"))
            #expect(response.headers["x-content-type-options"] == "nosniff")
            #expect(response.headers["referrer-policy"] == "no-referrer")
            #expect(response.headers["x-frame-options"] == "DENY")
        }
        let anonymous = try await Self.call("GET", a.url + "/metrics")
        #expect(anonymous.status == 401 && Self.code(anonymous.json) == "unauthorized")
        let scraped = try await Self.call("GET", a.url + "/metrics", headers: ["Authorization": "Bearer metrics-token-0123456789"])
        #expect(scraped.status == 200)
        // The pages carry no inline script or style the policy would block.
        for page in ["index.html", "agent/index.html", "supervisor/index.html", "admin/index.html"] {
            let html = try String(contentsOfFile: TestEnvironment.repositoryRoot + "/Public/" + page, encoding: .utf8)
            #expect(!html.contains("style=") && !html.contains("<style") && !html.contains("<script>"), "\(page)")
        }
    }

    // MARK: #20 JWT keys

    @Test("#20: previous JWT keys with an empty secret or the current kid are refused at start-up")
    func previousKeysRefused() async throws {
        for (keys, words) in [("k0:", "empty"), ("k1:a-previous-secret-of-16-bytes", "current key id"),
                              ("k0:short", "shorter than 16 bytes"), ("k0:secret-number-one-0123,k0:secret-number-two-0123", "twice"),
                              (":a-previous-secret-of-16-bytes", "without a key id")] {
            let cluster = try await TestCluster(overrides: ["HELPDESK_JWT_PREVIOUS_KEYS": keys])
            do {
                _ = try await cluster.startNode()
                Issue.record("a node started with HELPDESK_JWT_PREVIOUS_KEYS=\(keys)")
                await cluster.shutdown()
            } catch let error as HelpDeskError {
                #expect(error.message.contains("HELPDESK_JWT_PREVIOUS_KEYS") && error.message.contains(words), "\(error.message)")
            }
        }
        let fine = try await TestCluster(overrides: ["HELPDESK_JWT_PREVIOUS_KEYS": "k0:a-previous-secret-of-16-bytes"])
        _ = try await fine.startNode()
        await fine.shutdown()
    }

    // MARK: #21 analytics

    @Test("#21: internal notes are no first response; reopen starts a new round, so times never go negative")
    func analyticsRounds() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_ARCHIVE_RETENTION": "600"])
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let chat = try await cluster.startChat(on: a)
        let redis = cluster.redis()
        let key = a.services.keys.conversation(chat.id)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await socket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "note", "client_msg_id": "n1", "internal": true]).event == "ACK")
        #expect(try await redis.send("HGET", key, "first_response_at").string == nil)
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "hello", "client_msg_id": "r1"]).event == "ACK")
        #expect(try await redis.send("HGET", key, "first_response_at").string != nil)
        #expect(try await Self.call("POST", a.url + "/api/v1/conversations/\(chat.id)/escalate", token: agent.token, body: ["note": "help"]).status == 200)
        #expect(try await socket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        #expect(try await Self.call("POST", a.url + "/api/v1/conversations/\(chat.id)/rating", token: chat.token, body: ["rating": 2]).status == 200)
        let pool = cluster.postgres()
        @Sendable func archivedRating() async throws -> Int? {
            try await pool.query("SELECT rating FROM conversations WHERE id = $1::uuid", [chat.id]).first?.optional("rating", as: Int.self)
        }
        try await waitUntil("round one archived with its rating", within: .seconds(15)) { try await archivedRating() == 2 }

        // Round two, a while later: its own first response, rating and escalation.
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await Self.call("POST", a.url + "/api/v1/conversations/\(chat.id)/reopen", token: chat.token).status == 200)
        let reopened = try await redis.send("HGETALL", key).fieldMap
        for field in ["first_response_at", "rating", "rating_comment", "escalated", "escalation_note"] {
            #expect(reopened[field] == nil, "\(field) survived the reopen")
        }
        #expect(try await socket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "note 2", "client_msg_id": "n2", "internal": true]).event == "ACK")
        #expect(try await redis.send("HGET", key, "first_response_at").string == nil)
        #expect(try await socket.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "back", "client_msg_id": "r2"]).event == "ACK")
        #expect(try await socket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        #expect(try await Self.call("POST", a.url + "/api/v1/conversations/\(chat.id)/rating", token: chat.token, body: ["rating": 5]).status == 200)

        try await waitUntil("archived after the second close", within: .seconds(15)) {
            try await pool.query("SELECT count(*) AS n FROM messages").first!.decode("n", as: Int.self) == 4
        }
        // the archive holds the latest round's rating, not the first one's
        try await waitUntil("round two's rating archived", within: .seconds(15)) { try await archivedRating() == 5 }
        let summary = try await Self.call("GET", a.url + "/api/v1/analytics/summary", token: admin.token)
        let firstResponse = try #require(summary.json["average_first_response_s"] as? Double)
        let handle = try #require(summary.json["average_handle_s"] as? Double)
        #expect(firstResponse >= 0.15 && firstResponse < 5, "first response measured from the second assignment to the public reply")
        #expect(handle >= 0)
        await socket.close()
        await pool.shutdown()
    }

    // MARK: #23 live list

    @Test("#23: the live conversations list pages through the whole set, not the newest 1,000")
    func liveListIsPaged() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let agent = try await cluster.staff("agent@example.com", on: a)
        let admin = try await cluster.staff("admin@example.com", role: .admin, on: a)
        let chat = try await cluster.startChat(on: a)
        let socket = try await TestSocket.connect(a.wsURL, token: agent.token)
        #expect(try await socket.request("PICK", ["conversation_id": chat.id]).event == "ACK")
        // 1,200 newer live conversations (written straight into Redis: the start limit is not under test).
        let redis = cluster.redis(), keys = a.services.keys
        let now = Int64(Date().timeIntervalSince1970 * 1000) + 1000
        var commands: [[String]] = []
        for i in 0..<1200 {
            let id = UUID().uuidString.lowercased(), created = String(now + Int64(i / 3))
            commands.append(["HSET", keys.conversation(id), "id", id, "status", "waiting", "customer_id", "c\(i)", "customer_name", "C",
                             "category_id", "0", "created_at", created, "enqueued_at", created])
            commands.append(["ZADD", keys.liveConversations, created, id])
        }
        for batch in stride(from: 0, to: commands.count, by: 400) { _ = try await redis.pipeline(Array(commands[batch..<min(batch + 400, commands.count)])) }

        let own = try await Self.call("GET", a.url + "/api/v1/conversations?status=active", token: agent.token)
        #expect(own.array.map { $0["id"] as? String } == [chat.id])
        // Staff page with `before` (creation ms, exclusive): the next page holds only older ones.
        let first = try await Self.call("GET", a.url + "/api/v1/conversations?status=waiting&limit=500", token: admin.token)
        #expect(first.array.count == 500)
        let boundary = try #require((first.array.last?["created_at"] as? NSNumber)?.int64Value)
        let second = try await Self.call("GET", a.url + "/api/v1/conversations?status=waiting&limit=500&before=\(boundary)", token: admin.token)
        #expect(second.array.count == 500)
        #expect(second.array.allSatisfy { (($0["created_at"] as? NSNumber)?.int64Value ?? .max) < boundary })
        #expect(Set(first.array.compactMap { $0["id"] as? String }).isDisjoint(with: second.array.compactMap { $0["id"] as? String }))
        // Inside the node, pages cut through conversations created in the same ms: each id once, none lost.
        var seen: [String] = []
        try await a.services.parts.store.forEachLivePage(pageSize: 7) { ids in
            seen += ids
            return true
        }
        #expect(seen.count == 1201 && Set(seen).count == 1201)
        let summary = try await Self.call("GET", a.url + "/api/v1/analytics/summary", token: admin.token)
        let byStatus = summary.json["by_status"] as? [[String: Any]] ?? []
        #expect(byStatus.first { $0["key"] as? String == "waiting" }?["count"] as? Int == 1200)
        #expect(byStatus.first { $0["key"] as? String == "active" }?["count"] as? Int == 1)
        await socket.close()
    }
}

import Foundation
import HelpDeskCore
import HummingbirdTesting
import PostgresClient
import RedisClient
import Testing
import TestSupport
@testable import HelpDeskServer

/// Issue 12 #3: team analytics, per agent and per supervisor, the SLA share, per day, status,
/// categories rolled up, and the CSV export. The archive is written through the archive store
/// (as the flusher writes it) with exact times, so every figure is known to the second.
@Suite("team analytics", .serialized)
struct TeamAnalyticsTests {
    /// 2026-03-10T09:00:00Z, in ms.
    static let t0: Int64 = 1_773_133_200_000
    static let day: Int64 = 86_400_000
    static let window = "from=2026-03-10&to=2026-03-13"

    struct World {
        let node: TestNode
        var tokens: [String: String] = [:]  // who -> token
        var ids: [String: Int] = [:]         // who -> user id
    }

    static func token(_ node: TestNode, id: Int, role: Role) -> String {
        let now = Int(Date().timeIntervalSince1970)
        return node.services.tokens.sign(TokenClaims(sub: String(id), role: role.rawValue, iat: now, exp: now + 3600, name: "u\(id)"))
    }

    /// Two teams (S1: agents A and B; S2: agent C), an admin, three categories (Refunds under
    /// Billing), and the archived conversations described in each test.
    static func world(_ overrides: [String: String] = [:]) async throws -> World {
        let node = try await TestNode.make(overrides)
        var w = World(node: node)
        for (who, role, supervisor) in [("admin", "admin", nil), ("s1", "supervisor", nil), ("s2", "supervisor", nil),
                                        ("a", "agent", "s1@example.com"), ("b", "agent", "s1@example.com"), ("c", "agent", "s2@example.com")] {
            let id = try await node.createUser("\(who)@example.com", role: role, supervisorEmail: supervisor)
            w.ids[who] = id
            w.tokens[who] = token(node, id: id, role: Role(rawValue: role)!)
        }
        return w
    }

    static func category(_ node: TestNode, _ name: String, parent: Int? = nil) async throws -> Int {
        try await node.services.postgres.query("INSERT INTO categories (name, parent_id) VALUES ($1, $2) RETURNING id", [name, parent])
            .first!.decode("id")
    }

    /// Archives one ended conversation. Times are ms offsets from `start`; `messages` are
    /// (offset, internal) replies of the agent.
    static func archive(_ node: TestNode, start: Int64, agent: Int?, status: String = "closed", priority: String = "normal",
                        category: Int? = nil, assigned: Int64? = nil, closed: Int64, messages: [(Int64, Bool)] = [], rating: Int? = nil,
                        subject: String = "Help", customer: String = "Customer", resolution: String = "") async throws -> String {
        let id = UUID().uuidString.lowercased()
        var hash = ["id": id, "customer_id": UUID().uuidString.lowercased(), "customer_email": "\(id.prefix(8))@example.com",
                    "customer_name": customer, "subject": subject, "priority": priority, "status": status,
                    "created_at": String(start), "enqueued_at": String(start), "closed_at": String(start + closed), "resolution": resolution]
        if let agent { hash["agent_id"] = String(agent) }
        if let category { hash["category_id"] = String(category) }
        if let assigned { hash["assigned_at"] = String(start + assigned) }
        if let rating { hash["rating"] = String(rating) }
        var views = [MessageView(id: "\(start + 1)-0", sender: .init(id: "c", role: "customer", name: customer), text: "hi",
                                 sentAt: start + 1, clientMsgId: "c0", isInternal: false)]
        for (i, (offset, isNote)) in messages.enumerated() {
            views.append(MessageView(id: "\(start + offset)-0", sender: .init(id: String(agent ?? 0), role: "agent", name: "agent"),
                                     text: isNote ? "note" : "reply", sentAt: start + offset, clientMsgId: "m\(i)", isInternal: isNote))
        }
        try await ArchiveStore(pool: node.services.postgres).write(conversation: hash, messages: views, events: [])
        return id
    }

    /// The archive every test here uses (window 2026-03-10 .. 2026-03-12, UTC):
    ///  1. A, normal (300 s), Refunds: assigned +60 s, internal note +70 s, reply +120 s, closed +600 s, rated 5.
    ///     First response 60 s (the note does not count), handle 540 s, target met (120 s <= 300 s).
    ///  2. A, urgent (60 s), Tech: assigned +30 s, reply +100 s, closed +300 s, rated 3: first response 70 s,
    ///     handle 270 s, target missed (100 s > 60 s).
    ///  3. B, high (120 s), Billing, next day: assigned +10 s, only an internal note (+20 s), closed +400 s:
    ///     no first response, handle 390 s, missed (ended unanswered after its target).
    ///  4. C (team S2), normal, next day: assigned +10 s, reply +40 s, closed +100 s: first response 30 s, met.
    ///  5. nobody, abandoned on the third day after 90 s: no agent; not counted for the SLA (ended before 300 s).
    ///  6. A, closed on 2026-03-20: outside the window.
    static func seed(_ w: World) async throws -> (billing: Int, refunds: Int, tech: Int) {
        let node = w.node, a = w.ids["a"]!, b = w.ids["b"]!, c = w.ids["c"]!
        let billing = try await category(node, "Billing")
        let refunds = try await category(node, "Refunds", parent: billing)
        let tech = try await category(node, "Tech")
        _ = try await archive(node, start: t0, agent: a, priority: "normal", category: refunds, assigned: 60_000, closed: 600_000,
                              messages: [(70_000, true), (120_000, false), (200_000, false)], rating: 5,
                              subject: "=HYPERLINK(\"http://evil\"),x", customer: "+Ann, \"the\" customer", resolution: "line1\nline2")
        _ = try await archive(node, start: t0 + 1_000_000, agent: a, priority: "urgent", category: tech, assigned: 30_000, closed: 300_000,
                              messages: [(100_000, false)], rating: 3, subject: "@SUM(A1)", customer: "-1")
        _ = try await archive(node, start: t0 + day, agent: b, priority: "high", category: billing, assigned: 10_000, closed: 400_000,
                              messages: [(20_000, true)])
        _ = try await archive(node, start: t0 + day + 3_600_000, agent: c, assigned: 10_000, closed: 100_000, messages: [(40_000, false)])
        _ = try await archive(node, start: t0 + 2 * day, agent: nil, status: "abandoned", closed: 90_000)
        _ = try await archive(node, start: t0 + 10 * day, agent: a, assigned: 1000, closed: 5000, messages: [(2000, false)])
        return (billing, refunds, tech)
    }

    /// Live conversations in Redis, as the scripts keep them: one active for A and one waiting,
    /// both created on 2026-03-11.
    static func seedLive(_ w: World) async throws {
        let keys = w.node.services.keys, redis = w.node.services.redis
        let created = String(t0 + day + 7_200_000)
        for (status, agent) in [("active", String(w.ids["a"]!)), ("waiting", "")] {
            let id = UUID().uuidString.lowercased()
            var fields = ["HSET", keys.conversation(id), "id", id, "status", status, "customer_id", "x", "customer_name", "X",
                          "category_id", "0", "created_at", created, "enqueued_at", created]
            if !agent.isEmpty { fields += ["agent_id", agent] }
            try await redis.send(fields)
            try await redis.send("ZADD", keys.liveConversations, created, id)
        }
    }

    static func row(_ rows: Any?, _ key: String, _ value: String) -> [String: Any] {
        (rows as? [[String: Any]] ?? []).first { $0[key] as? String == value } ?? [:]
    }

    static func counts(_ rows: Any?) -> [String: Int] {
        var out: [String: Int] = [:]
        for r in rows as? [[String: Any]] ?? [] { out[r["key"] as? String ?? "?"] = r["count"] as? Int }
        return out
    }

    @Test("a supervisor's team: per agent, totals, SLA per priority, per day, status, categories rolled up")
    func teamFigures() async throws {
        let w = try await Self.world()
        _ = try await Self.seed(w)
        try await Self.seedLive(w)
        try await w.node.test { client in
            let team = try await client.json(.get, "/api/v1/analytics/team?\(Self.window)", token: w.tokens["s1"])
            #expect(team.status == 200)
            let t = team.body
            #expect((t["supervisor"] as? [String: Any])?["id"] as? String == String(w.ids["s1"]!))
            #expect(t["from"] as? String == "2026-03-10T00:00:00.000Z")
            #expect(t["to"] as? String == "2026-03-13T00:00:00.000Z")
            let agents = t["agents"] as? [[String: Any]] ?? []
            #expect(agents.map { $0["name"] as? String } == ["a", "b"])
            let a = agents[0], b = agents[1]
            #expect(a["handled"] as? Int == 2)
            #expect(a["closed"] as? Int == 2)
            #expect(a["average_first_response_s"] as? Double == 65)
            #expect(a["average_handle_s"] as? Double == 405)
            #expect(a["csat"] as? Double == 4)
            #expect(a["ratings"] as? Int == 2)
            #expect(a["sla_met"] as? Int == 1)
            #expect(a["sla_total"] as? Int == 2)
            #expect(a["sla_share"] as? Double == 0.5)
            #expect(b["handled"] as? Int == 1)
            #expect(b["closed"] as? Int == 1)
            #expect(b["average_first_response_s"] == nil)
            #expect(b["csat"] == nil)
            #expect(b["ratings"] as? Int == 0)
            #expect(b["average_handle_s"] as? Double == 390)
            #expect(b["sla_met"] as? Int == 0)
            #expect(b["sla_total"] as? Int == 1)
            let totals = t["totals"] as? [String: Any] ?? [:]
            #expect(totals["handled"] as? Int == 3)
            #expect(totals["closed"] as? Int == 3)
            #expect(totals["average_first_response_s"] as? Double == 65)
            #expect(totals["average_handle_s"] as? Double == 400)
            #expect(totals["csat"] as? Double == 4)
            #expect(totals["ratings"] as? Int == 2)
            #expect(totals["sla_met"] as? Int == 1)
            #expect(totals["sla_total"] as? Int == 3)
            let sla = t["sla"] as? [[String: Any]] ?? []
            #expect(sla.map { $0["priority"] as? String } == ["low", "normal", "high", "urgent"])
            #expect(sla.map { $0["target_s"] as? Int } == [600, 300, 120, 60])
            #expect(sla.map { $0["met"] as? Int } == [0, 1, 0, 0])
            #expect(sla.map { $0["total"] as? Int } == [0, 1, 1, 1])
            let days = t["per_day"] as? [[String: Any]] ?? []
            #expect(days.map { $0["day"] as? String } == ["2026-03-10", "2026-03-11", "2026-03-12"])
            // Created: 1 and 2 on the 10th; 3 and the live active one of A on the 11th (the waiting one has no team).
            #expect(days.map { $0["created"] as? Int } == [2, 2, 0])
            #expect(days.map { $0["closed"] as? Int } == [2, 1, 0])
            #expect(Self.counts(t["by_status"]) == ["waiting": 0, "active": 1, "closed": 3, "abandoned": 0])
            // Refunds rolls up into Billing.
            #expect(Self.counts(t["by_category"]) == ["Billing": 2, "Tech": 1])
            #expect((t["by_category"] as? [[String: Any]])?.first?["key"] as? String == "Billing")

            // Everyone (admins without supervisor_id): C's and the abandoned one too, and the waiting live one.
            let all = try await client.json(.get, "/api/v1/analytics/team?\(Self.window)", token: w.tokens["admin"]).body
            #expect(all["supervisor"] == nil)
            #expect((all["agents"] as? [[String: Any]])?.map { $0["name"] as? String } == ["a", "b", "c"])
            let allTotals = all["totals"] as? [String: Any] ?? [:]
            #expect(allTotals["handled"] as? Int == 5)
            #expect(allTotals["closed"] as? Int == 4)
            #expect(allTotals["sla_met"] as? Int == 2)
            #expect(allTotals["sla_total"] as? Int == 4)
            let expectedFirstResponse: Double = 160.0 / 3
            #expect(allTotals["average_first_response_s"] as? Double == expectedFirstResponse)
            #expect(Self.counts(all["by_status"]) == ["waiting": 1, "active": 1, "closed": 4, "abandoned": 1])
            #expect((all["per_day"] as? [[String: Any]])?.map { $0["created"] as? Int } == [2, 4, 1])
            #expect(Self.counts(all["by_category"]) == ["Billing": 2, "Tech": 1, "none": 2])

            // An admin looks at team S2.
            let s2 = try await client.json(.get, "/api/v1/analytics/team?\(Self.window)&supervisor_id=\(w.ids["s2"]!)", token: w.tokens["admin"]).body
            #expect((s2["agents"] as? [[String: Any]])?.map { $0["name"] as? String } == ["c"])
            #expect((s2["totals"] as? [String: Any])?["handled"] as? Int == 1)
            #expect((s2["totals"] as? [String: Any])?["average_first_response_s"] as? Double == 30)
        }
    }

    @Test("team scope: a supervisor cannot read another team; agents read none; bad input is a clear 400")
    func teamScope() async throws {
        let w = try await Self.world()
        _ = try await Self.seed(w)
        try await w.node.test { client in
            let other = try await client.json(.get, "/api/v1/analytics/team?\(Self.window)&supervisor_id=\(w.ids["s2"]!)", token: w.tokens["s1"])
            #expect(other.status == 403)
            #expect(other.body.errorCode == "forbidden")
            let otherCSV = try await client.json(.get, "/api/v1/analytics/conversations.csv?\(Self.window)&supervisor_id=\(w.ids["s2"]!)", token: w.tokens["s1"])
            #expect(otherCSV.status == 403)
            #expect(otherCSV.body.errorCode == "forbidden")
            // Its own id is fine, and the same as no id.
            let own = try await client.json(.get, "/api/v1/analytics/team?\(Self.window)&supervisor_id=\(w.ids["s1"]!)", token: w.tokens["s1"])
            #expect(own.status == 200)
            #expect((own.body["totals"] as? [String: Any])?["handled"] as? Int == 3)
            for path in ["team", "supervisors", "conversations.csv"] {
                let agent = try await client.json(.get, "/api/v1/analytics/\(path)?\(Self.window)", token: w.tokens["a"])
                #expect(agent.status == 403 && agent.body.errorCode == "forbidden", "\(path)")
                #expect(try await client.json(.get, "/api/v1/analytics/\(path)").status == 401, "\(path)")
            }
            let supervisors = try await client.json(.get, "/api/v1/analytics/supervisors", token: w.tokens["s1"])
            #expect(supervisors.status == 403)
            for query in ["from=yesterday", "from=2026-03-12&to=2026-03-10", "from=2026-03-10&to=2026-03-10",
                          "from=2025-01-01&to=2026-03-10", "supervisor_id=abc", "supervisor_id=-3"] {
                let bad = try await client.json(.get, "/api/v1/analytics/team?\(query)", token: w.tokens["admin"])
                #expect(bad.status == 400 && bad.body.errorCode == "validation_failed", "\(query): \(bad.body)")
            }
            let notSupervisor = try await client.json(.get, "/api/v1/analytics/team?supervisor_id=\(w.ids["a"]!)", token: w.tokens["admin"])
            #expect(notSupervisor.status == 404)
            #expect(notSupervisor.body.errorCode == "not_found")
        }
    }

    @Test("admins: one row per supervisor with its agents, handled, closed and SLA share")
    func perSupervisor() async throws {
        let w = try await Self.world()
        _ = try await Self.seed(w)
        _ = try await w.node.createUser("s3@example.com", role: "supervisor")
        try await w.node.test { client in
            let response = try await client.json(.get, "/api/v1/analytics/supervisors?\(Self.window)", token: w.tokens["admin"])
            #expect(response.status == 200)
            #expect(response.array.map { $0["name"] as? String } == ["s1", "s2", "s3"])
            let s1 = Self.row(response.array, "supervisor_id", String(w.ids["s1"]!))
            #expect(s1["agents"] as? Int == 2)
            #expect(s1["handled"] as? Int == 3)
            #expect(s1["closed"] as? Int == 3)
            #expect(s1["sla_met"] as? Int == 1)
            #expect(s1["sla_total"] as? Int == 3)
            #expect(s1["csat"] as? Double == 4)
            #expect(s1["average_handle_s"] as? Double == 400)
            let s2 = Self.row(response.array, "supervisor_id", String(w.ids["s2"]!))
            #expect(s2["agents"] as? Int == 1)
            #expect(s2["handled"] as? Int == 1)
            #expect(s2["closed"] as? Int == 1)
            #expect(s2["sla_met"] as? Int == 1)
            #expect(s2["sla_total"] as? Int == 1)
            #expect(s2["sla_share"] as? Double == 1)
            let s3 = response.array[2]
            #expect(s3["agents"] as? Int == 0)
            #expect(s3["handled"] as? Int == 0)
            #expect(s3["sla_share"] == nil)
            // Another window: only conversation 6 (A, 2026-03-20).
            let later = try await client.json(.get, "/api/v1/analytics/supervisors?from=2026-03-20&to=2026-03-21", token: w.tokens["admin"])
            #expect(later.array.map { $0["handled"] as? Int } == [1, 0, 0])
        }
    }

    @Test("SLA targets come from HELPDESK_SLA_FIRST_RESPONSE; a bad value stops the node with the reason")
    func slaConfiguration() async throws {
        // urgent 120 s: conversation 2 (first reply 100 s after it entered the queue) now meets it.
        let w = try await Self.world(["HELPDESK_SLA_FIRST_RESPONSE": "urgent=120, low=900"])
        _ = try await Self.seed(w)
        try await w.node.test { client in
            let t = try await client.json(.get, "/api/v1/analytics/team?\(Self.window)", token: w.tokens["s1"]).body
            let sla = t["sla"] as? [[String: Any]] ?? []
            #expect(sla.map { $0["target_s"] as? Int } == [900, 300, 120, 120])
            #expect(sla.map { $0["met"] as? Int } == [0, 1, 0, 1])
            #expect((t["totals"] as? [String: Any])?["sla_met"] as? Int == 2)
        }
        for bad in ["urgent", "asap=10", "normal=0", "normal=abc", "high=604801"] {
            #expect(throws: HelpDeskError.self, "\(bad)") { try SLATargets(parsing: bad) }
        }
        #expect(try SLATargets(parsing: "").seconds == SLATargets.defaults.seconds)
    }

    @Test("CSV export: the team's ended conversations, RFC 4180 quoting, formulas neutralised, bounded")
    func csvExport() async throws {
        let w = try await Self.world(["HELPDESK_EXPORT_MAX_ROWS": "3"])
        let ids = try await Self.seed(w)
        _ = ids
        try await w.node.test { client in
            let (status, headers, text) = try await client.execute(
                uri: "/api/v1/analytics/conversations.csv?\(Self.window)", method: .get, headers: [.authorization: "Bearer \(w.tokens["s1"]!)"]
            ) { (Int($0.status.code), $0.headers, String(buffer: $0.body)) }
            #expect(status == 200)
            #expect(headers[.contentType] == "text/csv; charset=utf-8")
            #expect(headers[.contentDisposition] == "attachment; filename=\"conversations-2026-03-10-2026-03-12.csv\"")
            let lines = text.components(separatedBy: "\r\n")
            #expect(lines.first == TeamAnalyticsController.csvHeader.joined(separator: ","))
            // header, 3 conversations (the first holds a quoted line break), and the empty rest after the last CRLF
            #expect(text.hasSuffix("\r\n"))
            #expect(lines.count == 5)
            #expect(lines.last == "")
            let first = lines[1]
            #expect(first.contains(",2026-03-10T09:00:00Z,2026-03-10T09:10:00Z,closed,normal,Billing,Refunds,"))
            #expect(first.contains(",\"'=HYPERLINK(\"\"http://evil\"\"),x\",\"'+Ann, \"\"the\"\" customer\","))
            #expect(first.contains(",\(w.ids["a"]!),a,60,60,540,300,yes,5,,\"line1\nline2\""))
            let second = lines[2]
            #expect(second.contains(",closed,urgent,Tech,,'@SUM(A1),'-1,"))
            #expect(second.contains(",\(w.ids["a"]!),a,30,70,270,60,no,3,,"))
            let third = lines[3]
            #expect(third.contains(",closed,high,Billing,,Help,Customer,"))
            #expect(third.hasSuffix(",\(w.ids["b"]!),b,10,,390,120,no,,,"))

            // An admin's export of everyone: 5 conversations, over the limit of 3: refused, not cut short.
            let over = try await client.json(.get, "/api/v1/analytics/conversations.csv?\(Self.window)", token: w.tokens["admin"])
            #expect(over.status == 400)
            #expect(over.body.errorCode == "validation_failed")
            #expect((over.body["error"] as? [String: Any])?["message"] as? String == "more than 3 conversations in that window; export a shorter one")
            let long = try await client.json(.get, "/api/v1/analytics/conversations.csv?from=2025-01-01&to=2026-03-01", token: w.tokens["admin"])
            #expect(long.status == 400)
            #expect(long.body.errorCode == "validation_failed")
        }
    }

    @Test("CSV fields: quoting and formula prefixes")
    func csvFields() {
        #expect(CSVWriter.field("plain") == "plain")
        #expect(CSVWriter.field("a,b") == "\"a,b\"")
        #expect(CSVWriter.field("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSVWriter.field("two\r\nlines") == "\"two\r\nlines\"")
        #expect(CSVWriter.field("=1+1") == "'=1+1")
        #expect(CSVWriter.field("+1") == "'+1")
        #expect(CSVWriter.field("-1") == "'-1")
        #expect(CSVWriter.field("@x") == "'@x")
        #expect(CSVWriter.field("\tx") == "'\tx")
        #expect(CSVWriter.field("=a,b") == "\"'=a,b\"")
        #expect(CSVWriter.field("a=b") == "a=b")
        var w = CSVWriter(header: ["n", "t"])
        w.row([.number("-5"), .empty])
        #expect(w.text == "n,t\r\n-5,\r\n")
    }
}

import Foundation
import HelpDeskCore
import Hummingbird
import NIOCore
import PostgresClient
import RedisClient

/// Team analytics (issue 12 #3): per supervisor's team and per agent, from the archive (ended
/// conversations) plus the live conversations in Redis.
///
/// - `GET /analytics/team?from&to&supervisor_id`: a supervisor gets its own team (another
///   `supervisor_id` is 403); an admin gets the team of `supervisor_id`, or everyone without it.
/// - `GET /analytics/supervisors?from&to` (admins): one row per supervisor.
/// - `GET /analytics/conversations.csv?from&to&supervisor_id`: the ended conversations of the
///   same scope as CSV.
///
/// `from`/`to` are ISO 8601 (`2026-11-22` is its UTC midnight); `to` is exclusive; the window is
/// at most 366 days (default: the last 30). An ended conversation belongs to the window of its
/// end (`closed_at`), a live one to the window of its creation; days are UTC days.
struct TeamAnalyticsController: Sendable {
    let pool: PostgresPool
    let store: LiveStore
    let sla: SLATargets
    /// Rows one CSV export may hold (`HELPDESK_EXPORT_MAX_ROWS`).
    var maxCSVRows = 50_000

    static let maxDays = 366
    /// Live conversations read per request at most (Redis holds the waiting and active ones).
    static let maxLive = 100_000

    struct Count: Encodable { var key: String; var count: Int }
    struct Day: Encodable { var day: String; var created: Int; var closed: Int; var abandoned: Int }
    struct Figures: Encodable {
        var handled = 0
        var closed = 0
        var averageFirstResponseS: Double?
        var averageHandleS: Double?
        var csat: Double?
        var ratings = 0
        var slaMet = 0
        var slaTotal = 0
        var slaShare: Double?
    }
    struct AgentRow: Encodable {
        var agentId: String
        var name: String
        var active: Bool
        var figures: Figures
        enum CodingKeys: String, CodingKey { case agentId, name, active }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(agentId, forKey: .agentId)
            try c.encode(name, forKey: .name)
            try c.encode(active, forKey: .active)
            try figures.encode(to: encoder)
        }
    }
    struct SLARow: Encodable { var priority: String; var targetS: Int; var met: Int; var total: Int; var share: Double? }
    struct Person: Encodable { var id: String; var name: String }
    struct Team: Encodable {
        var from: String
        var to: String
        var supervisor: Person?
        var agents: [AgentRow]
        var totals: Figures
        var sla: [SLARow]
        var perDay: [Day]
        var byStatus: [Count]
        var byCategory: [Count]
    }
    struct SupervisorRow: Encodable {
        var supervisorId: String
        var name: String
        var agents: Int
        var figures: Figures
        enum CodingKeys: String, CodingKey { case supervisorId, name, agents }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(supervisorId, forKey: .supervisorId)
            try c.encode(name, forKey: .name)
            try c.encode(agents, forKey: .agents)
            try figures.encode(to: encoder)
        }
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("analytics/team") { request, context in
            let window = try Self.window(request)
            let scope = try await scope(request, context)
            return try Response.json(try await team(window, scope))
        }
        group.get("analytics/supervisors") { request, context in
            try context.require(.admin)
            let window = try Self.window(request)
            return try Response.json(try await supervisors(window))
        }
        group.get("analytics/conversations.csv") { request, context in
            let window = try Self.window(request)
            let scope = try await scope(request, context)
            let csv = try await export(window, scope)
            let name = "conversations-\(Self.day(window.from))-\(Self.day(window.to.addingTimeInterval(-1))).csv"
            return Response(status: .ok, headers: [
                .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name)\"", .cacheControl: "no-store",
            ], body: .init(byteBuffer: ByteBuffer(string: csv)))
        }
    }

    // MARK: scope and window

    /// Whose conversations: a team (its supervisor and its agents' ids), or everyone (nil, admins).
    struct Scope { var supervisor: Person?; var agentIDs: [Int64]? }

    func scope(_ request: Request, _ context: AuthenticatedContext) async throws -> Scope {
        try context.require(.supervisor, .admin)
        let asked = request.uri.queryParameters.get("supervisor_id")
        var supervisorID: Int64?
        if let asked {
            guard let id = Int64(asked), id > 0 else { throw HelpDeskError(.validationFailed, "supervisor_id must be a positive integer") }
            supervisorID = id
        }
        if context.caller.role == .supervisor {
            let own = Int64(context.caller.id) ?? -1
            if let supervisorID, supervisorID != own { throw HelpDeskError(.forbidden, "supervisors see their own team only") }
            supervisorID = own
        }
        guard let supervisorID else { return Scope(supervisor: nil, agentIDs: nil) }
        guard let row = try await pool.query("SELECT name FROM users WHERE id = $1 AND role = 'supervisor'", [supervisorID]).first else {
            throw HelpDeskError(.notFound, "no supervisor \(supervisorID)")
        }
        let agents = try await pool.query("SELECT id FROM users WHERE supervisor_id = $1 AND role = 'agent'", [supervisorID])
            .rows.map { try $0.decode("id", as: Int64.self) }
        return Scope(supervisor: Person(id: String(supervisorID), name: try row.decode("name")), agentIDs: agents)
    }

    struct Window { var from: Date; var to: Date }

    static func window(_ request: Request) throws -> Window {
        let q = request.uri.queryParameters
        let to = try AnalyticsController.date(q.get("to")) ?? Date()
        let from = try AnalyticsController.date(q.get("from")) ?? to.addingTimeInterval(-30 * 86400)
        guard from < to else { throw HelpDeskError(.validationFailed, "from must be before to") }
        guard to.timeIntervalSince(from) <= Double(maxDays) * 86400 else {
            throw HelpDeskError(.validationFailed, "the window is at most \(maxDays) days")
        }
        return Window(from: from, to: to)
    }

    static func day(_ date: Date) -> String { String(JSON.isoString(date).prefix(10)) }

    // MARK: SQL

    /// The ended conversations of the window and scope, each with its first public agent reply
    /// (internal notes never count; only replies of its latest round, after `assigned_at`) and
    /// its SLA verdict. Parameters: $1 from, $2 to, $3 agent ids (NULL: everyone), $4 priorities,
    /// $5 their targets (s), $6 the target of any other priority.
    static let measured = """
        WITH targets AS (SELECT * FROM unnest($4::text[], $5::float8[]) AS t(priority, target_s)),
        scoped AS (
            SELECT c.id, c.agent_id, c.status, c.priority, c.category_id, c.enqueued_at, c.assigned_at, c.closed_at, c.rating,
                   fr.first_at, coalesce(t.target_s, $6::float8) AS target_s
            FROM conversations c
            LEFT JOIN LATERAL (
                SELECT min(m.sent_at) AS first_at FROM messages m
                WHERE m.conversation_id = c.id AND m.sender_role = 'agent' AND NOT m.internal AND m.sent_at >= c.assigned_at
            ) fr ON true
            LEFT JOIN targets t ON t.priority = c.priority
            WHERE c.closed_at >= $1 AND c.closed_at < $2 AND ($3::bigint[] IS NULL OR c.agent_id = ANY($3::bigint[]))
        ),
        measured AS (
            SELECT s.*,
                   extract(epoch FROM s.first_at - s.assigned_at)::float8 AS first_response_s,
                   CASE WHEN s.status = 'closed' AND s.closed_at >= s.assigned_at THEN extract(epoch FROM s.closed_at - s.assigned_at)::float8 END AS handle_s,
                   (s.first_at IS NOT NULL AND extract(epoch FROM s.first_at - s.enqueued_at) <= s.target_s) AS sla_met,
                   (s.first_at IS NOT NULL OR extract(epoch FROM s.closed_at - s.enqueued_at) > s.target_s) AS sla_counted
            FROM scoped s
        )
        """

    /// The aggregate columns of `Figures` over rows of `measured` (aliased `m`).
    static let figureColumns = """
        count(m.id) AS handled, count(m.id) FILTER (WHERE m.status = 'closed') AS closed,
        avg(m.first_response_s) AS first_response, avg(m.handle_s) AS handle,
        avg(m.rating)::float8 AS csat, count(m.rating) AS ratings,
        count(m.id) FILTER (WHERE m.sla_met) AS sla_met, count(m.id) FILTER (WHERE m.sla_counted) AS sla_total
        """

    static func figures(_ row: PostgresRow) throws -> Figures {
        var f = Figures()
        f.handled = try row.decode("handled")
        f.closed = try row.decode("closed")
        f.averageFirstResponseS = try row.optional("first_response")
        f.averageHandleS = try row.optional("handle")
        f.csat = try row.optional("csat")
        f.ratings = try row.decode("ratings")
        f.slaMet = try row.decode("sla_met")
        f.slaTotal = try row.decode("sla_total")
        f.slaShare = f.slaTotal > 0 ? Double(f.slaMet) / Double(f.slaTotal) : nil
        return f
    }

    func parameters(_ window: Window, _ scope: Scope) -> [(any PostgresEncodable)?] {
        let priorities = SLATargets.priorities
        return [window.from, window.to, scope.agentIDs.map { PostgresArray($0) },
                PostgresArray(priorities), PostgresArray(priorities.map { Double(sla.target($0)) }), Double(sla.target("normal"))]
    }

    // MARK: team

    func team(_ window: Window, _ scope: Scope) async throws -> Team {
        let p = parameters(window, scope)
        // One pass over the window: per agent, per priority, and the total (grouping sets).
        let grouped = try await pool.query(Self.measured + """
            SELECT m.agent_id, m.priority, GROUPING(m.agent_id) AS by_priority_or_total, GROUPING(m.priority) AS by_agent_or_total,
                   \(Self.figureColumns)
            FROM measured m GROUP BY GROUPING SETS ((m.agent_id), (m.priority), ())
            """, p).rows
        var perAgent: [Int64: Figures] = [:]
        var perPriority: [String: Figures] = [:]
        var totals = Figures()
        for row in grouped {
            let agentGrouped: Int = try row.decode("by_priority_or_total"), priorityGrouped: Int = try row.decode("by_agent_or_total")
            let f = try Self.figures(row)
            switch (agentGrouped, priorityGrouped) {
            case (0, 1): if let id: Int64 = try row.optional("agent_id") { perAgent[id] = f }
            case (1, 0): perPriority[try row.decode("priority")] = f
            default: totals = f
            }
        }
        // The agents: the team's, or every agent for everyone (also those without conversations).
        let agentRows = try await pool.query("""
            SELECT id, name, active FROM users WHERE role = 'agent' AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[])) ORDER BY lower(name), id
            """, [scope.agentIDs.map { PostgresArray($0) }]).rows
        let agents = try agentRows.map { row -> AgentRow in
            let id: Int64 = try row.decode("id")
            return AgentRow(agentId: String(id), name: try row.decode("name"), active: try row.decode("active"), figures: perAgent[id] ?? Figures())
        }
        let slaRows = SLATargets.priorities.map { priority -> SLARow in
            let f = perPriority[priority] ?? Figures()
            return SLARow(priority: priority, targetS: sla.target(priority), met: f.slaMet, total: f.slaTotal, share: f.slaShare)
        }

        // Per day and by status: ended (archive) and live (Redis).
        let dayRows = try await pool.query("""
            WITH created AS (
                SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS n FROM conversations c
                WHERE c.created_at >= $1 AND c.created_at < $2 AND ($3::bigint[] IS NULL OR c.agent_id = ANY($3::bigint[])) GROUP BY 1
            ), ended AS (
                SELECT to_char(closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                       count(*) FILTER (WHERE status = 'closed') AS closed, count(*) FILTER (WHERE status = 'abandoned') AS abandoned
                FROM conversations c
                WHERE c.closed_at >= $1 AND c.closed_at < $2 AND ($3::bigint[] IS NULL OR c.agent_id = ANY($3::bigint[])) GROUP BY 1
            )
            SELECT coalesce(c.day, e.day) AS day, coalesce(c.n, 0) AS created, coalesce(e.closed, 0) AS closed, coalesce(e.abandoned, 0) AS abandoned
            FROM created c FULL JOIN ended e ON e.day = c.day
            """, Array(p[0..<3])).rows
        var days: [String: Day] = [:]
        for row in dayRows {
            let day: String = try row.decode("day")
            days[day] = Day(day: day, created: try row.decode("created"), closed: try row.decode("closed"), abandoned: try row.decode("abandoned"))
        }
        var byStatus: [String: Int] = [:]
        for row in try await pool.query("""
            SELECT status, count(*) AS n FROM conversations c
            WHERE c.closed_at >= $1 AND c.closed_at < $2 AND ($3::bigint[] IS NULL OR c.agent_id = ANY($3::bigint[])) GROUP BY 1
            """, Array(p[0..<3])).rows {
            byStatus[try row.decode("status")] = try row.decode("n")
        }
        for live in try await liveConversations(window, scope) {
            byStatus[live.status, default: 0] += 1
            let day = Self.day(Date(timeIntervalSince1970: Double(live.createdMS) / 1000))
            days[day, default: Day(day: day, created: 0, closed: 0, abandoned: 0)].created += 1
        }
        // Every UTC day of the window, empty ones too (at most 367).
        var perDay: [Day] = []
        var cursor = Date(timeIntervalSince1970: (window.from.timeIntervalSince1970 / 86400).rounded(.down) * 86400)
        while cursor < window.to {
            let day = Self.day(cursor)
            perDay.append(days[day] ?? Day(day: day, created: 0, closed: 0, abandoned: 0))
            cursor = cursor.addingTimeInterval(86400)
        }
        let statuses = ["waiting", "active", "closed", "abandoned"]
        let statusCounts = statuses.map { Count(key: $0, count: byStatus[$0] ?? 0) }

        // Subcategories count for their top-level category.
        let byCategory = try await pool.query("""
            WITH RECURSIVE roots AS (
                SELECT id, id AS root, 0 AS depth FROM categories WHERE parent_id IS NULL
                UNION ALL
                SELECT c.id, r.root, r.depth + 1 FROM categories c JOIN roots r ON c.parent_id = r.id WHERE r.depth < 16
            )
            SELECT coalesce(rc.name, 'none') AS key, count(*) AS n
            FROM conversations c LEFT JOIN roots r ON r.id = c.category_id LEFT JOIN categories rc ON rc.id = r.root
            WHERE c.closed_at >= $1 AND c.closed_at < $2 AND ($3::bigint[] IS NULL OR c.agent_id = ANY($3::bigint[]))
            GROUP BY 1 ORDER BY 2 DESC, 1
            """, Array(p[0..<3])).rows.map { Count(key: try $0.decode("key"), count: try $0.decode("n")) }

        return Team(from: JSON.isoString(window.from), to: JSON.isoString(window.to), supervisor: scope.supervisor, agents: agents,
                    totals: totals, sla: slaRows, perDay: perDay, byStatus: statusCounts, byCategory: byCategory)
    }

    struct Live { var status: String; var createdMS: Int64 }

    /// Waiting and active conversations created in the window, of the scope's agents (a team
    /// sees its active ones; waiting ones have no agent yet) or all of them. Pages of 500.
    func liveConversations(_ window: Window, _ scope: Scope) async throws -> [Live] {
        let keys = store.keys, redis = store.redis
        let from = Int64((window.from.timeIntervalSince1970 * 1000).rounded(.up))
        let to = Int64((window.to.timeIntervalSince1970 * 1000).rounded(.up))
        let team = scope.agentIDs.map { Set($0.map(String.init)) }
        var out: [Live] = []
        var offset = 0
        while offset < Self.maxLive {
            let ids = (try await redis.send("ZRANGEBYSCORE", keys.liveConversations, String(from), "(\(to)", "LIMIT", String(offset), "500").array ?? [])
                .compactMap(\.string)
            if ids.isEmpty { break }
            offset += ids.count
            let replies = try await redis.pipeline(ids.map { ["HMGET", keys.conversation($0), "status", "agent_id", "created_at"] })
            for reply in replies {
                let f = reply.array ?? []
                guard f.count == 3, let status = f[0].string, status == "waiting" || status == "active",
                      let created = f[2].string.flatMap({ Int64($0) ?? Double($0).map { Int64($0) } }) else { continue }
                if let team, !team.contains(f[1].string ?? "") { continue }
                out.append(Live(status: status, createdMS: created))
            }
            if ids.count < 500 { break }
        }
        return out
    }

    // MARK: supervisors

    func supervisors(_ window: Window) async throws -> [SupervisorRow] {
        let p = parameters(window, Scope(supervisor: nil, agentIDs: nil))
        return try await pool.query(Self.measured + """
            SELECT s.id, s.name, (SELECT count(*) FROM users a WHERE a.supervisor_id = s.id AND a.role = 'agent') AS agents,
                   \(Self.figureColumns)
            FROM users s LEFT JOIN users a ON a.supervisor_id = s.id AND a.role = 'agent' LEFT JOIN measured m ON m.agent_id = a.id
            WHERE s.role = 'supervisor' GROUP BY s.id, s.name ORDER BY lower(s.name), s.id
            """, p).rows.map {
            SupervisorRow(supervisorId: String(try $0.decode("id", as: Int64.self)), name: try $0.decode("name"),
                          agents: try $0.decode("agents"), figures: try Self.figures($0))
        }
    }

    // MARK: CSV

    static let csvHeader = [
        "id", "created_at", "closed_at", "status", "priority", "category", "subcategory", "subject", "customer_name", "customer_email",
        "agent_id", "agent_name", "wait_s", "first_response_s", "handle_s", "sla_target_s", "sla_met", "rating", "rating_comment", "resolution",
    ]

    /// The ended conversations of the window and scope, oldest end first; refused (400) past
    /// `maxCSVRows` rows rather than cut short without a word.
    func export(_ window: Window, _ scope: Scope) async throws -> String {
        let rows = try await pool.query(Self.measured + """
            SELECT m.id::text AS id, to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created,
                   to_char(m.closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS closed_at, m.status, m.priority,
                   coalesce(parent.name, cat.name, '') AS category, CASE WHEN parent.id IS NOT NULL THEN cat.name ELSE '' END AS subcategory,
                   c.subject, cu.name AS customer_name, cu.email AS customer_email, m.agent_id, coalesce(u.name, '') AS agent_name,
                   CASE WHEN m.assigned_at >= m.enqueued_at THEN round(extract(epoch FROM m.assigned_at - m.enqueued_at))::bigint END AS wait_s,
                   round(m.first_response_s)::bigint AS first_response_s, round(m.handle_s)::bigint AS handle_s,
                   m.target_s::bigint AS target_s, m.sla_met, m.sla_counted, m.rating, c.rating_comment, c.resolution
            FROM measured m JOIN conversations c ON c.id = m.id JOIN customers cu ON cu.id = c.customer_id
            LEFT JOIN users u ON u.id = m.agent_id LEFT JOIN categories cat ON cat.id = m.category_id
            LEFT JOIN categories parent ON parent.id = cat.parent_id
            ORDER BY m.closed_at, m.id LIMIT \(maxCSVRows + 1)
            """, parameters(window, scope)).rows
        guard rows.count <= maxCSVRows else {
            throw HelpDeskError(.validationFailed, "more than \(maxCSVRows) conversations in that window; export a shorter one")
        }
        var csv = CSVWriter(header: Self.csvHeader)
        func text(_ row: PostgresRow, _ column: String) throws -> CSVWriter.Cell {
            (try row.optional(column, as: String.self)).map { .text($0) } ?? .empty
        }
        func number(_ row: PostgresRow, _ column: String) throws -> CSVWriter.Cell {
            (try row.optional(column, as: Int64.self)).map { .number(String($0)) } ?? .empty
        }
        for row in rows {
            let counted: Bool = try row.decode("sla_counted"), met: Bool = try row.decode("sla_met")
            csv.row([
                try text(row, "id"), try text(row, "created"), try text(row, "closed_at"), try text(row, "status"), try text(row, "priority"),
                try text(row, "category"), try text(row, "subcategory"), try text(row, "subject"), try text(row, "customer_name"),
                try text(row, "customer_email"), try number(row, "agent_id"), try text(row, "agent_name"), try number(row, "wait_s"),
                try number(row, "first_response_s"), try number(row, "handle_s"), try number(row, "target_s"),
                counted ? .text(met ? "yes" : "no") : .empty, try number(row, "rating"), try text(row, "rating_comment"),
                try text(row, "resolution"),
            ])
        }
        return csv.text
    }
}

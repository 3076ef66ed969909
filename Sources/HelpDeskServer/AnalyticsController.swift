import Foundation
import HelpDeskCore
import Hummingbird
import PostgresClient

/// `/api/v1/analytics/*`: numbers for the admin and supervisor pages, from the archive plus the
/// live counts in Redis.
struct AnalyticsController: Sendable {
    let pool: PostgresPool
    let store: LiveStore

    struct Count: Encodable { var key: String; var count: Int }
    struct Day: Encodable { var day: String; var closed: Int; var abandoned: Int }
    struct Summary: Encodable {
        var from: String
        var to: String
        var byStatus: [Count]
        var byCategory: [Count]
        var byPriority: [Count]
        var perDay: [Day]
        var averageWaitS: Double?
        var averageFirstResponseS: Double?
        var averageHandleS: Double?
        var abandonmentRate: Double?
        var averageRating: Double?
        var ratings: Int
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("analytics/summary") { request, context in
            try context.require(.supervisor, .admin)
            let q = request.uri.queryParameters
            let to = try Self.date(q.get("to")) ?? Date()
            let from = try Self.date(q.get("from")) ?? to.addingTimeInterval(-30 * 86400)
            guard from <= to else { throw HelpDeskError(.validationFailed, "from must not be after to") }
            let window: [(any PostgresEncodable)?] = [from, to]
            func counts(_ column: String) async throws -> [Count] {
                // `column` is one of three fixed names below, never input.
                try await pool.query("SELECT \(column)::text AS key, count(*) AS n FROM conversations WHERE closed_at >= $1 AND closed_at < $2 GROUP BY 1 ORDER BY 2 DESC", window)
                    .rows.map { Count(key: try $0.optional("key") ?? "none", count: try $0.decode("n")) }
            }
            var byStatus = try await counts("status")
            let live = try await store.liveStatusCounts()
            for status in ["waiting", "active"] {
                byStatus.append(Count(key: status, count: live[status] ?? 0))
            }
            let categoryNames = try await pool.query("SELECT id::text AS id, name FROM categories").rows
                .reduce(into: [String: String]()) { $0[try $1.decode("id")] = try $1.decode("name") }
            let byCategory = try await counts("category_id").map { Count(key: categoryNames[$0.key] ?? "none", count: $0.count) }
            let perDay = try await pool.query("""
                SELECT to_char(date_trunc('day', closed_at), 'YYYY-MM-DD') AS day,
                       count(*) FILTER (WHERE status = 'closed') AS closed, count(*) FILTER (WHERE status = 'abandoned') AS abandoned
                FROM conversations WHERE closed_at >= $1 AND closed_at < $2 GROUP BY 1 ORDER BY 1
                """, window).rows.map { Day(day: try $0.decode("day"), closed: try $0.decode("closed"), abandoned: try $0.decode("abandoned")) }
            // First response = the agent's first reply the customer saw in the last round (after its
            // assignment), from the messages: internal notes never count, and a reopened
            // conversation is measured from its new assignment. Times before their start (rows
            // archived before reopen reset them) are left out rather than averaged in negative.
            let averages = try await pool.query("""
                SELECT avg(extract(epoch FROM c.assigned_at - c.enqueued_at)) FILTER (WHERE c.assigned_at >= c.enqueued_at) AS wait,
                       avg(extract(epoch FROM fr.first_at - c.assigned_at)) AS first_response,
                       avg(extract(epoch FROM c.closed_at - c.assigned_at)) FILTER (WHERE c.status = 'closed' AND c.closed_at >= c.assigned_at) AS handle,
                       (count(*) FILTER (WHERE c.status = 'abandoned'))::float8 / nullif(count(*), 0) AS abandonment,
                       avg(c.rating)::float8 AS rating, count(c.rating) AS ratings
                FROM conversations c
                LEFT JOIN LATERAL (
                    SELECT min(m.sent_at) AS first_at FROM messages m
                    WHERE m.conversation_id = c.id AND m.sender_role = 'agent' AND NOT m.internal AND m.sent_at >= c.assigned_at
                ) fr ON true
                WHERE c.closed_at >= $1 AND c.closed_at < $2
                """, window).first!
            return try Response.json(Summary(
                from: JSON.isoString(from), to: JSON.isoString(to),
                byStatus: byStatus, byCategory: byCategory, byPriority: try await counts("priority"), perDay: perDay,
                averageWaitS: try averages.optional("wait"), averageFirstResponseS: try averages.optional("first_response"),
                averageHandleS: try averages.optional("handle"), abandonmentRate: try averages.optional("abandonment"),
                averageRating: try averages.optional("rating"), ratings: try averages.decode("ratings")))
        }
        // `analytics/supervisors` and the team views: TeamAnalyticsController.
    }

    /// `2026-11-22` or a full ISO 8601 timestamp.
    static func date(_ text: String?) throws -> Date? {
        guard let text else { return nil }
        if let date = try? Date(text, strategy: .iso8601) { return date }
        if let date = try? Date(text + "T00:00:00Z", strategy: .iso8601) { return date }
        throw HelpDeskError(.validationFailed, "dates must be ISO 8601 (2026-11-22 or 2026-11-22T10:00:00Z)")
    }
}

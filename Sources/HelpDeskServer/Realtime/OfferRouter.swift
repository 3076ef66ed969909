import Foundation
import HelpDeskCore
import Logging
import NIOConcurrencyHelpers
import PostgresClient

/// When offer routing runs on this node (issue 11). The rules are in the scripts (lua/offer.lua,
/// offer_accept.lua, offer_end.lua, wrap_up_end.lua); this decides when to call them.
///
/// - Routing is triggered by events, never by polling: a customer enqueued or back in a queue
///   (requeue, transfer to a queue, reopen), an agent online or connected, capacity freed (close,
///   transfer away), an offer ended, a wrap-up ended, a category's routing changed, an admin changed
///   an agent's capacity or categories. `trigger()`
///   returns at once; one run per node at a time makes offers until the script answers `none`, and
///   a trigger during a run makes one more run (its reads come after the event's write, so no match
///   is missed whichever node routes).
/// - Offer and wrap-up deadlines live in Redis (`offers`, `agents:wrapup`, by Redis's clock). The
///   node that made an offer (or closed the conversation) sleeps until the deadline and asks the
///   script to end it; every node also checks both sets at each heartbeat (`sweep`), so a deadline
///   is kept when that node dies. The script decides; any number of nodes may ask at once.
/// - The category tree is mirrored from PostgreSQL into Redis (lua/categories_sync.lua) at start,
///   after each change through the API, and whenever the mirror is missing (Redis flushed); each
///   node keeps a copy for the audience of queue events, refreshed when a node announces a change
///   (`CATEGORIES_UPDATED`) and at each heartbeat.
final class OfferRouter: Sendable {
    let store: LiveStore
    let hub: ConnectionHub
    let postgres: PostgresPool
    let offerTimeoutMs: Int
    let logger: Logger

    /// Offers one run makes at most (then it yields; a pending trigger runs it again).
    static let maxOffersPerRun = 500

    private struct State {
        var running = false
        var again = false
    }
    private let state = NIOLockedValueBox(State())

    init(store: LiveStore, hub: ConnectionHub, postgres: PostgresPool, offerTimeoutMs: Int, logger: Logger) {
        self.store = store
        self.hub = hub
        self.postgres = postgres
        self.offerTimeoutMs = offerTimeoutMs
        self.logger = logger
    }

    // MARK: routing

    /// Something happened that can make a match: route soon (returns at once).
    func trigger() {
        let start = state.withLockedValue { state -> Bool in
            if state.running {
                state.again = true
                return false
            }
            state.running = true
            return true
        }
        guard start else { return }
        Task { await self.runUntilQuiet() }
    }

    private func runUntilQuiet() async {
        while true {
            state.withLockedValue { $0.again = false }
            await routeOnce()
            let done = state.withLockedValue { state -> Bool in
                if state.again { return false }
                state.running = false
                return true
            }
            if done { return }
        }
    }

    /// Makes offers until none can be made; returns how many it made.
    @discardableResult
    func routeOnce() async -> Int {
        var made = 0
        while made < Self.maxOffersPerRun {
            do {
                guard case .offered(let conversation, _, let expiresAt, let delay) = try await store.offerNext(timeoutMs: offerTimeoutMs) else { break }
                made += 1
                scheduleOfferExpiry(conversation, expiresAt: expiresAt, afterMs: delay)
            } catch {
                logger.warning("offer routing failed", metadata: ["error": "\(error)"])
                break
            }
        }
        return made
    }

    // MARK: deadlines

    /// Ends the offer when its time is up (by Redis's clock), then routes again.
    func scheduleOfferExpiry(_ conversationID: String, expiresAt: Int64, afterMs: Int64) {
        Task {
            var wait = afterMs
            for _ in 0..<3 {
                try? await Task.sleep(for: .milliseconds(wait + 5))
                do {
                    switch try await self.store.expireOffer(conversationID: conversationID) {
                    case .ended:
                        self.trigger()
                        return
                    case .notDue(let deadline, let now) where deadline == expiresAt:
                        wait = deadline - now  // this node's clock ran ahead of Redis's
                    default:
                        return  // answered, or a later offer with its own timer
                    }
                } catch {
                    self.logger.warning("offer expiry failed", metadata: ["error": "\(error)"])
                    return  // the heartbeat sweep ends it
                }
            }
        }
    }

    /// Ends the agent's wrap-up when its time is up (by Redis's clock), then routes again.
    func scheduleWrapUpEnd(_ agentID: String, until: Int64, afterMs: Int64) {
        Task {
            var wait = afterMs
            for _ in 0..<3 {
                try? await Task.sleep(for: .milliseconds(max(0, wait) + 5))
                do {
                    switch try await self.store.endWrapUp(agentID: agentID, early: false) {
                    case .ended:
                        self.trigger()
                        return
                    case .notDue(let due, let now) where due == until:
                        wait = due - now
                    default:
                        return
                    }
                } catch {
                    self.logger.warning("wrap-up end failed", metadata: ["error": "\(error)"])
                    return
                }
            }
        }
    }

    /// A close put the agent into wrap-up until `until` (Redis ms): its end is scheduled here.
    func closed(_ wrapUp: (agentID: String, wrapUpUntil: Int64)?) {
        trigger()
        guard let wrapUp else { return }
        Task {
            // the delay by Redis's clock, not this node's
            var now = epochMillis(Date())
            if let time = try? await self.store.redis.send("TIME") { now = self.store.redisNow(time) }
            self.scheduleWrapUpEnd(wrapUp.agentID, until: wrapUp.wrapUpUntil, afterMs: wrapUp.wrapUpUntil - now)
        }
    }

    /// At each heartbeat: ends offers and wrap-ups past their time (whichever node set them),
    /// reloads the category mirror if Redis lost it, refreshes this node's copy of the tree.
    func sweep() async {
        do {
            let ended = try await store.expireOffers() + store.expireWrapUps()
            if !(try await store.categoriesLoaded()) { try await loadCategories() }
            hub.setCategoryTree(try await store.categoryTree())
            if ended > 0 { trigger() }
        } catch {
            logger.warning("offer sweep failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: categories

    /// Mirrors every category (and the uncategorised queue) from PostgreSQL into Redis, then
    /// routes if any routing changed.
    func loadCategories() async throws {
        let changed = try await store.syncCategories(try await Self.routingRows(postgres), complete: true)
        hub.setCategoryTree(try await store.categoryTree())
        if !changed.isEmpty { trigger() }
    }

    /// After a change through the API: the mirror, this node's copy, and routing.
    func categoriesChanged() async {
        do {
            try await loadCategories()
        } catch {
            logger.warning("category mirror not updated", metadata: ["error": "\(error)"])
        }
        trigger()
    }

    /// Another node announced a change (CATEGORIES_UPDATED): refresh this node's copy.
    func refreshTree() {
        Task {
            if let tree = try? await self.store.categoryTree() { self.hub.setCategoryTree(tree) }
        }
    }

    /// Each category's parent, routing and wrap-up, and the uncategorised queue's as category 0.
    static func routingRows(_ pool: PostgresPool) async throws -> [LiveStore.CategoryRouting] {
        let rows = try await pool.query("""
            SELECT id::text AS id, coalesce(parent_id::text, '') AS parent, routing, wrap_up_s,
                   (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms FROM categories
            UNION ALL
            SELECT '0', '', routing, wrap_up_s, (extract(epoch FROM updated_at) * 1000)::bigint FROM uncategorised_queue
            """)
        return try rows.rows.map { row in
            LiveStore.CategoryRouting(id: try row.decode("id"), parent: try row.decode("parent"), routing: try row.decode("routing"),
                                      wrapUpS: try row.decode("wrap_up_s"), updatedMs: try row.decode("updated_ms"))
        }
    }
}

import Foundation
import HelpDeskCore
import Testing
@testable import HelpDeskServer

/// `ConversationView.write(to:)` (PICK's ACK, without Foundation's coder) and the API's JSON coder
/// (REST replies) give the same object.
@Suite("conversation view writer")
struct ConversationViewWriterTests {
    static func object(_ data: Data) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: data) as? NSDictionary)
    }

    @Test("every field set, and every optional left out: the same object both ways", arguments: [true, false])
    func sameAsTheCoder(full: Bool) throws {
        var view = ConversationView(
            id: "c\"1", status: "active", customer: .init(id: "7", name: "Cléo \"Q\"\n", email: full ? "c@example.com" : nil),
            agent: full ? .init(id: "3", name: "Ann") : nil, categoryId: "2", subject: "tab\there", priority: "high",
            createdAt: 1_700_000_000_000, enqueuedAt: 1_700_000_000_500, assignedAt: full ? 1_700_000_003_000 : nil,
            firstResponseAt: full ? 1_700_000_004_000 : nil, closedAt: full ? 1_700_000_009_000 : nil, resolution: full ? "done" : nil,
            escalated: full ? true : nil, rating: full ? 5 : nil, ratingComment: full ? "great" : nil, waitSeconds: full ? 2 : nil)
        if full {
            view.escalationNote = "help"
            view.escalatedAt = 1_700_000_005_000
        }
        var w = JSONWriter()
        view.write(to: &w)
        let written = try Self.object(Data(w.bytes))
        let coded = try Self.object(try JSON.encoder.encode(view))
        #expect(written == coded)
        // the optional fields really are present in one case and absent in the other
        #expect((written["agent"] != nil) == full && (written["rating_comment"] != nil) == full)
    }
}

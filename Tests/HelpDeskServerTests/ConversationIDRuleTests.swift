import HelpDeskCore
import Testing
@testable import HelpDeskServer

/// `ConversationRules.conversationID`: the check every chat message's id passes before Redis.
@Suite("conversation id rule")
struct ConversationIDRuleTests {
    @Test("a lower-case UUID comes back as it is; upper-case hex digits are lowered")
    func accepted() throws {
        #expect(try ConversationRules.conversationID("0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b") == "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")
        #expect(try ConversationRules.conversationID("0F1E2D3C-4B5A-4978-8A6B-5C4D3E2F1A0B") == "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")
    }

    @Test("anything else is refused", arguments: [
        "", "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0", "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0bb",
        "0f1e2d3c4b5a-4978-8a6b-5c4d3e2f1a0b-", "0f1e2d3c-4b5a-4978-8a6b_5c4d3e2f1a0b", "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0g",
        "-f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b", "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1aé", "0f1e2d3c 4b5a 4978 8a6b 5c4d3e2f1a0b",
        "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0\u{0}",
    ])
    func refused(_ text: String) {
        #expect(throws: HelpDeskError.self) { try ConversationRules.conversationID(text) }
    }
}

import Testing
@testable import HelpDeskCore

@Suite("field validation")
struct ValidateTests {
    @Test("e-mail addresses are normalised and checked")
    func email() throws {
        #expect(try Validate.email("  Ann@Example.COM ") == "ann@example.com")
        for bad in ["", "ann", "ann@", "@x.io", "ann@x", "a b@x.io", "ann@.x.io", String(repeating: "a", count: 250) + "@x.io"] {
            #expect(throws: HelpDeskError.self, "\(bad)") { try Validate.email(bad) }
        }
    }

    @Test("text bounds, passwords, ranges")
    func bounds() throws {
        #expect(try Validate.text("  hi ", field: "name", max: 5) == "hi")
        #expect(throws: HelpDeskError.self) { try Validate.text("   ", field: "name", max: 5) }
        #expect(throws: HelpDeskError.self) { try Validate.text("toolong", field: "name", max: 5) }
        #expect(throws: HelpDeskError.self) { try Validate.password("short") }
        #expect(throws: HelpDeskError.self) { try Validate.range(0, field: "capacity", 1...50) }
        #expect(try Validate.range(50, field: "capacity", 1...50) == 50)
    }
}

@Suite("control characters in fields")
struct ValidateControlCharacterTests {
    @Test("an e-mail with U+0000 or another control character is refused, not truncated")
    func emailControls() throws {
        for bad in ["admin@example.com\u{0}1", "admin@example.com\u{0}", "ad\u{1B}min@example.com", "admin@exa\u{7F}mple.com", "a\u{85}@x.io"] {
            #expect(throws: HelpDeskError.self, "\(bad.debugDescription)") { try Validate.email(bad) }
        }
        #expect(try Validate.email("ann@example.com") == "ann@example.com")
    }

    @Test("text fields refuse control characters but keep tabs and line breaks")
    func textControls() throws {
        for bad in ["Ann\u{0}", "A\u{0}nn", "bell\u{7}", "esc\u{1B}[31m"] {
            let error = #expect(throws: HelpDeskError.self) { try Validate.text(bad, field: "name", max: 100) }
            #expect(error?.code == .validationFailed)
        }
        #expect(try Validate.text("line one\nline\ttwo\r\n", field: "comment", max: 100) == "line one\nline\ttwo")
        #expect(try Validate.text("Zoë 🙂", field: "name", max: 100) == "Zoë 🙂")
    }
}

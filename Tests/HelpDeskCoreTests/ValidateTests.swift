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

import Foundation

/// Who a caller is to the system. Staff roles come from `users.role`; `customer` only from customer tokens.
public enum Role: String, Codable, Sendable, CaseIterable {
    case admin, supervisor, agent, customer

    /// Roles a staff account may hold.
    public static let staff: Set<Role> = [.admin, .supervisor, .agent]
}

/// The authenticated caller of a route or socket, taken from a verified token.
public struct Caller: Sendable, Equatable {
    public let id: String
    public let role: Role
    public let name: String
    /// For customers: the conversation their token is bound to.
    public let conversationID: String?
    /// When the caller's token expires (seconds since the epoch); sockets close then.
    public let expiresAt: Int
    /// A customer signed in to an account (`id` is the account id): it owns every conversation
    /// whose customer is the account, and no other. Anonymous customers (and the chat tokens an
    /// account gets when it starts a chat) are bound to `conversationID` instead.
    public let isAccount: Bool

    public init(id: String, role: Role, name: String, conversationID: String? = nil, expiresAt: Int = .max, isAccount: Bool = false) {
        self.id = id
        self.role = role
        self.name = name
        self.conversationID = conversationID
        self.expiresAt = expiresAt
        self.isAccount = role == .customer && isAccount && conversationID == nil
    }

    public init(claims: TokenClaims) throws {
        guard let role = Role(rawValue: claims.role) else { throw HelpDeskError(.unauthorized, "invalid token") }
        self.init(id: claims.sub, role: role, name: claims.name ?? "", conversationID: claims.conv, expiresAt: claims.exp,
                  isAccount: claims.acct == true)
    }

    public var isStaff: Bool { role != .customer }
}

/// Field checks shared by routes, each returning a clear `validation_failed` error.
public enum Validate {
    /// A plausible e-mail address, normalised to lower case. Control characters are refused:
    /// U+0000 would be cut off by libpq (`a@x.io\u{0}evil` matching `a@x.io` in SQL but counting
    /// as another address in Redis), and none belongs in an address.
    public static func email(_ value: String, field: String = "email") throws -> String {
        guard !value.unicodeScalars.contains(where: isControl) else {
            throw HelpDeskError(.validationFailed, "\(field) must not contain control characters")
        }
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard trimmed.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
              !parts[1].hasPrefix("."), !parts[1].hasSuffix("."), !trimmed.contains(where: { $0.isWhitespace })
        else { throw HelpDeskError(.validationFailed, "\(field) is not a valid e-mail address") }
        return trimmed
    }

    /// Non-empty text within a length, trimmed. Control characters are refused (they cannot be
    /// stored whole, or they spoof what others see), except tab and line breaks.
    public static func text(_ value: String, field: String, max: Int, min: Int = 1) throws -> String {
        guard !value.unicodeScalars.contains(where: { isControl($0) && $0 != "\n" && $0 != "\r" && $0 != "\t" }) else {
            throw HelpDeskError(.validationFailed, "\(field) must not contain control characters")
        }
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count >= min else { throw HelpDeskError(.validationFailed, "\(field) must not be empty") }
        guard trimmed.count <= max else { throw HelpDeskError(.validationFailed, "\(field) must be at most \(max) characters") }
        return trimmed
    }

    /// A password of reasonable length (scrypt does not care about length, but a 1 MB password is abuse).
    public static func password(_ value: String) throws -> String {
        guard value.count >= 8 else { throw HelpDeskError(.validationFailed, "password must be at least 8 characters") }
        guard value.utf8.count <= 256 else { throw HelpDeskError(.validationFailed, "password must be at most 256 bytes") }
        return value
    }

    /// C0 and C1 controls and DEL (Unicode general category Cc), U+0000 among them.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// An integer within bounds.
    public static func range(_ value: Int, field: String, _ bounds: ClosedRange<Int>) throws -> Int {
        guard bounds.contains(value) else {
            throw HelpDeskError(.validationFailed, "\(field) must be between \(bounds.lowerBound) and \(bounds.upperBound)")
        }
        return value
    }
}

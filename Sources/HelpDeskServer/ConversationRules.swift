import HelpDeskCore

/// Checks shared by the REST routes and the socket events on conversations.
enum ConversationRules {
    /// A customer token grants one conversation, never a later one of the same e-mail. A customer
    /// account's token passes here: it owns every conversation whose customer id is the account
    /// id, and the scripts (send, reopen, calls) check exactly that.
    static func requireOwnConversation(_ caller: Caller, _ id: String) throws {
        if caller.role == .customer, !caller.isAccount, caller.conversationID != id { throw HelpDeskError(.forbidden, "not your conversation") }
    }

    /// Conversation ids are lower-case UUIDs; anything else is refused before it reaches Redis.
    static func conversationID(_ text: String) throws -> String {
        // Checked in place (this runs for every chat message): a copy only to lower-case one.
        var upperCase = false, valid = text.utf8.count == 36
        if valid {
            for (i, b) in text.utf8.enumerated() {
                switch (i, b) {
                case (8, 45), (13, 45), (18, 45), (23, 45): continue
                case (8, _), (13, _), (18, _), (23, _): valid = false
                case (_, 48...57), (_, 97...102): continue
                case (_, 65...70): upperCase = true
                default: valid = false
                }
                if !valid { break }
            }
        }
        guard valid else { throw HelpDeskError(.validationFailed, "conversation_id is not a conversation id") }
        return upperCase ? String(decoding: text.utf8.map { (65...70).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self) : text
    }

    /// The most bytes a message's text may have (UTF-8: what Redis and PostgreSQL store).
    static let maxMessageBytes = 16 * 1024

    /// Without leading and trailing white space (Unicode's White_Space, as Foundation's
    /// `.whitespacesAndNewlines`), without a Foundation call on the message path.
    static func trimmed(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        if first == scalars.startIndex && scalars.index(after: last) == scalars.endIndex { return s }
        return String(scalars[first...last])
    }

    /// The most characters a message's text may have.
    static let maxMessageCharacters = 4000

    struct Message {
        var text: String
        var clientMsgID: String
        var isInternal: Bool
    }

    /// Checks a message's text (length in characters and in UTF-8 bytes), client id and internal flag.
    /// `allowEmptyText`: the message carries attachments, so it may have no text.
    static func validMessage(text rawText: String, clientMsgID: String, isInternal: Bool?, caller: Caller, allowEmptyText: Bool = false) throws -> Message {
        let text = trimmed(rawText)
        guard !text.isEmpty || allowEmptyText else { throw HelpDeskError(.validationFailed, "text must not be empty") }
        // Characters are never more than bytes: count them (O(n)) only when the bytes could pass.
        guard text.utf8.count <= maxMessageBytes, text.utf8.count <= maxMessageCharacters || text.count <= maxMessageCharacters else {
            throw HelpDeskError(.validationFailed, "text must be at most \(maxMessageCharacters) characters and \(maxMessageBytes) bytes")
        }
        guard (1...100).contains(clientMsgID.utf8.count) else { throw HelpDeskError(.validationFailed, "client_msg_id must be 1 to 100 characters") }
        let isInternal = isInternal ?? false
        if isInternal && !caller.isStaff { throw HelpDeskError(.forbidden, "customers cannot send internal notes") }
        return Message(text: text, clientMsgID: clientMsgID, isInternal: isInternal)
    }
}

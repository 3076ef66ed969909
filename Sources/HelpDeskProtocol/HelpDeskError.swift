/// The one error type that leaves the server: a stable code, a human message, and the HTTP status
/// it maps to. WebSocket `ERROR` events carry the same code and message.
public struct HelpDeskError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Every code a client may see. README lists them; keep the two in step.
    public enum Code: String, Sendable, CaseIterable {
        case badRequest = "bad_request"
        case invalidJSON = "invalid_json"
        case validationFailed = "validation_failed"
        case payloadTooLarge = "payload_too_large"
        case unauthorized = "unauthorized"
        case invalidCredentials = "invalid_credentials"
        case tokenExpired = "token_expired"
        case forbidden = "forbidden"
        case notFound = "not_found"
        case conflict = "conflict"
        case rateLimited = "rate_limited"
        case alreadyPicked = "already_picked"
        case atCapacity = "at_capacity"
        case conversationClosed = "conversation_closed"
        /// The conversation holds as many messages as a conversation may (start a new chat).
        case conversationFull = "conversation_full"
        case busy = "busy"
        /// An upload over `HELPDESK_ATTACHMENT_MAX_BYTES`.
        case attachmentTooLarge = "attachment_too_large"
        /// An upload whose type is not allowed, or whose bytes are not of the type it claims.
        case unsupportedMediaType = "unsupported_media_type"
        case unknownEvent = "unknown_event"
        case unavailable = "unavailable"
        case internalError = "internal_error"

        /// The HTTP status a REST route answers with.
        public var httpStatus: Int {
            switch self {
            case .badRequest, .invalidJSON, .validationFailed, .payloadTooLarge, .unknownEvent: return 400
            case .unauthorized, .invalidCredentials, .tokenExpired: return 401
            case .forbidden: return 403
            case .notFound: return 404
            case .conflict, .alreadyPicked, .atCapacity, .conversationClosed, .conversationFull, .busy: return 409
            case .attachmentTooLarge: return 413
            case .unsupportedMediaType: return 415
            case .rateLimited: return 429
            case .unavailable: return 503
            case .internalError: return 500
            }
        }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

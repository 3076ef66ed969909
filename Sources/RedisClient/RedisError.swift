/// The one error type of the Redis client, with a code from a closed set.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Redis answered with an error reply (`-ERR ...`, `-NOSCRIPT ...`).
        case serverError
        /// The bytes from the server were not valid RESP.
        case protocolError
        /// The connection closed, or could not be made.
        case connectionClosed
        /// No reply within the command timeout.
        case timeout
        /// A URL or argument we cannot use.
        case invalidArgument
        /// A reply of a type the caller did not expect.
        case unexpectedReply
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// For server errors: the first word of the reply (`NOSCRIPT`, `WRONGTYPE`, `ERR`, ...).
    public var serverErrorPrefix: Substring? {
        guard code == .serverError else { return nil }
        return message.split(separator: " ", maxSplits: 1).first
    }

    public var description: String { "RedisError(\(code.rawValue)): \(message)" }
}

/// One RESP2 reply as decoded by hiredis's reader.
///
/// hiredis 0.14 folds a nil bulk string and a nil array into one NIL type, so there is one `null`.
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    case array([RESPValue])
    case null

    /// The value as text: bulk and simple strings, and integers in decimal.
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// The value as an integer: integer replies and strings holding a decimal number.
    public var int: Int? {
        switch self {
        case .integer(let i): return Int(i)
        case .bulkString, .simpleString: return self.string.flatMap { Int($0) }
        default: return nil
        }
    }

    /// The elements of an array reply; `nil` for anything else.
    public var array: [RESPValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }
}

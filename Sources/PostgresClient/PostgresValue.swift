import Foundation

/// A Swift value sent as a query parameter, in PostgreSQL's text format.
public protocol PostgresEncodable: Sendable {
    var postgresText: String { get }
}

/// A Swift value read from a result column given in PostgreSQL's text format.
public protocol PostgresDecodable {
    init(postgresText: String) throws
}

extension String: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { self }
    public init(postgresText: String) { self = postgresText }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init(postgresText: String) throws {
        guard let value = Int(postgresText) else { throw PostgresError(.decodingFailed, "not an integer: \(postgresText)") }
        self = value
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init(postgresText: String) throws {
        guard let value = Int64(postgresText) else { throw PostgresError(.decodingFailed, "not an integer: \(postgresText)") }
        self = value
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init(postgresText: String) throws {
        guard let value = Double(postgresText) else { throw PostgresError(.decodingFailed, "not a number: \(postgresText)") }
        self = value
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { self ? "t" : "f" }
    public init(postgresText: String) throws {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw PostgresError(.decodingFailed, "not a boolean: \(postgresText)")
        }
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { uuidString.lowercased() }
    public init(postgresText: String) throws {
        guard let value = UUID(uuidString: postgresText) else { throw PostgresError(.decodingFailed, "not a uuid: \(postgresText)") }
        self = value
    }
}

extension Date: PostgresEncodable, PostgresDecodable {
    /// Sent as ISO text in UTC with microseconds, which `timestamptz` parses exactly.
    /// Rounded to the nearest microsecond: a Date made from milliseconds (`.123`) is rarely exact in
    /// binary (`.12299990...`), and truncating would store the microsecond before it.
    public var postgresText: String {
        // Outside the years 1-9999 (and for a non-finite time) PostgreSQL's own infinities, which
        // compare as expected: converting such a time to microseconds would overflow and trap.
        let t = timeIntervalSince1970
        guard t.isFinite, t >= -62_135_596_800 else { return "-infinity" }
        guard t < 253_402_300_800 else { return "infinity" }
        let micros = Int64((t * 1_000_000).rounded())
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 { seconds -= 1; fraction += 1_000_000 }
        let c = Calendar.utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
                      c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0, Int(fraction))
    }

    /// Parses `timestamptz` text as PostgreSQL prints it in ISO style: `2026-11-22 00:31:24.123456+00`.
    public init(postgresText text: String) throws {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var n = 0
            for b in bytes[range] {
                guard b >= 48 && b <= 57 else { return nil }
                n = n * 10 + Int(b - 48)
            }
            return n
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { throw PostgresError(.decodingFailed, "not a timestamp: \(text)") }
        var index = 19
        var fraction = 0.0
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
        }
        var offsetSeconds = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            let hours = number(index + 1 ..< index + 3) ?? 0
            let minutes = (index + 3 < bytes.count && bytes[index + 3] == UInt8(ascii: ":")) ? (number(index + 4 ..< index + 6) ?? 0) : 0
            offsetSeconds = sign * (hours * 3600 + minutes * 60)
        }
        var components = DateComponents()
        (components.year, components.month, components.day) = (year, month, day)
        (components.hour, components.minute, components.second) = (hour, minute, second)
        guard let date = Calendar.utc.date(from: components) else { throw PostgresError(.decodingFailed, "not a timestamp: \(text)") }
        self = date.addingTimeInterval(fraction - TimeInterval(offsetSeconds))
    }
}

extension Calendar {
    static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()
}

/// One row of a result, its values in text format.
public struct PostgresRow: Sendable {
    public let values: [String?]
    let columns: PostgresColumns

    /// The value of a column decoded as `T`; a NULL is an error unless `T` is optional (use `optional`).
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let text = try raw(column) else { throw PostgresError(.decodingFailed, "column \(column) is NULL") }
        return try T(postgresText: text)
    }

    /// The value of a column decoded as `T`, or nil for NULL.
    public func optional<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let text = try raw(column) else { return nil }
        return try T(postgresText: text)
    }

    /// The text of a column, nil for NULL.
    public func raw(_ column: String) throws -> String? {
        guard let index = columns.index[column] else { throw PostgresError(.decodingFailed, "no column \(column) in result") }
        return values[index]
    }
}

/// Column names of a result, shared by its rows.
public final class PostgresColumns: Sendable {
    public let names: [String]
    let index: [String: Int]
    init(names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        for (i, name) in names.enumerated() where index[name] == nil { index[name] = i }
        self.index = index
    }
}

/// The result of one statement.
public struct PostgresRows: Sendable {
    public let rows: [PostgresRow]
    /// Rows inserted, updated or deleted (PQcmdTuples), 0 when not applicable.
    public let affectedRows: Int

    public var first: PostgresRow? { rows.first }
    public var isEmpty: Bool { rows.isEmpty }
}

/// An array parameter in PostgreSQL's text format (`{"a","b",NULL}`), for
/// `INSERT ... SELECT FROM unnest($1::text[], ...)`: many rows in one statement and one round trip.
/// Every element is quoted, so commas, braces, quotes, backslashes and spaces round-trip exactly.
public struct PostgresArray: PostgresEncodable {
    public let elements: [String?]

    public init(_ elements: [String?]) {
        self.elements = elements
    }

    public init<T: PostgresEncodable>(_ values: [T]) {
        self.elements = values.map(\.postgresText)
    }

    public init<T: PostgresEncodable>(_ values: [T?]) {
        self.elements = values.map { $0?.postgresText }
    }

    public var postgresText: String {
        var out = "{"
        out.reserveCapacity(elements.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (i, element) in elements.enumerated() {
            if i > 0 { out += "," }
            guard let element else { out += "NULL"; continue }
            out += "\""
            // Only `"` and `\` need a backslash inside a quoted element.
            if element.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                for scalar in element.unicodeScalars {
                    if scalar == "\"" || scalar == "\\" { out.unicodeScalars.append("\\") }
                    out.unicodeScalars.append(scalar)
                }
            } else {
                out += element
            }
            out += "\""
        }
        out += "}"
        return out
    }
}

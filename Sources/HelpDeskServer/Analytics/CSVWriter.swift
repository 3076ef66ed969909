/// CSV text (RFC 4180: comma separated, CRLF line ends, fields holding a comma, quote, CR or LF
/// quoted with inner quotes doubled) that is safe to open in a spreadsheet: a text cell starting
/// with `=`, `+`, `-`, `@`, a tab or a CR would be read as a formula (OWASP "CSV injection"), so
/// it gets a leading `'`. Numbers we format ourselves are written as they are.
struct CSVWriter {
    private(set) var text = ""

    init(header: [String]) {
        row(header.map { .text($0) })
    }

    enum Cell {
        case text(String)
        case number(String)
        case empty
    }

    mutating func row(_ cells: [Cell]) {
        for (i, cell) in cells.enumerated() {
            if i > 0 { text += "," }
            switch cell {
            case .text(let s): text += Self.field(s)
            case .number(let s): text += s
            case .empty: break
            }
        }
        text += "\r\n"
    }

    /// One text field: formula-neutralised, then quoted if needed.
    static func field(_ raw: String) -> String {
        var s = raw
        if let first = s.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first) { s = "'" + s }
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

import Foundation

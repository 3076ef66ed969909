import Foundation
import HelpDeskCore
import Logging
import NIOConcurrencyHelpers

/// `HELPDESK_LOG_FORMAT=json`: one JSON object per line, for log shippers (Loki, Elasticsearch,
/// CloudWatch). Hand-written: none of the Swift packages on our build machines ships a JSON
/// `LogHandler` for swift-log, and the line is built with `JSONWriter` (no Foundation coders:
/// the access log writes one line per request).
///
/// A line: `{"ts":"2026-11-22T10:00:00.123Z","level":"info","label":"helpdesk","message":"...",
/// "request_id":"...","node":"...",<other metadata>,"source":"HelpDeskServer"}`. Hummingbird's
/// `hb.request.id` is written as `request_id`. Metadata values are strings, or arrays/objects of them.
public struct JSONLogHandler: LogHandler {
    public typealias Sink = @Sendable (String) -> Void

    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let sink: Sink

    /// Lines go to `sink` (standard output by default).
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil, sink: @escaping Sink = JSONLogHandler.standardOutput) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        if let error = event.error, merged["error"] == nil { merged["error"] = .string("\(error)") }
        sink(Self.line(timestamp: Date(), level: event.level, label: label, message: event.message.description,
                       metadata: merged, source: event.source))
    }

    /// The line for one event (without the newline). Keys are sorted, so lines are stable.
    static func line(timestamp: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, source: String) -> String {
        var w = JSONWriter(capacity: 256)
        w.raw("{")
        w.key("ts"); w.string(Self.iso8601(timestamp))
        w.raw(","); w.key("level"); w.string(level.rawValue)
        w.raw(","); w.key("label"); w.string(label)
        w.raw(","); w.key("message"); w.string(message)
        // The fixed keys win; a metadata key of the same name is written with a `meta.` prefix.
        let fields = metadata.map { key, value -> (String, Logger.Metadata.Value) in
            let name = key == "hb.request.id" ? "request_id" : key
            return (["ts", "level", "label", "message", "source"].contains(name) ? "meta." + name : name, value)
        }.sorted { $0.0 < $1.0 }
        for (name, value) in fields {
            w.raw(",")
            w.string(name)
            w.raw(":")
            Self.write(value, into: &w)
        }
        w.raw(","); w.key("source"); w.string(source)
        w.raw("}")
        return w.text
    }

    static func write(_ value: Logger.Metadata.Value, into w: inout JSONWriter) {
        switch value {
        case .string(let s): w.string(s)
        case .stringConvertible(let c): w.string(c.description)
        case .array(let items):
            w.raw("[")
            for (i, item) in items.enumerated() {
                if i > 0 { w.raw(",") }
                write(item, into: &w)
            }
            w.raw("]")
        case .dictionary(let pairs):
            w.raw("{")
            for (i, key) in pairs.keys.sorted().enumerated() {
                if i > 0 { w.raw(",") }
                w.string(key)
                w.raw(":")
                write(pairs[key]!, into: &w)
            }
            w.raw("}")
        }
    }

    /// `2026-11-22T10:00:00.123Z` (UTC, milliseconds), without a date formatter.
    static func iso8601(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ n: Int32, _ width: Int) -> String {
            let s = String(n)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ms % 1000), 3))Z"
    }

    private static let outputLock = NIOLock()

    /// Writes the line and a newline to standard output in one `write`, under a lock, so lines
    /// of concurrent tasks never interleave.
    public static let standardOutput: Sink = { line in
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        outputLock.withLock {
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Foundation.write(1, buffer.baseAddress! + offset, buffer.count - offset)
                    if n <= 0 { if errno == EINTR { continue } else { return } }
                    offset += n
                }
            }
        }
    }
}

/// `HELPDESK_LOG_FORMAT`: `text` (swift-log's default lines) or `json` (`JSONLogHandler`).
public enum LogFormat: String, Sendable {
    case text, json

    /// Sets up the process's logging system once, at start-up.
    public func bootstrap() {
        switch self {
        case .text: break
        case .json: LoggingSystem.bootstrap({ label, provider in JSONLogHandler(label: label, metadataProvider: provider) }, metadataProvider: nil)
        }
    }
}

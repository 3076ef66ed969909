#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the few fields the benches need straight from a frame's bytes, without a JSON parser:
/// the bench must cost far less per message than the server it measures. It relies only on
/// JSON itself (an unescaped `"key"` followed by `:` is a key, since quotes inside string values
/// are escaped), not on key order or spacing, so new fields in the protocol do not break it.
enum FrameScan {
    private static let eventKey = Array(#""event""#.utf8)
    private static let textKey = Array(#""text""#.utf8)
    private static let codeKey = Array(#""code""#.utf8)

    /// The frame's kind, from its `"event"` value.
    static func kind(of frame: UnsafeRawBufferPointer) -> FrameKind {
        guard let value = stringValue(eventKey, in: frame) else { return .other }
        switch value.count {
        case 11 where equals(frame, value, "NEW_MESSAGE"): return .newMessage
        case 3 where equals(frame, value, "ACK"): return .ack
        case 5 where equals(frame, value, "ERROR"): return .error
        case 5 where equals(frame, value, "HELLO"): return .hello
        default: return .other
        }
    }

    /// The digits of the message's `"text"` (the relay bench sends its send time there) as a number.
    static func textNumber(in frame: UnsafeRawBufferPointer) -> UInt64? {
        guard let value = stringValue(textKey, in: frame), !value.isEmpty else { return nil }
        var number: UInt64 = 0
        for i in value {
            let digit = frame[i] &- 48
            guard digit < 10 else { return nil }
            number = number &* 10 &+ UInt64(digit)
        }
        return number
    }

    /// The `"code"` of an ERROR frame, as a string (rare frames: allocation is fine here).
    static func errorCode(in frame: UnsafeRawBufferPointer) -> String {
        guard let value = stringValue(codeKey, in: frame) else { return "" }
        return String(decoding: UnsafeRawBufferPointer(rebasing: frame[value]), as: UTF8.self)
    }

    /// The byte range of the first string value of `key` (given with its quotes), if any.
    static func stringValue(_ key: [UInt8], in frame: UnsafeRawBufferPointer) -> Range<Int>? {
        var from = 0
        while from < frame.count {
            guard let found = find(key, in: frame, from: from) else { return nil }
            var i = found + key.count
            from = i
            while i < frame.count, frame[i] == 32 { i += 1 }
            guard i < frame.count, frame[i] == UInt8(ascii: ":") else { continue }
            i += 1
            while i < frame.count, frame[i] == 32 { i += 1 }
            guard i < frame.count, frame[i] == UInt8(ascii: "\"") else { return nil }
            let start = i + 1
            var end = start
            while end < frame.count, frame[end] != UInt8(ascii: "\"") {
                end += frame[end] == UInt8(ascii: "\\") ? 2 : 1
            }
            return end <= frame.count ? start..<end : nil
        }
        return nil
    }

    /// The offset of `needle` in `frame` at or after `from`: memchr for its first byte, then a
    /// compare (Glibc does not export memmem to Swift).
    static func find(_ needle: [UInt8], in frame: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard let base = frame.baseAddress, let first = needle.first else { return nil }
        var at = from
        while at + needle.count <= frame.count {
            guard let hit = memchr(base + at, Int32(first), frame.count - at - needle.count + 1) else { return nil }
            let offset = base.distance(to: UnsafeRawPointer(hit))
            if needle.withUnsafeBytes({ memcmp(base + offset, $0.baseAddress!, needle.count) }) == 0 { return offset }
            at = offset + 1
        }
        return nil
    }

    private static func equals(_ frame: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let bytes = literal.utf8Start
        for (offset, i) in range.enumerated() where frame[i] != bytes[offset] { return false }
        return true
    }
}

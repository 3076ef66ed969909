import CLibFuzzer
import Foundation
import HelpDeskProtocol

/// SwiftPM gives this target a Swift main; it hands over to libFuzzer's driver.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzClientFrame(data, size) })

/// libFuzzer target: the client-frame reader (`JSONValue.parse`, `ClientFrame(text:)`).
///
/// Every frame a socket sends goes through this code before anything else, so beyond "no crash"
/// it checks what the rest of the server relies on:
/// - only valid UTF-8 is ever accepted, the byte and the String entry points agree, and nothing
///   nests deeper than the documented bound (32);
/// - a parsed value written back with `JSONWriter` parses to the same value, scalar for scalar
///   (what the server writes, it reads), and writing it again gives the same bytes;
/// - differential against Foundation's `JSONSerialization`: what ours accepts, Foundation accepts
///   with the same content; what Foundation writes, ours reads (Foundation itself is lenient,
///   trailing commas, a BOM, so its *input* is no oracle for what must be refused);
/// - `ClientFrame` accepts exactly the objects with a string `event`, refuses the rest with
///   `invalid_json` / `validation_failed`, and its typed accessors never trap.
/// A broken invariant calls `fatalError`, which libFuzzer reports as a crash with the input saved.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientFrame(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: start?.assumingMemoryBound(to: UInt8.self), count: count)
    let fromBytes = try? JSONValue.parse(bytes)
    let validUTF8 = String(validating: bytes, as: UTF8.self)
    if fromBytes != nil, validUTF8 == nil { fail("accepted invalid UTF-8", bytes) }
    // WebSocket text frames are valid UTF-8 by the time they reach us; repair the rest the way
    // a decoder would and carry on with that text.
    let text = validUTF8 ?? String(decoding: bytes, as: UTF8.self)
    let parsed: JSONValue?
    do { parsed = try JSONValue.parse(text) } catch { parsed = nil }
    if validUTF8 != nil, !sameOptional(fromBytes, parsed) { fail("bytes and String entry points disagree", bytes) }

    if let value = parsed {
        if nesting(value) > 32 { fail("nested deeper than maxDepth", bytes) }
        checkRoundTrip(value, bytes)
        checkAgainstFoundation(value, text, bytes)
    } else {
        checkFoundationOutputReadable(text, bytes)
    }
    checkClientFrame(text, parsed, bytes)
    return 0
}

func fail(_ what: String, _ bytes: UnsafeBufferPointer<UInt8>) -> Never {
    let shown = String(decoding: bytes.prefix(400), as: UTF8.self).debugDescription
    fatalError("FuzzClientFrame: \(what); input (\(bytes.count) bytes): \(shown)")
}

// MARK: JSONWriter round trip

func checkRoundTrip(_ value: JSONValue, _ input: UnsafeBufferPointer<UInt8>) {
    var writer = JSONWriter()
    writer.value(value)
    let written = writer.text
    guard let reparsed = try? JSONValue.parse(written) else { fail("JSONWriter output does not parse: \(written.prefix(200))", input) }
    if !same(value, reparsed) { fail("JSONWriter round trip changed the value: \(written.prefix(200))", input) }
    var again = JSONWriter()
    again.value(reparsed)
    if again.bytes != writer.bytes { fail("JSONWriter is not stable on its own output", input) }
}

/// Structural equality with strings compared scalar by scalar (`JSONValue ==` uses `String ==`,
/// canonical equivalence: "é" equals "e\u{301}", but a round trip must not even do that).
func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.null, .null): return true
    case (.bool(let x), .bool(let y)): return x == y
    case (.number(let x), .number(let y)): return x == y
    case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { $0.0.unicodeScalars.elementsEqual($1.0.unicodeScalars) && same($0.1, $1.1) }
    default: return false
    }
}

func sameOptional(_ a: JSONValue?, _ b: JSONValue?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (let x?, let y?): return same(x, y)
    default: return false
    }
}

func nesting(_ value: JSONValue) -> Int {
    switch value {
    case .array(let items): return 1 + (items.map(nesting).max() ?? 0)
    case .object(let pairs): return 1 + (pairs.map { nesting($0.1) }.max() ?? 0)
    default: return 0
    }
}

// MARK: Foundation differential

func checkAgainstFoundation(_ value: JSONValue, _ text: String, _ input: UnsafeBufferPointer<UInt8>) {
    // Foundation's defect, not ours (found by this target): JSONSerialization drops a raw U+FEFF
    // in some places of a string (at its start, right after an escape sequence, and more that
    // the fuzzer keeps finding), so keys "\u{FEFF}k" and "k" even collide. Ours keeps every
    // scalar, as RFC 8259 says. Foundation is no oracle for such text: it is not compared (the
    // round trip and UTF-8 checks above still hold for it).
    if text.unicodeScalars.contains("\u{FEFF}") { return }
    let theirs: Any
    do {
        theirs = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    } catch {
        fail("ours accepts, Foundation refuses (\(error))", input)
    }
    if !matches(value, theirs) { fail("ours and Foundation read different content: \(theirs)", input) }
}

/// Does our value hold what Foundation read? Objects compare as Foundation sees them: keys
/// unordered, a repeated key's last value wins.
func matches(_ ours: JSONValue, _ theirs: Any) -> Bool {
    switch ours {
    case .null:
        return theirs is NSNull
    case .bool(let b):
        guard let n = theirs as? NSNumber, isBoolean(n) else { return false }
        return n.boolValue == b
    case .number(let d):
        guard let n = theirs as? NSNumber, !isBoolean(n) else { return false }
        if n is NSDecimalNumber {
            // Past 64-bit integers Foundation keeps a Decimal (38 digits) whose conversion to
            // Double may be off by an ulp or so; ours is correctly rounded.
            return d == n.doubleValue || abs(d - n.doubleValue) <= abs(d) * 1e-14
        }
        return d == n.doubleValue
    case .string(let s):
        guard let t = theirs as? String else { return false }
        return sameScalars(s, t)
    case .array(let items):
        guard let t = theirs as? [Any], t.count == items.count else { return false }
        return zip(items, t).allSatisfy { matches($0, $1) }
    case .object(let pairs):
        guard let t = theirs as? [String: Any] else { return false }
        return sameObject(pairs, t)
    }
}

func sameObject(_ pairs: [(String, JSONValue)], _ theirs: [String: Any]) -> Bool {
    var lastWins: [String: JSONValue] = [:]
    for (k, v) in pairs { lastWins[k] = v }
    var theirsByKey: [String: Any] = [:]
    for (k, v) in theirs { theirsByKey[k] = v }
    guard lastWins.count == theirsByKey.count else { return false }
    return lastWins.allSatisfy { k, v in theirsByKey[k].map { matches(v, $0) } ?? false }
}

func sameScalars(_ a: String, _ b: String) -> Bool { a.unicodeScalars.elementsEqual(b.unicodeScalars) }

func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

/// When ours refuses what Foundation accepts, Foundation may just be lenient; but what Foundation
/// *writes* is strict JSON, and ours must read it unless it is past one of our own documented
/// bounds (32 levels, numbers of 64 characters, finite doubles).
func checkFoundationOutputReadable(_ text: String, _ input: UnsafeBufferPointer<UInt8>) {
    guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]),
          let data = try? JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed]) else { return }
    let written = String(decoding: data, as: UTF8.self)
    do {
        _ = try JSONValue.parse(written)
    } catch {
        if error.reason == "nested too deeply" { return }
        if error.reason == "invalid number", numberToken(in: data, at: error.offset).count > 64 { return }
        fail("ours refuses Foundation's own output \(written.prefix(200).debugDescription) (\(error))", input)
    }
}

func numberToken(in data: Data, at offset: Int) -> Data {
    var start = offset
    let bytes = [UInt8](data)
    let numberChars = Set("-+.eE0123456789".utf8)
    while start > 0, numberChars.contains(bytes[start - 1]) { start -= 1 }
    var end = offset
    while end < bytes.count, numberChars.contains(bytes[end]) { end += 1 }
    return Data(bytes[start..<end])
}

// MARK: ClientFrame

func checkClientFrame(_ text: String, _ parsed: JSONValue?, _ input: UnsafeBufferPointer<UInt8>) {
    do {
        let frame = try ClientFrame(text: text)
        guard let root = parsed, case .object = root, let event = root["event"]?.string else {
            fail("ClientFrame accepted a frame that is not an object with a string event", input)
        }
        if !frame.eventName.unicodeScalars.elementsEqual(event.unicodeScalars) { fail("event name changed", input) }
        if frame.event?.rawValue != nil, frame.event?.rawValue != frame.eventName { fail("event enum disagrees with its name", input) }
        if let ref = frame.ref, ref.count > 100 { fail("ref longer than 100 characters", input) }
        switch frame.data {
        case .object, .null: break
        default: fail("data is neither an object nor null", input)
        }
        // The accessors every event handler uses: they may refuse, never trap.
        for key in ["conversation_id", "text", "client_msg_id", "last_message_id", "typing", "internal", "signal", "status", "call_id", "media", ""] {
            _ = try? frame.string(key)
            _ = try? frame.optionalString(key)
            _ = try? frame.bool(key)
            _ = try? frame.optionalBool(key)
            _ = try? frame.object(key)
        }
        if case .object(let pairs) = frame.data {
            for (key, value) in pairs.prefix(16) {
                _ = try? frame.string(key)
                _ = try? frame.object(key)
                _ = value.int
                _ = value.array
            }
        }
    } catch {
        switch error.code {
        case .invalidJSON:
            if let root = parsed, case .object = root, root["event"]?.string != nil {
                fail("ClientFrame refused an object with a string event as invalid_json", input)
            }
        case .validationFailed:
            guard let root = parsed, let data = root["data"] else { fail("validation_failed without a data field", input) }
            switch data {
            case .object, .null: fail("validation_failed for an object or null data", input)
            default: break
            }
        default:
            fail("unexpected error code \(error.code)", input)
        }
    }
}

import Foundation
import Testing
@testable import HelpDeskProtocol

@Suite("JSON reader and writer")
struct JSONValueTests {
    @Test("parses what Foundation parses, with the same values")
    func matchesFoundation() throws {
        let samples = [
            #"{"event":"SEND_MESSAGE","data":{"conversation_id":"x","text":"h\u00e9llo \ud83d\ude00 \"q\" \\ \/ \n","n":-12.5e2,"ok":true,"nil":null,"a":[1,2,[3]]},"ref":"r1"}"#,
            #"  [ ]  "#, #"{}"#, #""\u0000""#, "0", "-0.0", "1e-3",
        ]
        for sample in samples {
            let ours = try JSONValue.parse(sample)
            let theirs = try JSONSerialization.jsonObject(with: Data(sample.utf8), options: [.fragmentsAllowed])
            #expect(Self.same(ours, theirs), "\(sample)")
        }
    }

    static func same(_ value: JSONValue, _ other: Any) -> Bool {
        switch value {
        case .null: return other is NSNull
        case .bool(let b): return (other as? Bool) == b
        case .number(let d): return (other as? NSNumber)?.doubleValue == d
        case .string(let s): return other as? String == s
        case .array(let items):
            guard let a = other as? [Any], a.count == items.count else { return false }
            return zip(items, a).allSatisfy { same($0, $1) }
        case .object(let pairs):
            guard let o = other as? [String: Any], o.count == pairs.count else { return false }
            return pairs.allSatisfy { k, v in o[k].map { same(v, $0) } ?? false }
        }
    }

    @Test("refuses what is not JSON", arguments: [
        "", "{", "{\"a\"}", "{\"a\":}", "[1,]", "{\"a\":1,}", "tru", "nul", "01", "1.", "-", "1e", "\"\\x\"", "\"\u{1}\"",
        "\"\\ud800\"", "\"\\udc00x\"", "{\"a\":1} x", "[1 2]", "'a'", "NaN", "1e999",
    ])
    func refusesInvalid(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test("nesting is bounded")
    func depthBound() throws {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        _ = try JSONValue.parse(String(repeating: "[", count: 30) + String(repeating: "]", count: 30))
    }

    @Test("the writer's output is read back unchanged")
    func writerRoundTrip() throws {
        let value = JSONValue.object([("s", .string("a\"b\\c\n\u{1}é😀")), ("n", .number(42)), ("f", .number(1.5)), ("b", .bool(false)),
                                      ("z", .null), ("a", .array([.string("x"), .object([])]))])
        var w = JSONWriter()
        w.value(value)
        #expect(try JSONValue.parse(w.text) == value)
        _ = try JSONSerialization.jsonObject(with: Data(w.text.utf8))
    }
}

@Suite("Client frames and server frames")
struct FrameTests {
    @Test("a client frame gives its event, ref and typed fields, with clear errors")
    func clientFrame() throws {
        let frame = try ClientFrame(text: #"{"event":"SEND_MESSAGE","ref":"r1","data":{"conversation_id":"c","text":"hi","internal":true}}"#)
        #expect(frame.event == .sendMessage && frame.ref == "r1")
        #expect(try frame.string("text") == "hi")
        #expect(try frame.optionalBool("internal") == true)
        #expect(throws: HelpDeskError(.validationFailed, "client_msg_id is required")) { try frame.string("client_msg_id") }
        #expect(throws: HelpDeskError(.validationFailed, "internal must be a string")) { try frame.string("internal") }
        let unknown = try ClientFrame(text: #"{"event":"NOPE"}"#)
        #expect(unknown.event == nil && unknown.eventName == "NOPE")
        for bad in ["[]", "{\"data\":{}}", "{\"event\":1}", "not json"] {
            #expect(throws: HelpDeskError.self) { try ClientFrame(text: bad) }
        }
        #expect(throws: HelpDeskError.self) { try ClientFrame(text: #"{"event":"PING","data":[1]}"#) }
    }

    @Test("server frames built by hand are valid JSON with the envelope's fields")
    func serverFrames() throws {
        let error = try JSONValue.parse(ServerFrame.error(HelpDeskError(.forbidden, "no \"way\""), ref: "r\n"))
        #expect(error["event"]?.string == "ERROR" && error["ref"]?.string == "r\n")
        #expect(error["data"]?["code"]?.string == "forbidden" && error["data"]?["message"]?.string == "no \"way\"")
        let pong = try JSONValue.parse(ServerFrame.pong(ref: nil))
        #expect(pong["event"]?.string == "PONG" && pong["ref"] == nil)
    }

    @Test("the pub/sub header is read without touching the frame")
    func pubSubHeader() throws {
        let payload = "msg|s|1700000000000-3\n{\"event\":\"NEW_MESSAGE\",\"data\":{\"x\":\"a|b\\n\"}}"
        let header = try #require(PubSubEnvelope.parseHeader(Array(payload.utf8)))
        #expect(header.kind == .message && header.audience == .staff && header.key == "1700000000000-3")
        #expect(String(decoding: Array(payload.utf8)[header.frameStart...], as: UTF8.self).hasPrefix("{\"event\":\"NEW_MESSAGE\""))
        let envelope = try #require(PubSubEnvelope.parse(payload))
        #expect(envelope.payload == payload)
        #expect(header.origin == nil)
        // The sending socket that asked for no echo: `/origin`, at the end of the key.
        let fromSocket = "msg|a|1700000000000-4/n0a1b.17\n{}"
        let withOrigin = try #require(PubSubEnvelope.parseHeader(Array(fromSocket.utf8)))
        #expect(withOrigin.key == "1700000000000-4" && withOrigin.frameStart == fromSocket.utf8.count - 2)
        #expect(withOrigin.origin.map { String(decoding: Array(fromSocket.utf8)[$0], as: UTF8.self) } == "n0a1b.17")
        #expect(PubSubEnvelope.parse(fromSocket)?.payload == fromSocket)
        // What a node of the release before reads as the key: not a stream id, so it delivers the
        // message to everyone (no cursor) instead of dropping it, during a rolling deploy.
        #expect(StreamID("1700000000000-4/n0a1b.17") == nil)
        // Only chat messages carry one; elsewhere a slash stays in the key.
        #expect(PubSubEnvelope.parseHeader(Array("moved|a|a/b\n{}".utf8)).map { [$0.key] } == ["a/b"])
        #expect(PubSubEnvelope.parseHeader(Array("moved|a|a/b\n{}".utf8))?.origin == nil)
        #expect(PubSubEnvelope.parseHeader(Array("msg|a|1-0/\n{}".utf8)).map { [$0.key] } == ["1-0"], "an empty origin is none")
        for bad in ["{\"event\":\"X\"}", "msg|a\n{}", "nope|a|-\n{}", "msg|x|-\n{}", "msg|aa|-\n{}", "msg|a|1-0|o\n{}"] {
            #expect(PubSubEnvelope.parseHeader(Array(bad.utf8)) == nil)
        }
    }

    @Test("stream ids order as Redis orders them")
    func streamIDs() {
        #expect(StreamID("10-2")! < StreamID("10-10")!)
        #expect(StreamID("9-99")! < StreamID("10-0")!)
        for bad in ["", "-", "1-", "-1", "1-2-3", "a-1", "1-b", "99999999999999999999-1"] { #expect(StreamID(bad) == nil, "\(bad)") }
    }
}

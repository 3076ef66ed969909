import ArgumentParser
import Foundation
import HelpDeskProtocol

/// `helpdesk-bench json`: what reading one client frame costs with each JSON approach the node
/// could use. The node decodes every client frame; this chose `ClientFrame` (BENCHMARKS.md).
struct JSONBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "json", abstract: "Cost of decoding a SEND_MESSAGE frame: JSONDecoder, JSONSerialization, HelpDeskProtocol's ClientFrame.")

    @Option(help: "Frames decoded per approach.") var iterations = 200_000

    static let frame = #"{"event":"SEND_MESSAGE","ref":"r-12345","data":{"conversation_id":"6f1c2a9e-3b7d-4c51-9a0e-2f6b8d4e1c3a","text":"Hello, I have a question about my last invoice, it shows a charge twice.","client_msg_id":"c-1732233445123-42"}}"#

    /// What the node did before: an envelope pass, then a typed pass over the same bytes.
    struct Envelope: Decodable { var event: String; var ref: String? }
    struct Send: Decodable { var conversationId: String; var text: String; var clientMsgId: String; var `internal`: Bool? }
    struct Framed<T: Decodable>: Decodable { var data: T }

    func run() throws {
        let frame = Self.frame
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        var sink = 0
        func measure(_ name: String, _ body: () throws -> Int) rethrows {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations { sink &+= try body() }
            let ns = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
            print("summary json name=\(name) ns_per_frame=\(Int(ns))")
        }
        try measure("JSONDecoder-two-passes") {
            let bytes = Data(frame.utf8)
            let envelope = try decoder.decode(Envelope.self, from: bytes)
            let send = try decoder.decode(Framed<Send>.self, from: bytes).data
            return envelope.event.utf8.count &+ send.text.utf8.count
        }
        try measure("JSONSerialization") {
            let object = try JSONSerialization.jsonObject(with: Data(frame.utf8)) as? [String: Any]
            return ((object?["data"] as? [String: Any])?["text"] as? String)?.utf8.count ?? 0
        }
        try measure("ClientFrame") {
            let parsed = try ClientFrame(text: frame)
            return try parsed.string("text").utf8.count &+ parsed.string("conversation_id").utf8.count &+ parsed.string("client_msg_id").utf8.count
        }
        if sink == 42 { print("") }
    }
}

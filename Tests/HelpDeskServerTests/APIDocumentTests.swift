import Foundation
import HelpDeskProtocol
import PostgresClient
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport
@testable import HelpDeskServer

/// `/openapi.json` and `/asyncapi.json` cannot drift from the code: every route the router serves
/// is in the OpenAPI document and the other way round; every WebSocket event has a message.
@Suite struct APIDocumentTests {
    /// Routes that are files, not API: described nowhere on purpose.
    static let undocumented: Set<String> = ["GET /vendor/chart.min.js"]

    @Test func everyRouteIsDocumentedAndEveryDocumentedRouteIsServed() async throws {
        let node = try await TestNode.make()
        let router = buildRouter(node.services)
        // Hummingbird prints captures as `{id}`, as OpenAPI does.
        let served = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" }).subtracting(Self.undocumented)
        let document = try #require(try JSONSerialization.jsonObject(with: APIDocument.json) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        for (path, operations) in paths {
            for method in operations.keys { documented.insert("\(method.uppercased()) \(path)") }
        }
        #expect(served.subtracting(documented).sorted() == [], "served but not in /openapi.json")
        #expect(documented.subtracting(served).sorted() == [], "in /openapi.json but not served")
        #expect(served.count > 40)
    }

    @Test func theDocumentIsOpenAPI31WithItsSchemasAndSecurity() async throws {
        let document = try #require(try JSONSerialization.jsonObject(with: APIDocument.json) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let components = try #require(document["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: Any])
        for name in ["Conversation", "Message", "User", "Category", "Error"] { #expect(schemas[name] != nil, "\(name)") }
        let security = try #require(components["securitySchemes"] as? [String: Any])
        #expect((security["bearerAuth"] as? [String: Any])?["scheme"] as? String == "bearer")
        // Every $ref points at a schema that exists.
        let text = String(decoding: APIDocument.json, as: UTF8.self) + String(decoding: AsyncAPIDocument.json, as: UTF8.self)
        let refs = text.matches(of: /"#\/components\/schemas\/(\w+)"/).map { String($0.output.1) }
        #expect(!refs.isEmpty)
        for name in Set(refs) { #expect(schemas[name] != nil, "missing schema \(name)") }
        // Every operation id is unique.
        let ids = APIDocument.routes.map(APIDocument.operationID)
        #expect(Set(ids).count == ids.count)
    }

    @Test func everyEventHasAMessageWithAPayloadSchema() throws {
        let document = try #require(try JSONSerialization.jsonObject(with: AsyncAPIDocument.json) as? [String: Any])
        #expect(document["asyncapi"] as? String == "3.0.0")
        let messages = try #require((document["components"] as? [String: Any])?["messages"] as? [String: [String: Any]])
        let operations = try #require(document["operations"] as? [String: [String: Any]])
        func check(_ id: String, _ name: String, _ action: String) {
            let payload = messages[id]?["payload"] as? [String: Any]
            let properties = payload?["properties"] as? [String: Any]
            #expect((properties?["event"] as? [String: Any])?["const"] as? String == name, "\(id)")
            #expect(properties?["data"] is [String: Any], "\(id) has no data schema")
            #expect(operations[(action == "receive" ? "receive_" : "send_") + name]?["action"] as? String == action)
        }
        for event in ClientEventName.allCases { check(AsyncAPIDocument.messageID(client: event.rawValue), event.rawValue, "receive") }
        for event in ServerEventName.allCases { check(AsyncAPIDocument.messageID(server: event.rawValue), event.rawValue, "send") }
        #expect(messages.count == ClientEventName.allCases.count + ServerEventName.allCases.count)
    }

    @Test func theDocumentsAreServed() async throws {
        let node = try await TestNode.make()
        try await node.test { client in
            for path in ["/openapi.json", "/asyncapi.json"] {
                let (status, body, _) = try await client.json(.get, path)
                #expect(status == 200, "\(path)")
                #expect(body["info"] != nil, "\(path)")
            }
        }
    }

    /// What schemathesis found: `before` near Int64.max crashed the node (the Date parameter's
    /// microseconds overflowed). Now a 400, and a far date is PostgreSQL's infinity, never a trap.
    @Test func aHugeBeforeIsRefusedAndFarDatesDoNotTrap() async throws {
        #expect(Date(timeIntervalSince1970: 9.2e15).postgresText == "infinity")
        #expect(Date(timeIntervalSince1970: -9.2e15).postgresText == "-infinity")
        #expect(Date(timeIntervalSince1970: 0).postgresText == "1970-01-01 00:00:00.000000+00")
        let node = try await TestNode.make()
        try await node.createUser("fuzz-admin@example.test", role: "admin")
        try await node.test { client in
            let token = try await client.login("fuzz-admin@example.test")
            let (status, body, _) = try await client.json(.get, "/api/v1/conversations?before=9223372036854775807", token: token)
            #expect(status == 400)
            #expect((body["error"] as? [String: Any])?["code"] as? String == "validation_failed")
            #expect(try await client.json(.get, "/api/v1/conversations?before=253402300799999", token: token).status == 200)
        }
    }
}

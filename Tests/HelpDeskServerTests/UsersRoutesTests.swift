import Foundation
import Testing
import TestSupport
@testable import HelpDeskServer

@Suite("users routes")
struct UsersRoutesTests {
    @Test("an admin creates, lists, edits and deactivates staff; the new agent can log in")
    func adminManagesStaff() async throws {
        let node = try await TestNode.make()
        try await node.createUser("root@example.com", role: "admin")
        let supervisorID = try await node.createUser("sue@example.com", role: "supervisor")
        try await node.test { client in
            let admin = try await client.login("root@example.com")
            let created = try await client.json(.post, "/api/v1/users", token: admin, body: [
                "email": "Alex@Example.com", "name": "Alex", "password": "agent-password", "role": "agent",
                "supervisor_id": supervisorID, "capacity": 2,
            ])
            #expect(created.status == 201)
            #expect(created.body["email"] as? String == "alex@example.com")
            #expect(created.body["supervisor_id"] as? Int == supervisorID)
            #expect(created.body["capacity"] as? Int == 2)
            let id = try #require(created.body["id"] as? Int)
            _ = try await client.login("alex@example.com", "agent-password")

            let list = try await client.json(.get, "/api/v1/users", token: admin)
            #expect(list.status == 200)
            #expect(list.array.count == 3)

            let edited = try await client.json(.patch, "/api/v1/users/\(id)", token: admin, body: ["name": "Alex B", "capacity": 5, "supervisor_id": NSNull()])
            #expect(edited.status == 200)
            #expect(edited.body["name"] as? String == "Alex B")
            #expect(edited.body["capacity"] as? Int == 5)
            #expect(edited.body["supervisor_id"] == nil || edited.body["supervisor_id"] is NSNull)

            let deleted = try await client.json(.delete, "/api/v1/users/\(id)", token: admin)
            #expect(deleted.status == 200)
            #expect(deleted.body["active"] as? Bool == false)
            #expect(try await client.json(.post, "/api/v1/auth/login", body: ["email": "alex@example.com", "password": "agent-password"]).status == 401)
        }
    }

    @Test("non-admins get 403 on admin routes and nothing changes")
    func roleChecks() async throws {
        let node = try await TestNode.make()
        try await node.createUser("root@example.com", role: "admin")
        let supervisorID = try await node.createUser("sue@example.com", role: "supervisor")
        let ownAgent = try await node.createUser("own@example.com", role: "agent", supervisorEmail: "sue@example.com")
        let otherAgent = try await node.createUser("other@example.com", role: "agent")
        let before = try await node.count("users")
        try await node.test { client in
            let agent = try await client.login("own@example.com")
            let supervisor = try await client.login("sue@example.com")
            let newUser: [String: Any] = ["email": "x@example.com", "name": "X", "password": "password123", "role": "admin"]
            for token in [agent, supervisor] {
                #expect(try await client.json(.post, "/api/v1/users", token: token, body: newUser).status == 403)
                #expect(try await client.json(.patch, "/api/v1/users/\(otherAgent)", token: token, body: ["capacity": 9]).status == 403)
                #expect(try await client.json(.delete, "/api/v1/users/\(otherAgent)", token: token).status == 403)
            }
            #expect(try await client.json(.get, "/api/v1/users", token: agent).status == 403)
            // A supervisor reads their own agents only.
            let mine = try await client.json(.get, "/api/v1/users", token: supervisor)
            #expect(mine.status == 200)
            #expect(mine.array.compactMap { $0["id"] as? Int } == [ownAgent])
            #expect(try await client.json(.get, "/api/v1/users/\(ownAgent)", token: supervisor).status == 200)
            #expect(try await client.json(.get, "/api/v1/users/\(otherAgent)", token: supervisor).status == 404)
            #expect(try await client.json(.get, "/api/v1/users/\(supervisorID)", token: agent).status == 404)
        }
        #expect(try await node.count("users") == before)
        let capacity: Int = try await node.services.postgres.query("SELECT capacity FROM users WHERE id = $1", [otherAgent]).first!.decode("capacity")
        #expect(capacity == 3)
    }

    @Test("bad user input gets 400/409 with a code and changes nothing")
    func badInput() async throws {
        let node = try await TestNode.make()
        try await node.createUser("root@example.com", role: "admin")
        let agentID = try await node.createUser("ann@example.com", role: "agent")
        let before = try await node.count("users")
        try await node.test { client in
            let admin = try await client.login("root@example.com")
            let base: [String: Any] = ["email": "new@example.com", "name": "New", "password": "password123", "role": "agent"]
            func with(_ key: String, _ value: Any?) -> [String: Any] {
                var body = base
                body[key] = value
                return body
            }
            let cases: [([String: Any], Int, String)] = [
                (with("email", "not-an-email"), 400, "validation_failed"),
                (with("email", "ann@example.com"), 409, "conflict"),
                (with("role", "customer"), 400, "validation_failed"),
                (with("role", "root"), 400, "validation_failed"),
                (with("password", "short"), 400, "validation_failed"),
                (with("capacity", 0), 400, "validation_failed"),
                (with("capacity", "three"), 400, "validation_failed"),
                (with("supervisor_id", agentID), 400, "validation_failed"),
                (with("category_ids", [999]), 400, "validation_failed"),
                (with("name", nil), 400, "validation_failed"),
            ]
            for (body, status, code) in cases {
                let response = try await client.json(.post, "/api/v1/users", token: admin, body: body)
                #expect(response.status == status, "\(body)")
                #expect(response.body.errorCode == code, "\(body)")
            }
            #expect(try await client.json(.patch, "/api/v1/users/\(agentID)", token: admin, body: ["capacity": 100]).status == 400)
            #expect(try await client.json(.patch, "/api/v1/users/999999", token: admin, body: ["capacity": 4]).status == 404)
            #expect(try await client.json(.patch, "/api/v1/users/abc", token: admin, body: ["capacity": 4]).status == 400)
        }
        #expect(try await node.count("users") == before)
    }
}

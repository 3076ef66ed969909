import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// REST calls for setting a bench up and checking its outcome; never on a measured path, so
/// URLSession and JSONSerialization are good enough here.
enum HTTP {
    static func json(_ method: String, _ url: String, token: String? = nil, body: [String: Any]? = nil) async throws -> [String: Any] {
        guard let target = URL(string: url) else { throw ValidationError("bad URL \(url)") }
        var request = URLRequest(url: target)
        request.httpMethod = method
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body { request.httpBody = try JSONSerialization.data(withJSONObject: body) }
        let (data, _) = try await URLSession.shared.data(for: request)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    static func login(_ node: String, _ email: String, _ password: String) async throws -> String {
        let reply = try await json("POST", node + "/api/v1/auth/login", body: ["email": email, "password": password])
        guard let token = reply["access_token"] as? String else { throw ValidationError("login of \(email) failed: \(reply)") }
        return token
    }

    /// Creates an agent account and logs it in: (user id, access token).
    static func agent(_ node: String, admin: String, email: String, name: String, capacity: Int) async throws -> (id: String, token: String) {
        let created = try await json("POST", node + "/api/v1/users", token: admin,
                                     body: ["email": email, "name": name, "password": "bench-password", "role": "agent", "capacity": capacity])
        let user = (created["user"] as? [String: Any]) ?? created
        guard let id = user["id"].map({ "\($0)" }) else { throw ValidationError("could not create \(email): \(created)") }
        return (id, try await login(node, email, "bench-password"))
    }

    /// Starts a chat as a customer: (conversation id, customer token).
    static func startChat(_ node: String, name: String, email: String) async throws -> (id: String, token: String) {
        let chat = try await json("POST", node + "/api/v1/conversations", body: ["name": name, "email": email])
        guard let id = chat["conversation_id"].map({ "\($0)" }), let token = chat["customer_token"] as? String else {
            throw ValidationError("could not start a chat: \(chat)")
        }
        return (id, token)
    }

    /// Runs `body` for 0..<count with at most `width` calls in flight; results in index order.
    static func concurrently<T: Sendable>(_ count: Int, width: Int = 16, _ body: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            var results = [T?](repeating: nil, count: count)
            var next = 0
            while next < min(width, count) {
                let i = next
                group.addTask { (i, try await body(i)) }
                next += 1
            }
            while let finished = try await group.next() {
                let (i, value) = finished
                results[i] = value
                if next < count {
                    let j = next
                    group.addTask { (j, try await body(j)) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }
}

/// `http://host:port` → (host, port) for the raw sockets.
struct NodeAddress: Sendable, CustomStringConvertible {
    let base: String
    let host: String
    let port: Int

    init(_ base: String) throws {
        guard let url = URL(string: base), let host = url.host else { throw ValidationError("bad node URL \(base)") }
        self.base = base
        self.host = host
        self.port = url.port ?? 80
    }

    var description: String { base }
}

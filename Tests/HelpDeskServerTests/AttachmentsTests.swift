import Foundation
import HelpDeskCore
import PostgresClient
import Testing
import TestSupport
@testable import HelpDeskServer

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Raw HTTP for uploads and downloads: any body, any Content-Type, response headers.
enum RawHTTP {
    static func send(_ method: String, _ url: String, token: String?, contentType: String? = nil, body: Data? = nil) async throws
        -> (status: Int, headers: [String: String], data: Data) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        var headers: [String: String] = [:]
        for (k, v) in http?.allHeaderFields ?? [:] { headers[String(describing: k).lowercased()] = String(describing: v) }
        return (http?.statusCode ?? 0, headers, data)
    }

    static func json(_ data: Data) -> [String: Any] { (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:] }

    static func upload(_ node: TestCluster.Node, _ conversation: String, token: String, name: String, type: String, bytes: [UInt8]) async throws
        -> (status: Int, body: [String: Any]) {
        let query = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
        let r = try await send("POST", node.url + "/api/v1/conversations/\(conversation)/attachments?name=\(query)", token: token,
                               contentType: type, body: Data(bytes))
        return (r.status, json(r.data))
    }
}

@Suite("attachments", .serialized)
struct AttachmentsTests {
    // `cluster.activeChat(startedOn: a, customerOn: b, agentOn: b)`: uploads go to node A, the
    // customer's socket is on the node they did not go to.
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + (0..<600).map { UInt8(truncatingIfNeeded: $0 &* 7) }

    @Test("upload on node A → message with it sent on node B → the agent gets it in NEW_MESSAGE and HISTORY and downloads the same bytes with safe headers; archived with the message")
    func uploadSendDownload() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_ARCHIVE_RETENTION": "1"])
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.activeChat(startedOn: a, customerOn: b, agentOn: b)

        let name = "Screen shot \"1\"; ü.png"
        let up = try await RawHTTP.upload(a, chat.id, token: chat.customerToken, name: name, type: "image/png", bytes: Self.png)
        #expect(up.status == 201, "\(up)")
        let attachmentID = try #require(up.body["id"] as? String)
        #expect(up.body["name"] as? String == name && up.body["size"] as? Int == Self.png.count && up.body["content_type"] as? String == "image/png")
        let pg = cluster.postgres()
        defer { Task { await pg.shutdown() } }
        let digest = try await pg.query("SELECT encode(sha256, 'hex') AS h FROM attachments WHERE id = $1::uuid", [attachmentID]).first?.decode("h", as: String.self)
        #expect(digest == AttachmentStore.hex(Crypto.sha256(Self.png)))

        // an unsent upload is its uploader's only
        let early = try await RawHTTP.send("GET", b.url + "/api/v1/attachments/\(attachmentID)", token: chat.agent.token)
        #expect(early.status == 404)

        let ack = try await chat.customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "see this", "client_msg_id": "m1",
                                                                   "attachment_ids": [attachmentID]])
        #expect(ack.event == "ACK", "\(ack)")
        let received = try await chat.agentSocket.next("NEW_MESSAGE") { $0.message?["client_msg_id"] as? String == "m1" }
        let carried = received.message?["attachments"] as? [[String: Any]] ?? []
        #expect(carried.count == 1)
        #expect(carried.first?["id"] as? String == attachmentID && carried.first?["name"] as? String == name
                && carried.first?["size"] as? Int == Self.png.count && carried.first?["content_type"] as? String == "image/png")

        // the agent downloads it on node A
        let download = try await RawHTTP.send("GET", a.url + "/api/v1/attachments/\(attachmentID)", token: chat.agent.token)
        #expect(download.status == 200)
        #expect(Array(download.data) == Self.png)
        #expect(download.headers["content-type"] == "image/png")
        #expect(download.headers["x-content-type-options"] == "nosniff")
        #expect(download.headers["content-disposition"] == "attachment; filename=\"Screen shot _1__ _.png\"; filename*=UTF-8''Screen%20shot%20%221%22%3B%20%C3%BC.png")
        // and so does the customer who sent it
        #expect(Array(try await RawHTTP.send("GET", b.url + "/api/v1/attachments/\(attachmentID)", token: chat.customerToken).data) == Self.png)

        // sent once: attaching it again is refused
        let again = try await chat.customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "again", "client_msg_id": "m2",
                                                                     "attachment_ids": [attachmentID]])
        #expect(again.event == "ERROR" && again.data["code"] as? String == "validation_failed", "\(again)")
        // a retry of the same send is the same message (duplicate), attachment and all
        let retry = try await chat.customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "see this", "client_msg_id": "m1",
                                                                     "attachment_ids": [attachmentID]])
        #expect(retry.event == "ACK" && retry.data["duplicate"] as? Bool == true, "\(retry)")

        // HISTORY carries it
        let late = try await TestSocket.connect(a.wsURL, token: chat.agent.token, label: "agent-2")
        _ = try await late.send("JOIN_CONVERSATION", ["conversation_id": chat.id], ref: "j")
        let history = try await late.next("HISTORY")
        let historical = (history.data["messages"] as? [[String: Any]] ?? []).first { $0["client_msg_id"] as? String == "m1" }
        #expect(((historical?["attachments"] as? [[String: Any]])?.first?["id"] as? String) == attachmentID, "\(history)")

        // closed, archived, gone from Redis: the transcript from PostgreSQL still carries it
        #expect(try await chat.agentSocket.request("CLOSE_CONVERSATION", ["conversation_id": chat.id]).event == "ACK")
        let redis = cluster.redis()
        defer { Task { await redis.close() } }
        try await eventually("archived and expired", timeout: .seconds(20)) {
            try await redis.send("EXISTS", cluster.prefix + "conv:" + chat.id).int == 0
        }
        let transcript = try await HTTP.request("GET", a.url + "/api/v1/conversations/\(chat.id)/messages", token: chat.agent.token)
        let archived = (transcript.1["messages"] as? [[String: Any]] ?? []).first { $0["client_msg_id"] as? String == "m1" }
        #expect(((archived?["attachments"] as? [[String: Any]])?.first?["id"] as? String) == attachmentID, "\(transcript)")
        let link = try await pg.query("SELECT message_id FROM attachments WHERE id = $1::uuid", [attachmentID]).first?.decode("message_id", as: String.self)
        #expect(link == archived?["id"] as? String)
        // still served after the archive
        #expect(Array(try await RawHTTP.send("GET", b.url + "/api/v1/attachments/\(attachmentID)", token: chat.agent.token).data) == Self.png)
    }

    @Test("too large → 413, wrong type (HTML claimed as PNG, or a type not allowed) → 415, a stranger → 404, another conversation's attachment in SEND_MESSAGE → refused, nothing stored")
    func refusals() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_ATTACHMENT_MAX_BYTES": "1024"])
        let a = try await cluster.startNode("node-a")
        let b = try await cluster.startNode("node-b")
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.activeChat(startedOn: a, customerOn: b, agentOn: b)
        let pg = cluster.postgres()
        defer { Task { await pg.shutdown() } }
        func stored() async throws -> Int { try await pg.query("SELECT count(*) AS n FROM attachments").first?.decode("n", as: Int.self) ?? -1 }

        let big = try await RawHTTP.upload(a, chat.id, token: chat.customerToken, name: "big.png", type: "image/png",
                                           bytes: Self.png + [UInt8](repeating: 1, count: 1024))
        #expect(big.status == 413 && big.body.errorCode == "attachment_too_large", "\(big)")
        let html = try await RawHTTP.upload(a, chat.id, token: chat.customerToken, name: "x.png", type: "image/png",
                                            bytes: Array("<html><script>alert(1)</script></html>".utf8))
        #expect(html.status == 415 && html.body.errorCode == "unsupported_media_type", "\(html)")
        let exe = try await RawHTTP.upload(a, chat.id, token: chat.customerToken, name: "x.html", type: "text/html", bytes: Array("<p>hi</p>".utf8))
        #expect(exe.status == 415 && exe.body.errorCode == "unsupported_media_type", "\(exe)")
        let binaryAsText = try await RawHTTP.upload(a, chat.id, token: chat.customerToken, name: "x.txt", type: "text/plain", bytes: Self.png)
        #expect(binaryAsText.status == 415, "\(binaryAsText)")
        #expect(try await stored() == 0)

        // strangers: another chat's customer, an agent without the conversation, a garbage id
        let other = try await cluster.startChat(on: a)
        let otherAgent = try await cluster.staff("other\(TestEnvironment.uniqueID())@example.com", on: a)
        let strangerUpload = try await RawHTTP.upload(b, chat.id, token: other.token, name: "x.txt", type: "text/plain", bytes: Array("hello".utf8))
        #expect(strangerUpload.status == 404 && strangerUpload.body.errorCode == "not_found", "\(strangerUpload)")
        let agentUpload = try await RawHTTP.upload(b, chat.id, token: otherAgent.token, name: "x.txt", type: "text/plain", bytes: Array("hello".utf8))
        #expect(agentUpload.status == 404, "\(agentUpload)")
        #expect(try await stored() == 0)

        let text = try await RawHTTP.upload(a, chat.id, token: chat.customerToken, name: "notes.txt", type: "text/plain; charset=utf-8",
                                            bytes: Array("line one\nline two ✓\n".utf8))
        #expect(text.status == 201 && text.body["content_type"] as? String == "text/plain; charset=utf-8", "\(text)")
        let textID = try #require(text.body["id"] as? String)
        #expect(try await chat.customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "", "client_msg_id": "t1",
                                                                 "attachment_ids": [textID]]).event == "ACK")
        for token in [other.token, otherAgent.token] {
            let r = try await RawHTTP.send("GET", a.url + "/api/v1/attachments/\(textID)", token: token)
            #expect(r.status == 404 && RawHTTP.json(r.data).errorCode == "not_found", "\(r.status)")
        }
        #expect(try await RawHTTP.send("GET", a.url + "/api/v1/attachments/\(textID)", token: nil).status == 401)
        #expect(try await RawHTTP.send("GET", a.url + "/api/v1/attachments/\(UUID().uuidString)", token: chat.agent.token).status == 404)

        // the other conversation's upload, attached to a message in this one: refused, no message
        let foreign = try await RawHTTP.upload(a, other.id, token: other.token, name: "f.txt", type: "text/plain", bytes: Array("foreign".utf8))
        let foreignID = try #require(foreign.body["id"] as? String)
        let redis = cluster.redis()
        defer { Task { await redis.close() } }
        let before = try await redis.send("XLEN", cluster.prefix + "conv:\(chat.id):msgs").int
        for (sender, token) in [(chat.customer, "customer"), (chat.agentSocket, "agent")] {
            let refused = try await sender.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "look", "client_msg_id": "f-\(token)",
                                                                    "attachment_ids": [foreignID]])
            #expect(refused.event == "ERROR" && refused.data["code"] as? String == "validation_failed", "\(refused)")
        }
        // the agent's own upload cannot be sent by the customer either
        let agentFile = try await RawHTTP.upload(b, chat.id, token: chat.agent.token, name: "a.txt", type: "text/plain", bytes: Array("agent".utf8))
        let agentFileID = try #require(agentFile.body["id"] as? String)
        let notYours = try await chat.customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "x", "client_msg_id": "n1",
                                                                        "attachment_ids": [agentFileID]])
        #expect(notYours.event == "ERROR" && notYours.data["code"] as? String == "validation_failed")
        // malformed lists
        for bad: Any in ["x", ["not-a-uuid"], Array(repeating: UUID().uuidString, count: 6), [textID, textID]] {
            let r = try await chat.customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "x", "client_msg_id": "bad", "attachment_ids": bad])
            #expect(r.event == "ERROR" && r.data["code"] as? String == "validation_failed", "\(r)")
        }
        #expect(try await redis.send("XLEN", cluster.prefix + "conv:\(chat.id):msgs").int == before)
        // REST send takes attachment ids the same way
        let rest = try await HTTP.request("POST", a.url + "/api/v1/conversations/\(chat.id)/messages", token: chat.agent.token,
                                          body: ["text": "from REST", "client_msg_id": "r1", "attachment_ids": [agentFileID]])
        #expect(rest.0 == 201, "\(rest)")
        let restMessage = try await chat.customer.next("NEW_MESSAGE") { $0.message?["client_msg_id"] as? String == "r1" }
        #expect(((restMessage.message?["attachments"] as? [[String: Any]])?.first?["id"] as? String) == agentFileID)
        // the foreign upload was never claimed: its own conversation may still send it
        #expect(try await pg.query("SELECT claimed_by FROM attachments WHERE id = $1::uuid", [foreignID]).first?.optional("claimed_by", as: String.self) == nil)
    }

    @Test("an upload without Content-Length (chunked) is read as it streams and refused with 413 past the limit; under it, stored whole")
    func chunkedUploadIsBounded() async throws {
        let cluster = try await TestCluster(overrides: ["HELPDESK_ATTACHMENT_MAX_BYTES": "2048"])
        let a = try await cluster.startNode()
        let b = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.activeChat(startedOn: a, customerOn: b, agentOn: b)
        func chunked(_ bytes: [UInt8]) async throws -> (status: Int, body: [String: Any]) {
            var request = URLRequest(url: URL(string: a.url + "/api/v1/conversations/\(chat.id)/attachments?name=s.txt")!)
            request.httpMethod = "POST"
            request.setValue("text/plain", forHTTPHeaderField: "Content-Type")
            request.setValue("Bearer \(chat.customerToken)", forHTTPHeaderField: "Authorization")
            request.httpBodyStream = InputStream(data: Data(bytes))
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, RawHTTP.json(data))
        }
        let over = try await chunked([UInt8](repeating: UInt8(ascii: "a"), count: 5000))
        #expect(over.status == 413 && over.body.errorCode == "attachment_too_large", "\(over)")
        let under = try await chunked([UInt8](repeating: UInt8(ascii: "b"), count: 2000))
        #expect(under.status == 201 && under.body["size"] as? Int == 2000, "\(under)")
    }

    @Test("unsent uploads are bounded per person and swept after their lifetime; sent ones stay")
    func unsentUploads() async throws {
        let cluster = try await TestCluster()
        let a = try await cluster.startNode()
        let b = try await cluster.startNode()
        defer { Task { await cluster.shutdown() } }
        let chat = try await cluster.activeChat(startedOn: a, customerOn: b, agentOn: b)
        var ids: [String] = []
        for i in 0..<AttachmentRules.maxUnsentPerUploader {
            let r = try await RawHTTP.upload(a, chat.id, token: chat.customerToken, name: "f\(i).txt", type: "text/plain", bytes: Array("file \(i)".utf8))
            #expect(r.status == 201)
            if let id = r.body["id"] as? String { ids.append(id) }
        }
        let over = try await RawHTTP.upload(a, chat.id, token: chat.customerToken, name: "one-more.txt", type: "text/plain", bytes: Array("x".utf8))
        #expect(over.status == 429 && over.body.errorCode == "rate_limited", "\(over)")
        #expect(try await chat.customer.request("SEND_MESSAGE", ["conversation_id": chat.id, "text": "", "client_msg_id": "s1",
                                                                 "attachment_ids": [ids[0]]]).event == "ACK")
        let store = AttachmentStore(pool: a.services.postgres)
        #expect(try await store.deleteUnsent(olderThan: 3600) == 0)
        #expect(try await store.deleteUnsent(olderThan: 0) == ids.count - 1)
        #expect(try await RawHTTP.send("GET", b.url + "/api/v1/attachments/\(ids[1])", token: chat.customerToken).status == 404)
        #expect(Array(try await RawHTTP.send("GET", b.url + "/api/v1/attachments/\(ids[0])", token: chat.customerToken).data) == Array("file 0".utf8))
    }
}

import Foundation
import HelpDeskCore
import Hummingbird
import Logging
import NIOCore
import PostgresClient
import RedisClient

extension HelpDeskError: HTTPResponseError {
    public var status: HTTPResponse.Status { .init(code: code.httpStatus) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response.errorJSON(status: status, code: code.rawValue, message: message, requestID: context.id)
    }
}

extension Response {
    /// `{"error": {"code": ..., "message": ..., "request_id": ...}}` with the given status
    /// (`request_id` when known: the request's id, as in its logs and `X-Request-Id`).
    static func errorJSON(status: HTTPResponse.Status, code: String, message: String, requestID: String? = nil) -> Response {
        var w = JSONWriter(capacity: 96 + message.utf8.count)
        w.raw("{\"error\":{"); w.key("code"); w.string(code)
        w.raw(","); w.key("message"); w.string(message)
        if let requestID { w.raw(","); w.key("request_id"); w.string(requestID) }
        w.raw("}}")
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: w.bytes))
        )
    }
}

/// Turns every error a handler throws into the `{error:{code,message}}` shape. Errors we did not
/// make ourselves (database, Redis, bugs) are logged and answered without their details.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HelpDeskError {
            return Response.errorJSON(status: error.status, code: error.code.rawValue, message: error.message, requestID: context.id)
        } catch let error as HTTPError {
            switch error.status {
            case .contentTooLarge:
                return Response.errorJSON(status: .badRequest, code: HelpDeskError.Code.payloadTooLarge.rawValue, message: "request body is larger than \(context.maxUploadSize) bytes", requestID: context.id)
            case .notFound:
                return Response.errorJSON(status: .notFound, code: "not_found", message: "no such route: \(request.method) \(request.uri.path)", requestID: context.id)
            case .methodNotAllowed:
                return Response.errorJSON(status: .methodNotAllowed, code: "method_not_allowed", message: "\(request.method) is not allowed here", requestID: context.id)
            case .badRequest:
                return Response.errorJSON(status: .badRequest, code: "bad_request", message: error.body ?? "bad request", requestID: context.id)
            default:
                return Response.errorJSON(status: error.status, code: "http_\(error.status.code)", message: error.body ?? error.status.reasonPhrase, requestID: context.id)
            }
        } catch is NIOTooManyBytesError {
            return Response.errorJSON(status: .badRequest, code: HelpDeskError.Code.payloadTooLarge.rawValue, message: "request body is larger than \(context.maxUploadSize) bytes", requestID: context.id)
        } catch let error as RedisError {
            context.logger.error("redis error", metadata: ["error": "\(error)"])
            return Response.errorJSON(status: .serviceUnavailable, code: "unavailable", message: "a backing service is unavailable, try again", requestID: context.id)
        } catch let error as PostgresError where error.code == .invalidParameter {
            // Input our validators let through but PostgreSQL cannot take whole (U+0000): refused, nothing ran.
            return Response.errorJSON(status: .badRequest, code: HelpDeskError.Code.validationFailed.rawValue, message: "a field contains a character that is not allowed", requestID: context.id)
        } catch let error as PostgresError where error.isUnavailable {
            context.logger.error("postgres unavailable", metadata: ["error": "\(error)"])
            return Response.errorJSON(status: .serviceUnavailable, code: "unavailable", message: "a backing service is unavailable, try again", requestID: context.id)
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(error)"])
            return Response.errorJSON(status: .internalServerError, code: "internal_error", message: "internal error", requestID: context.id)
        }
    }
}

extension Request {
    /// Decodes a JSON body, turning every decoding failure into a 400 that names the problem.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: some RequestContext) async throws -> T {
        let buffer = try await self.body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { throw HelpDeskError(.invalidJSON, "request body is empty; expected a JSON object") }
        do {
            return try JSON.decoder.decode(T.self, from: Data(buffer: buffer))
        } catch let error as DecodingError {
            throw HelpDeskError(error.helpDeskCode, error.readableMessage)
        } catch let error as HelpDeskError {
            throw error
        } catch {
            throw HelpDeskError(.invalidJSON, "request body is not valid JSON")
        }
    }
}

extension DecodingError {
    var helpDeskCode: HelpDeskError.Code {
        if case .dataCorrupted(let context) = self, context.codingPath.isEmpty { return .invalidJSON }
        return .validationFailed
    }

    var readableMessage: String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? JSON.snakeCase($0.stringValue) }.joined(separator: ".")
        }
        switch self {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "missing field \(parent.isEmpty ? "" : parent + ".")\(JSON.snakeCase(key.stringValue))"
        case .typeMismatch(let type, let context):
            return "field \(path(context.codingPath)) has the wrong type (expected \(Self.jsonTypeName(type)))"
        case .valueNotFound(let type, let context):
            return "field \(path(context.codingPath)) must not be null (expected \(Self.jsonTypeName(type)))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "request body is not valid JSON" }
            return "field \(path(context.codingPath)) is invalid: \(context.debugDescription)"
        @unknown default:
            return "request body is invalid"
        }
    }

    static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "string"
        case is Int.Type, is Int64.Type: return "integer"
        case is Double.Type: return "number"
        case is Bool.Type: return "boolean"
        default:
            let name = "\(type)"
            return name.hasPrefix("Array") ? "array" : name.hasPrefix("Dictionary") ? "object" : "object"
        }
    }
}

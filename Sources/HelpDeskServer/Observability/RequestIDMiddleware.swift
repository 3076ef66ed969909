import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Every HTTP request gets a request id: a sane incoming `X-Request-Id` (1-128 characters of
/// `A-Z a-z 0-9 - _ . :`, what proxies and tracing tools send), or else the one Hummingbird made.
/// It is the `request_id` of every log line written through the request's logger (the JSON logs
/// write Hummingbird's `hb.request.id` under that name), of error bodies
/// (`{error:{code,message,request_id}}`), and the `X-Request-Id` response header.
///
/// After it, one access-log line per request (`info`): method, path (never the query string,
/// which may carry a ticket), status and duration.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    static var maxLength: Int { 128 }

    /// The incoming id if it is safe to log and echo, else nil.
    static func accepted(_ header: String?) -> String? {
        guard let header, !header.isEmpty, header.utf8.count <= maxLength else { return nil }
        for byte in header.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"):
                continue
            default:
                return nil
            }
        }
        return header
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let incoming = Self.accepted(request.headers[.xRequestID]) {
            context.logger[metadataKey: "hb.request.id"] = .string(incoming)
        }
        let id = context.id
        let started = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            // The error middleware inside answers every error; this is the last resort.
            context.logger.error("unanswered error", metadata: ["error": "\(error)"])
            response = Response.errorJSON(status: .internalServerError, code: "internal_error", message: "internal error", requestID: id)
        }
        response.headers[.xRequestID] = id
        if context.logger.logLevel <= .info {
            let elapsed = started.duration(to: .now).components
            let microseconds = elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000
            context.logger.info("request", metadata: [
                "method": .string(request.method.rawValue), "path": .string(request.uri.path),
                "status": .stringConvertible(response.status.code), "duration_ms": .string(String(Double(microseconds) / 1000)),
            ])
        }
        return response
    }
}

extension HTTPField.Name {
    static let xRequestID = HTTPField.Name("X-Request-Id")!
}

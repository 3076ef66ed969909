import HelpDeskCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// What the `/ws` route decided: this caller's socket may open.
struct SocketUpgrade: Sendable {
    let caller: Caller
    let clientIP: String
    /// `?queue_changes=batched`: QUEUE_CHANGES frames instead of one QUEUE_UPDATED per change.
    var batchesQueueChanges = false
}

/// The slot in which the `/ws` route leaves its decision for the upgrade (a reference, so the
/// value set deep in the router reaches the channel).
final class SocketUpgradeSlot: Sendable {
    private let value = NIOLockedValueBox<SocketUpgrade?>(nil)
    func set(_ upgrade: SocketUpgrade) { value.withLockedValue { $0 = upgrade } }
    var upgrade: SocketUpgrade? { value.withLockedValue { $0 } }
}

/// HTTP/1 with our WebSocket upgrade.
///
/// The upgrade request goes through the router like any request (middleware, auth, the `/ws`
/// route's checks); a refusal is answered with the router's own response (status and
/// `{error:{code,message}}`). An upgraded socket is then run by `SocketChannelHandler` on its
/// event loop: no task per connection, so an idle socket costs only its channel and its session
/// (Hummingbird's WebSocket channel keeps a task, a task group and an auto-ping task per socket:
/// ~22 KB of task stacks each, measured with heaptrack; see BENCHMARKS.md).
struct SocketServerChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case webSocket
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, RefusedUpgrade)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    /// The router's answer to an upgrade it refused, collected to be written as is.
    struct RefusedUpgrade: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: ByteBuffer
    }

    enum Decision: Sendable {
        case accept(SocketUpgrade)
        case refuse(RefusedUpgrade)
    }

    let responder: HTTPChannelHandler.Responder
    /// Runs the upgrade request through the router.
    let respondToUpgrade: @Sendable (Request, AppRequestContext) async throws -> Response
    /// Installs the socket's handlers on the upgraded channel (on its event loop).
    let startSocket: @Sendable (any Channel, SocketUpgrade) throws -> Void
    let http1 = HTTP1Channel.Configuration()
    let maxFrameSize: Int

    init(responder: @escaping HTTPChannelHandler.Responder,
         respondToUpgrade: @escaping @Sendable (Request, AppRequestContext) async throws -> Response,
         startSocket: @escaping @Sendable (any Channel, SocketUpgrade) throws -> Void, maxFrameSize: Int) {
        self.responder = Self.redirectingLateUpgrades(responder)
        self.respondToUpgrade = respondToUpgrade
        self.startSocket = startSocket
        self.maxFrameSize = maxFrameSize
    }

    /// Only a connection's first request can be upgraded (NIO's upgrade handler leaves the
    /// pipeline after it). An upgrade request later on a kept-alive connection (a proxy reusing its
    /// upstream connections does that) is told to come again on a new one: 307 to the same URL with
    /// `Connection: close`, as Hummingbird's own WebSocket channel does.
    static func redirectingLateUpgrades(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        struct CloseAfterRedirect: Error {}
        return { request, responseWriter, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket", request.uri.path == "/ws" else {
                return try await responder(request, responseWriter, channel)
            }
            // the constant path: a request target like `//elsewhere/x` cannot send it to another host
            var location = "/ws"
            if let query = request.uri.query { location += "?" + query }
            try await responseWriter.writeResponse(HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: location]))
            throw CloseAfterRedirect()
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let decision = NIOLockedValueBox<Decision?>(nil)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: maxFrameSize,
                enableAutomaticErrorHandling: true,
                shouldUpgrade: { channel, head in
                    let promise = channel.eventLoop.makePromise(of: HTTPHeaders?.self)
                    promise.completeWithTask {
                        let outcome = await decide(head, channel: channel, logger: logger)
                        decision.withLockedValue { $0 = outcome }
                        if case .accept = outcome { return HTTPHeaders() }
                        return nil
                    }
                    return promise.futureResult
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard case .accept(let upgrade)? = decision.withLockedValue({ $0 }) else {
                            throw ChannelError.inappropriateOperationForState
                        }
                        try startSocket(channel, upgrade)
                        return .webSocket
                    }
                }
            )
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        if case .refuse(let refusal)? = decision.withLockedValue({ $0 }) {
                            return .refused(asyncChannel, refusal)
                        }
                        return .notUpgraded(asyncChannel)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: upgradeConfiguration)
            configuration.enablePipelining = false  // Hummingbird pipelines HTTP itself
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            configuration.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            configuration.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            configuration.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .notUpgraded(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refused(let http, let refusal):
                await write(refusal, to: http, logger: logger)
            case .webSocket:
                // SocketChannelHandler runs the socket from here on, on its event loop.
                return
            }
        } catch let error as ChannelError where error == .inputClosed {
            logger.trace("upgrade: input closed")
        } catch {
            logger.debug("upgrade failed", metadata: ["error": "\(error)"])
        }
    }

    /// The router's decision on an upgrade request.
    private func decide(_ head: HTTPRequestHead, channel: any Channel, logger: Logger) async -> Decision {
        // Only `GET /ws` upgrades; anything else is refused before the router runs.
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard head.method == .GET, path == "/ws" else {
            return .refuse(RefusedUpgrade(status: .badRequest, headers: [.contentType: "application/json; charset=utf-8"],
                                          body: ByteBuffer(string: #"{"error":{"code":"bad_request","message":"only GET /ws is a WebSocket"}}"#)))
        }
        do {
            let request = Request(head: try HTTPRequest(head, secure: false, splitCookie: false), body: .init(buffer: ByteBuffer()))
            // the request id Hummingbird gives every request it handles (`context.id` reads it)
            var logger = logger
            logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            let context = AppRequestContext(source: .init(channel: channel, logger: logger))
            let response = try await respondToUpgrade(request, context)
            if response.status == .ok, let upgrade = context.socketUpgrade.upgrade {
                return .accept(upgrade)
            }
            let collector = BodyCollector()
            try await response.body.write(collector)
            return .refuse(RefusedUpgrade(status: response.status, headers: response.headers, body: collector.box.buffer))
        } catch {
            return .refuse(RefusedUpgrade(status: .badRequest, headers: [:], body: ByteBuffer()))
        }
    }

    private func write(_ refusal: RefusedUpgrade, to http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, logger: Logger) async {
        do {
            try await http.executeThenClose { _, outbound in
                var headers = refusal.headers
                headers[.connection] = "close"
                headers[.contentLength] = String(refusal.body.readableBytes)
                try await outbound.write(contentsOf: [
                    .head(HTTPResponse(status: refusal.status, headerFields: headers)), .body(refusal.body), .end(nil),
                ])
            }
        } catch {
            logger.trace("refused upgrade: write failed", metadata: ["error": "\(error)"])
        }
    }

    /// Collects a (small, already built) response body.
    private struct BodyCollector: ResponseBodyWriter {
        final class Box: @unchecked Sendable { var buffer = ByteBuffer() }
        let box = Box()
        mutating func write(_ buffer: ByteBuffer) async throws {
            var buffer = buffer
            // a refusal is a short error object; anything longer is cut, never buffered whole
            let room = 16 * 1024 - box.buffer.readableBytes
            if room > 0, let slice = buffer.readSlice(length: min(room, buffer.readableBytes)) {
                var slice = slice
                box.buffer.writeBuffer(&slice)
            }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}

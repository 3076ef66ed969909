import Foundation
import HelpDeskCore
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import PostgresClient
import RedisClient
import ServiceLifecycle

/// The shared parts of a node, built once at start and handed to controllers.
public struct NodeServices: Sendable {
    public let configuration: ServerConfiguration
    public let redis: RedisClient
    public let subscriber: RedisSubscriber
    public let scripts: RedisScripts
    public let postgres: PostgresPool
    public let tokens: JWTSigner
    public let keys: RedisKeys
    public let clock: @Sendable () -> Date
    public let logger: Logger
    /// Set when the node starts draining (SIGTERM).
    public let drain = DrainState()
    /// This node's sockets and the stores the routes share.
    let parts: NodeParts

    public init(configuration: ServerConfiguration, logger: Logger, clock: @escaping @Sendable () -> Date = { Date() }) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        var redisConfiguration = try RedisConfiguration(url: configuration.redisURL)
        redisConfiguration.maxBatchCalls = configuration.redisMaxBatch
        redisConfiguration.maxBatchesInFlight = configuration.redisBatchesInFlight
        self.redis = RedisClient(configuration: redisConfiguration, poolSize: configuration.redisPoolSize, logger: logger)
        self.subscriber = RedisSubscriber(configuration: redisConfiguration, logger: logger)
        self.scripts = try ScriptLibrary.load(directory: configuration.luaDirectory)
        self.postgres = PostgresPool(url: configuration.databaseURL, size: configuration.postgresPoolSize, logger: logger)
        self.tokens = JWTSigner(keyring: try JWTKeyring(
            currentKeyID: configuration.jwtKeyID, currentSecret: configuration.jwtSecret, previousKeys: configuration.jwtPreviousKeys))
        self.keys = RedisKeys(prefix: configuration.keyPrefix)
        self.parts = NodeParts(redis: redis, scripts: scripts, keys: keys, postgres: postgres, subscriber: subscriber, clock: clock, logger: logger,
                               socketCaps: .init(perIP: configuration.maxSocketsPerIP, perUser: configuration.maxSocketsPerUser,
                                                 outboundBytes: configuration.socketOutboundBytes,
                                                 messageRate: configuration.socketMessageRate, messageBurst: configuration.socketMessageBurst,
                                                 eventRate: configuration.socketEventRate, eventBurst: configuration.socketEventBurst),
                               maxMessagesPerConversation: configuration.maxMessagesPerConversation,
                               offerTimeoutMs: Int(configuration.offerTimeoutSeconds * 1000))
    }

    /// The drain step of this node; run it after the application in one `ServiceGroup`.
    public func drainService() -> DrainService {
        DrainService(state: drain, hub: parts.hub, timeout: .seconds(configuration.drainTimeoutSeconds), logger: logger)
    }

    /// Closes the pools (after the server stopped).
    public func shutdown() async {
        await redis.close()
        await postgres.shutdown()
    }
}

/// The realtime parts of a node: its sockets hub and the stores the routes share.
struct NodeParts: Sendable {
    let store: LiveStore
    let archive: ArchiveStore
    let users: UserStore
    let hub: ConnectionHub
    /// When offer routing, offer deadlines and wrap-ups run on this node.
    let router: OfferRouter

    init(redis: RedisClient, scripts: RedisScripts, keys: RedisKeys, postgres: PostgresPool, subscriber: RedisSubscriber,
         clock: @escaping @Sendable () -> Date, logger: Logger, socketCaps: ConnectionHub.Caps, maxMessagesPerConversation: Int = 10_000,
         offerTimeoutMs: Int = 20_000) {
        var store = LiveStore(redis: redis, scripts: scripts, keys: keys, clock: clock)
        store.maxMessagesPerConversation = maxMessagesPerConversation
        store.senderMessageRate = socketCaps.messageRate
        store.senderMessageBurst = socketCaps.messageBurst
        store.attachments = AttachmentStore(pool: postgres)
        self.store = store
        archive = ArchiveStore(pool: postgres)
        users = UserStore(pool: postgres)
        hub = ConnectionHub(store: store, subscriber: subscriber, keys: keys, logger: logger, caps: socketCaps)
        router = OfferRouter(store: store, hub: hub, postgres: postgres, offerTimeoutMs: offerTimeoutMs, logger: logger)
    }
}

/// Builds the router: health, metrics, the REST API, the WebSocket and the web UI.
func buildRouter(_ services: NodeServices) -> Router<AppRequestContext> {
    let parts = services.parts
    Metrics.bootstrap()
    let router = Router(context: AppRequestContext.self)
    router.addMiddleware {
        // Outermost: the request id (X-Request-Id, logs, error bodies) and the access log line.
        RequestIDMiddleware<AppRequestContext>()
        // So errors and static files get the headers too.
        SecurityHeadersMiddleware<AppRequestContext>()
        ErrorMiddleware<AppRequestContext>()
        MetricsMiddleware<AppRequestContext>()
        // The web UI: plain files, `/agent` serves Public/agent/index.html.
        FileMiddleware<AppRequestContext, LocalFileSystem>(services.configuration.publicDirectory, searchForIndexHtml: true, logger: services.logger)
    }
    let chartJS = services.configuration.chartJSPath
    router.get("vendor/chart.min.js") { _, _ in
        // Debian's libjs-chart.js, served from where the package put it (not copied into the repository).
        guard let data = FileManager.default.contents(atPath: chartJS) else {
            throw HelpDeskError(.notFound, "Chart.js is not installed at \(chartJS) (apt install libjs-chart.js)")
        }
        return Response(status: .ok, headers: [.contentType: "application/javascript", .cacheControl: "max-age=86400"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
    // The API's own description (API/APIDocument.swift, API/AsyncAPIDocument.swift); `/docs` is a page in Public/.
    router.get("openapi.json") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: APIDocument.json)))
    }
    router.get("asyncapi.json") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: AsyncAPIDocument.json)))
    }
    HealthController(redis: services.redis, postgres: services.postgres, nodeID: services.configuration.nodeID, drain: services.drain,
                     metricsToken: services.configuration.metricsToken,
                     refreshMetrics: { [store = parts.store, hub = parts.hub] in await NodeMetrics.refresh(store: store, hub: hub) })
        .addRoutes(to: router)

    let api = router.group("api/v1")
    api.add(middleware: BearerAuthMiddleware(tokens: services.tokens, clock: services.clock))
    let authenticated = api.group(context: AuthenticatedContext.self)

    let users = parts.users
    let auth = AuthService(
        users: users, pool: services.postgres, redis: services.redis, scripts: services.scripts, keys: services.keys,
        tokens: services.tokens, configuration: services.configuration, clock: services.clock)
    AuthController(auth: auth, users: users, trustProxy: services.configuration.trustProxy)
        .addRoutes(public: api, authenticated: authenticated)
    UsersController(users: users, store: parts.store, offers: parts.router).addRoutes(to: authenticated)
    CategoriesController(pool: services.postgres, router: parts.router).addRoutes(public: api, authenticated: authenticated)
    let conversations = ConversationsController(store: parts.store, archive: parts.archive, users: users, services: services, router: parts.router)
    conversations.addRoutes(public: api, authenticated: authenticated)
    WorkflowsController(store: parts.store, router: parts.router).addRoutes(to: authenticated)
    CustomerAccountsController(accounts: CustomerAccounts(pool: services.postgres), store: parts.store, archive: parts.archive, services: services)
        .addRoutes(public: api, authenticated: authenticated)
    AttachmentsController(attachments: AttachmentStore(pool: services.postgres), conversations: conversations,
                          maxBytes: services.configuration.attachmentMaxBytes)
        .addRoutes(to: authenticated)
    AnalyticsController(pool: services.postgres, store: parts.store).addRoutes(to: authenticated)
    TeamAnalyticsController(pool: services.postgres, store: parts.store, sla: services.configuration.slaFirstResponse,
                            maxCSVRows: services.configuration.exportMaxRows).addRoutes(to: authenticated)
    // Each in a group of its own: the middleware guards only that controller's routes.
    ICEServersController(configuration: services.configuration, clock: services.clock)
        .addRoutes(to: authenticated.group().add(middleware: CallParticipantMiddleware(store: parts.store)))
    WebSocketController(hub: parts.hub, store: parts.store, users: users, services: services)
        .addRoutes(router: router, authenticated: authenticated.group().add(middleware: TicketRateLimitMiddleware(services: services)))
    return router
}

/// HTTP/1 through the router, and `/ws` upgrades run on the event loops (`SocketServerChannel`).
func socketServer(router: Router<AppRequestContext>, sockets: WebSocketController) -> HTTPServerBuilder {
    let upgradeResponder = router.buildResponder()
    return HTTPServerBuilder { responder in
        SocketServerChannel(
            responder: responder,
            respondToUpgrade: { request, context in try await upgradeResponder.respond(to: request, context: context) },
            startSocket: { channel, upgrade in try sockets.startSocket(channel: channel, upgrade: upgrade) },
            maxFrameSize: WebSocketController.maxFrameSize)
    }
}

/// A node: migrates PostgreSQL, loads the Lua scripts, then serves HTTP and WebSocket.
public func buildApplication(
    _ services: NodeServices, migrate: Bool = true, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    if migrate {
        try await Migrator(pool: services.postgres, directory: services.configuration.migrationsDirectory, logger: services.logger).migrate()
    }
    try await services.scripts.loadAll(on: services.redis)
    let parts = services.parts
    do {
        // The routing scripts read the category tree from Redis: mirror it before serving.
        try await parts.router.loadCategories()
    } catch {
        services.logger.warning("category mirror not loaded at start (retried at each heartbeat)", metadata: ["error": "\(error)"])
    }
    let router = buildRouter(services)
    let configuration = services.configuration
    var app = Application(
        router: router,
        server: socketServer(router: router, sockets: WebSocketController(hub: parts.hub, store: parts.store, users: parts.users, services: services)),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "helpdesk"),
        onServerRunning: onServerRunning,
        logger: services.logger)
    app.addServices(
        services.subscriber,
        PubSubPump(hub: parts.hub, subscriber: services.subscriber, logger: services.logger),
        PresenceService(
            hub: parts.hub, store: parts.store, router: parts.router, nodeID: configuration.nodeID,
            interval: .milliseconds(Int(configuration.heartbeatSeconds * 1000)),
            agentGrace: .seconds(configuration.agentGraceSeconds), customerGrace: .seconds(configuration.customerGraceSeconds),
            logger: services.logger),
        OutboxFlusher(services: services),
        AttachmentSweeper(attachments: AttachmentStore(pool: services.postgres), interval: .seconds(60), logger: services.logger))
    return app
}

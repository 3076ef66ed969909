import Foundation
import HelpDeskCore
import Hummingbird
import HummingbirdWebSocket
import Logging
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

    public init(configuration: ServerConfiguration, logger: Logger, clock: @escaping @Sendable () -> Date = { Date() }) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        let redisConfiguration = try RedisConfiguration(url: configuration.redisURL)
        self.redis = RedisClient(configuration: redisConfiguration, poolSize: configuration.redisPoolSize, logger: logger)
        self.subscriber = RedisSubscriber(configuration: redisConfiguration, logger: logger)
        self.scripts = try RedisScripts(directory: configuration.luaDirectory)
        self.postgres = PostgresPool(url: configuration.databaseURL, size: configuration.postgresPoolSize, logger: logger)
        self.tokens = JWTSigner(keyring: try JWTKeyring(
            currentKeyID: configuration.jwtKeyID, currentSecret: configuration.jwtSecret, previousKeys: configuration.jwtPreviousKeys))
        self.keys = RedisKeys(prefix: configuration.keyPrefix)
    }

    /// Closes the pools (after the server stopped).
    public func shutdown() async {
        await redis.close()
        await postgres.shutdown()
    }
}

/// Builds the router: health, metrics, the REST API and the web UI.
public func buildRouter(_ services: NodeServices) -> Router<AppRequestContext> {
    Metrics.bootstrap()
    let router = Router(context: AppRequestContext.self)
    router.addMiddleware {
        ErrorMiddleware<AppRequestContext>()
        MetricsMiddleware<AppRequestContext>()
    }
    HealthController(redis: services.redis, postgres: services.postgres, nodeID: services.configuration.nodeID).addRoutes(to: router)

    let api = router.group("api/v1")
    api.add(middleware: BearerAuthMiddleware(tokens: services.tokens, clock: services.clock))
    let authenticated = api.group(context: AuthenticatedContext.self)

    let users = UserStore(pool: services.postgres)
    let auth = AuthService(
        users: users, pool: services.postgres, redis: services.redis, scripts: services.scripts, keys: services.keys,
        tokens: services.tokens, configuration: services.configuration, clock: services.clock)
    AuthController(auth: auth, users: users, trustProxy: services.configuration.trustProxy)
        .addRoutes(public: api, authenticated: authenticated)
    UsersController(users: users).addRoutes(to: authenticated)
    return router
}

/// A node: migrates PostgreSQL, loads the Lua scripts, then serves HTTP and WebSocket.
public func buildApplication(_ services: NodeServices, migrate: Bool = true) async throws -> some ApplicationProtocol {
    if migrate {
        try await Migrator(pool: services.postgres, directory: services.configuration.migrationsDirectory, logger: services.logger).migrate()
    }
    try await services.scripts.loadAll(on: services.redis)
    let router = buildRouter(services)
    var app = Application(
        router: router,
        server: .http1WebSocketUpgrade(webSocketRouter: router),
        configuration: .init(address: .hostname(services.configuration.host, port: services.configuration.port), serverName: "helpdesk"),
        logger: services.logger)
    app.addServices(services.subscriber)
    return app
}

// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "helpdesk",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "helpdesk", targets: ["helpdesk"]),
        .executable(name: "helpdesk-bench", targets: ["helpdesk-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis"),
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .target(
            name: "RedisClient",
            dependencies: [
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "PostgresClient",
            dependencies: [
                "CLibPQ",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        /// The wire protocol: events, views, error codes, the pub/sub envelope, the JSON reader/writer.
        .target(name: "HelpDeskProtocol"),
        .target(
            name: "HelpDeskCore",
            dependencies: ["COpenSSL", "HelpDeskProtocol"]
        ),
        .target(
            name: "HelpDeskServer",
            dependencies: [
                "RedisClient", "PostgresClient", "HelpDeskCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "helpdesk",
            dependencies: [
                "HelpDeskServer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // jemalloc (Debian's libjemalloc-dev) as the node's malloc: glibc's malloc and free were
            // ~10 % of a node's CPU at the relay's maximum; with jemalloc a node delivers ~11 % more
            // messages per core-second, at the same idle-socket RSS (BENCHMARKS.md, sixth round).
            linkerSettings: [.linkedLibrary("jemalloc")]
        ),
        .executableTarget(
            name: "helpdesk-bench",
            dependencies: [
                "HelpDeskProtocol",
                // FlushBench prepares conversations through the server's own LiveStore and runs its flusher.
                "HelpDeskServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["PostgresClient"]),
        .testTarget(
            name: "RedisClientTests",
            dependencies: [
                "RedisClient", "TestSupport", "CHiredis",
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "PostgresClientTests", dependencies: ["PostgresClient", "TestSupport"]),
        .testTarget(name: "HelpDeskCoreTests", dependencies: ["HelpDeskCore"]),
        .testTarget(name: "HelpDeskProtocolTests", dependencies: ["HelpDeskProtocol"]),
        .testTarget(
            name: "HelpDeskServerTests",
            dependencies: [
                "HelpDeskServer", "TestSupport",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets, in a package of their own so that `swift build` of the project never pays
/// for them (scripts/fuzz.sh builds this one). The code under test is the project's own: the
/// modules below are symlinks into ../Sources, compiled here with coverage instrumentation
/// (`-sanitize=fuzzer`) and AddressSanitizer (which also gives libFuzzer its malloc limit).
/// Each target's main.swift hands control to libFuzzer (`LLVMFuzzerRunDriver`, CLibFuzzer).
let fuzzFlags: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]
let fuzzLink: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]

let package = Package(
    name: "helpdesk-fuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        /// Symlink to ../Sources/HelpDeskProtocol (no dependencies).
        .target(name: "HelpDeskProtocol", swiftSettings: fuzzFlags),
        /// Symlink to ../Sources/CHiredis (Debian's libhiredis).
        .systemLibrary(name: "CHiredis"),
        /// The RESP decoder alone: symlinks to RESPDecoder.swift, RESPValue.swift and
        /// RedisError.swift of ../Sources/RedisClient (the rest of that module needs NIOPosix,
        /// Logging and ServiceLifecycle, which the decoder does not).
        .target(
            name: "RedisClient",
            dependencies: ["CHiredis", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: fuzzFlags
        ),
        /// The declaration of `LLVMFuzzerRunDriver`.
        .target(name: "CLibFuzzer"),
        .executableTarget(
            name: "FuzzClientFrame",
            dependencies: ["HelpDeskProtocol", "CLibFuzzer"],
            swiftSettings: fuzzFlags,
            linkerSettings: fuzzLink
        ),
        .executableTarget(
            name: "FuzzRESP",
            dependencies: [
                "RedisClient", "CLibFuzzer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: fuzzFlags,
            linkerSettings: fuzzLink
        ),
    ],
    swiftLanguageModes: [.v6]
)

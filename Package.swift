// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "omx",
    products: [
        .executable(name: "omx", targets: ["omx"]),
        .executable(name: "omx-discovery", targets: ["Discovery"]),
        .executable(name: "omx-balancer", targets: ["Balancer"]),
        .executable(name: "omx-migrator", targets: ["Migrator"]),
        .executable(name: "omx-fsgateway", targets: ["FSGateway"]),
        .executable(name: "omx-rawbench", targets: ["RawBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // MARK: C shims (nothing else includes C headers)
        .target(name: "CLibUV", linkerSettings: [.linkedLibrary("uv")]),
        .target(name: "COpenSSL", linkerSettings: [.linkedLibrary("crypto")]),
        .target(
            name: "OMXProto",
            path: "proto/c",
            publicHeadersPath: ".",
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),

        // MARK: The shared library: RPC runtime, wire, auth, map, config, logging
        .target(
            name: "Shared",
            dependencies: [
                "CLibUV", "COpenSSL", "OMXProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: The per-node services
        .executableTarget(name: "Discovery", dependencies: ["Shared"]),
        .executableTarget(name: "Balancer", dependencies: ["Shared"]),
        .executableTarget(name: "Migrator", dependencies: ["Shared"]),
        .executableTarget(name: "FSGateway", dependencies: ["Shared"]),

        // MARK: The command-line tool and the benchmarks
        .executableTarget(
            name: "omx",
            dependencies: ["Shared", "OMXBench", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "OMXBench", dependencies: ["Shared"]),
        .executableTarget(name: "RawBench"),

        // MARK: Tests
        .testTarget(name: "SharedTests", dependencies: ["Shared"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Shared"]),
    ],
    swiftLanguageModes: [.v5]
)

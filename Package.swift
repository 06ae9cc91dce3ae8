// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "omx",
    products: [
        .executable(name: "omx", targets: ["omx"]),
        .executable(name: "omx-discovery", targets: ["omx-discovery"]),
        .executable(name: "omx-balancer", targets: ["omx-balancer"]),
        .executable(name: "omx-migrator", targets: ["omx-migrator"]),
        .executable(name: "omx-fsgateway", targets: ["omx-fsgateway"]),
        .executable(name: "omx-jobinit", targets: ["JobInit"]),
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
        .target(name: "CMigrator", linkerSettings: [.linkedLibrary("z")]),
        .target(name: "CFileSystem"),
        .target(name: "CFuse", cSettings: [.unsafeFlags(["-I/usr/include/fuse3"])], linkerSettings: [.linkedLibrary("fuse3")]),
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
            ],
            // Exclusivity is checked at run time in debug builds, which every test runs; release
            // builds leave it to those: on the per-call path the check costs a thread-local
            // lookup per access of a class's stored property.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),

        // MARK: The per-node services: each a library (shared with tests and benchmarks) and a
        // one-line executable that runs it
        .target(name: "Discovery", dependencies: ["Shared"]),
        .target(name: "Balancer", dependencies: ["Shared"]),
        .target(name: "Migrator", dependencies: ["Shared", "CMigrator"]),
        // The init of every job's PID namespace (C: it must start fast and stay small).
        .executableTarget(name: "JobInit"),
        .target(name: "FSGateway", dependencies: ["Shared", "CFileSystem", "CFuse"]),
        .executableTarget(name: "omx-discovery", dependencies: ["Discovery", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "omx-balancer", dependencies: ["Balancer", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "omx-migrator", dependencies: ["Migrator", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "omx-fsgateway", dependencies: ["FSGateway", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // MARK: The command-line tool and the benchmarks
        .executableTarget(
            name: "omx",
            dependencies: ["Shared", "Discovery", "Migrator", "Balancer", "OMXBench", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "OMXBench", dependencies: ["Shared", "Discovery", "Balancer"]),
        .executableTarget(name: "RawBench", dependencies: ["COpenSSL", "OMXProto"], linkerSettings: [.linkedLibrary("uv")]),

        // MARK: Tests
        .testTarget(name: "SharedTests", dependencies: ["Shared"]),
        .testTarget(name: "DiscoveryTests", dependencies: ["Discovery"]),
        .testTarget(name: "MigratorTests", dependencies: ["Migrator"]),
        .testTarget(name: "BalancerTests", dependencies: ["Balancer"]),
        .testTarget(name: "FSGatewayTests", dependencies: ["FSGateway"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Shared"]),
    ],
    swiftLanguageModes: [.v5]
)

// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "swift-reactive-kafka",
    // Task.immediate and nonisolated(nonsending) need the Swift 6.2 runtime: macOS 26 on Darwin.
    platforms: [.macOS(.v26)],
    products: [
        .library(name: "StreamKit", targets: ["StreamKit"]),
        .library(name: "ReactiveKafka", targets: ["ReactiveKafka"]),
        .library(name: "ReactiveKafkaTestKit", targets: ["ReactiveKafkaTestKit"]),
        .executable(name: "rkafka", targets: ["rkafka"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["JSON", "YAML"]),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/attaswift/BigInt", from: "6.0.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // rkafka lag's HTTP endpoint and its Prometheus text (the command-line tool only, not the library).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The latency scenario of `rkafka bench` (percentiles of per-record latencies).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // `make docs`: the DocC catalogues (swift package generate-documentation); a command plugin, never linked.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // KafkaTable's persistent store (SQLite).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"]), .brew(["librdkafka"])]
        ),
        // In sanitizer builds, librdkafka's C11 threads and locks routed through pthreads (see its header).
        .target(name: "CSanitizerSupport"),
        .target(
            name: "StreamKit",
            dependencies: [
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "ReactiveKafka",
            dependencies: [
                "StreamKit",
                "CRdKafka",
                "CSanitizerSupport",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
                // W3C trace context in record headers (`Tracing` re-exports `Instrumentation`).
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .target(
            name: "ReactiveKafkaTestKit",
            dependencies: ["ReactiveKafka", "CRdKafka"]
        ),
        .target(name: "CAllocationCounter"),
        .executableTarget(
            name: "rkafka",
            dependencies: [
                "ReactiveKafka", "ReactiveKafkaTestKit", "StreamKit", "CRdKafka", "CAllocationCounter",
                "FraudDetection",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .executableTarget(
            name: "factorials",
            dependencies: ["StreamKit", .product(name: "BigInt", package: "BigInt")],
            path: "Examples/factorials"
        ),
        .executableTarget(
            name: "backpressure-demo",
            dependencies: ["StreamKit"],
            path: "Examples/backpressure-demo"
        ),
        // The fraud-detection example: the library part is shared with `rkafka demo --stateful`.
        .target(
            name: "FraudDetection",
            dependencies: [
                "ReactiveKafka", "ReactiveKafkaTestKit", "StreamKit",
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            path: "Examples/fraud-detection/Sources/FraudDetection"
        ),
        .executableTarget(
            name: "fraud-detection",
            dependencies: ["FraudDetection", "ReactiveKafkaTestKit"],
            path: "Examples/fraud-detection/Sources/fraud-detection"
        ),
        .testTarget(
            name: "StreamKitTests",
            dependencies: ["StreamKit", .product(name: "AsyncAlgorithms", package: "swift-async-algorithms")]
        ),
        .testTarget(
            name: "ReactiveKafkaTests",
            dependencies: [
                "ReactiveKafka", "ReactiveKafkaTestKit", "StreamKit", "CRdKafka", "CSanitizerSupport",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // Reads the connector's counters (reactive_kafka_committer_skipped_offsets).
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                // Records the spans of the tracing tests (Tests/ReactiveKafkaTests/Tracing).
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                // Writes a SQLite file of another application (PersistentTableTests).
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "RKafkaTests",
            dependencies: [
                "rkafka", "ReactiveKafka", "ReactiveKafkaTestKit", "CRdKafka", "FraudDetection",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
    ]
)

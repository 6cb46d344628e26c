// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "promo-stream",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "promo", targets: ["promo"]),
        .executable(name: "promo-bench", targets: ["promo-bench"]),
        .library(name: "DINOP", targets: ["DINOP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Operations: logs, metrics (Prometheus text on /metrics), lifecycle, the HTTP endpoints.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        // `promo run`'s settings: flags, then PROMO_* environment variables, then a YAML file.
        .package(url: "https://github.com/apple/swift-configuration", from: "1.0.0", traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),  // FilePath, for the config file
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),  // the config file's keys, to refuse typos
    ],
    targets: [
        // System libraries. Deploy/setup.sh installs their Debian -dev packages.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // librdkafka 2.8.0, built from Debian's source package by Deploy/local/librdkafka.sh into /usr/local.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka"),
        .systemLibrary(name: "CJemalloc", pkgConfig: "jemalloc", providers: [.apt(["libjemalloc-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // The DINOP model math: features, forward, backward, training, weight files, labels.
        // Knows nothing of Kafka or of the command line.
        .target(name: "DINOP", dependencies: ["CBLAS", "CKernels"]),
        // Vectorised element-wise kernels of the step (C, so the compiler's loop vectoriser does the work).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // BOP.md: the buy-through-promotion model (ACMR's transformer over a user's purchases), weight files,
        // forward and backward. Knows nothing of Kafka or of the command line.
        .target(name: "BOP", dependencies: ["DINOP", "CKernels"]),
        // BOP.md's data (XMarket), protocols, Adam training, ranking metrics and the popularity baseline.
        .target(name: "BOPTraining", dependencies: ["BOP", "DINOP", "PromoEvents"]),

        // The public event interface (Topics/): event types, strict decoding, deterministic encoding.
        // Knows nothing of the model or of Kafka.
        .target(name: "PromoEvents"),

        // A Swift wrapper of librdkafka: group consumer, idempotent and transactional producer, admin.
        // Knows nothing of the model or of the events.
        .target(name: "PromoKafka", dependencies: ["CRdKafka"]),

        // librdkafka's mock cluster in its own process: the broker of the exactly-once and fault tests.
        .executableTarget(name: "promo-mock-broker", dependencies: ["CRdKafka"]),

        // The promotion-world generator and the Taobao 11.11 importer: data as events.
        .target(name: "PromoWorld", dependencies: ["PromoEvents"]),

        // Events → the model's vectors and labels.
        .target(name: "PromoFeatures", dependencies: ["DINOP", "PromoEvents"]),

        // The stream processor without Kafka: per-item state, day joins, incremental batched scoring, changelog
        // records, rollups, dead letters.
        .target(name: "PromoStream", dependencies: ["DINOP", "BOP", "PromoEvents", "PromoFeatures"]),

        // Model versions as they travel on the model topic: chunks, SHA-256, announcements, verified assembly.
        // Knows nothing of Kafka.
        .target(name: "PromoModels", dependencies: ["DINOP", "BOP", "PromoEvents", "COpenSSL"]),

        // The service: the processor driven by Kafka (transactions, restore on assignment, rewind on abort).
        .target(name: "PromoService", dependencies: [
            "PromoKafka", "PromoStream", "PromoModels", "PromoEvents", "PromoFeatures", "DINOP", "BOP",
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),

        // The running service's skeleton: the member and the fine-tuner as lifecycle services in one group, the
        // HTTP endpoints (/metrics, /health, /ready), log and metric backends. New stream roles plug in here.
        .target(name: "PromoServer", dependencies: [
            "PromoService", "PromoEvaluation", "PromoKafka", "PromoModels", "PromoEvents", "PromoFeatures", "DINOP",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),

        // Offline evaluation: metrics, the naive and gradient-boosted-trees baselines, DINOP runs.
        .target(name: "PromoEvaluation", dependencies: ["DINOP", "PromoEvents", "PromoFeatures"],
                exclude: ["Peers"]),

        // Offline commands (init, inspect, predict, train) as a library, so tests drive them directly.
        .target(name: "PromoCLI", dependencies: [
            "DINOP", "PromoEvents", "PromoFeatures", "PromoWorld", "PromoEvaluation", "PromoKafka", "PromoStream",
            "PromoService", "PromoServer", "PromoModels", "CJemalloc", "BOP", "BOPTraining",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Configuration", package: "swift-configuration"),
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "promo", dependencies: ["PromoCLI"]),
        .executableTarget(name: "promo-bench", dependencies: ["DINOP", "BOP", "CJemalloc"]),
        .executableTarget(name: "promo-stream-bench", dependencies: [
            "PromoTesting", "PromoStream", "PromoService", "PromoKafka", "PromoEvents", "PromoFeatures", "PromoWorld", "DINOP",
            "CJemalloc", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // What the service tests and the stream benchmark share: local broker processes (Tansu, the mock
        // cluster), child processes with awaitable events, a generated world with its offline predictions, probes.
        .target(name: "PromoTesting", dependencies: [
            "PromoKafka", "PromoService", "PromoEvents", "PromoFeatures", "PromoWorld", "DINOP",
        ]),

        .testTarget(name: "DINOPTests", dependencies: ["DINOP"]),
        .testTarget(name: "BOPTests", dependencies: ["BOP", "BOPTraining", "DINOP"]),
        .testTarget(name: "PromoEventsTests", dependencies: ["PromoEvents", "DINOP"]),
        .testTarget(name: "PromoModelsTests", dependencies: ["PromoModels", "PromoEvents", "DINOP"]),
        .testTarget(name: "PromoEvaluationTests",
                    dependencies: ["PromoEvaluation", "PromoFeatures", "PromoEvents", "PromoWorld", "DINOP"]),
        .testTarget(name: "PromoStreamTests",
                    dependencies: ["PromoStream", "PromoFeatures", "PromoEvents", "PromoWorld", "DINOP", "BOP"]),
        // Separate broker processes and `promo run` processes over TCP.
        .testTarget(name: "PromoServiceTests", dependencies: [
            "PromoTesting", "PromoKafka", "PromoService", "PromoModels", "PromoFeatures", "PromoEvents", "PromoWorld", "DINOP", "BOP",
        ]),
        // PromoKafka against librdkafka's mock cluster in its own process.
        .testTarget(name: "PromoKafkaTests", dependencies: ["PromoKafka", "PromoTesting"]),
        .testTarget(name: "PromoWorldTests", dependencies: ["PromoWorld", "PromoEvents"]),
        .testTarget(name: "PromoCLITests", dependencies: [
            "PromoCLI", "DINOP", "PromoEvents", "PromoFeatures",
        ]),
    ]
)

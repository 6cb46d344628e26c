import ArgumentParser
import Foundation
import PromoKafka

/// Where the brokers are and any librdkafka property (CONFIGURATION.md), for every command that talks to Kafka.
struct KafkaOptions: ParsableArguments {
    @Option(help: "Bootstrap brokers, host:port[,host:port…] (default: $PROMO_BOOTSTRAP or 127.0.0.1:9092).")
    var bootstrap: String?
    @Option(name: [.customShort("X"), .customLong("kafka")],
            help: "A librdkafka property key=value (repeatable), e.g. -X security.protocol=SASL_SSL.")
    var properties: [String] = []

    func config() throws -> KafkaConfig {
        let servers = bootstrap ?? ProcessInfo.processInfo.environment["PROMO_BOOTSTRAP"] ?? "127.0.0.1:9092"
        var config = KafkaConfig(bootstrapServers: servers)
        if let bad = config.apply(properties) { throw ValidationError("-X \(bad): expected key=value") }
        return config
    }
}

import ArgumentParser
import Foundation
import PromoKafka
import PromoService

/// Where the brokers are and any librdkafka property (CONFIGURATION.md), for every command that talks to Kafka.
struct KafkaOptions: ParsableArguments {
    @Option(help: "Bootstrap brokers, host:port[,host:port…] (default: $PROMO_BOOTSTRAP or 127.0.0.1:9092).")
    var bootstrap: String?
    @Option(name: [.customShort("X"), .customLong("kafka")],
            help: "A librdkafka property key=value (repeatable), e.g. -X security.protocol=SASL_SSL.")
    var properties: [String] = []

    /// The brokers the commands talk to (`-X bootstrap.servers=` wins, as in `config`).
    var servers: String {
        var config = KafkaConfig(bootstrapServers: defaultServers)
        _ = config.apply(properties)
        return config["bootstrap.servers"] ?? defaultServers
    }

    private var defaultServers: String { bootstrap ?? ProcessInfo.processInfo.environment["PROMO_BOOTSTRAP"] ?? "127.0.0.1:9092" }

    func config() throws -> KafkaConfig {
        var config = KafkaConfig(bootstrapServers: defaultServers)
        if let bad = config.apply(properties) { throw ValidationError("-X \(bad): expected key=value") }
        return config
    }

    /// Runs a command's work, naming the brokers in any Kafka error: librdkafka's own text ("Broker transport
    /// failure", "Timed out") does not say which cluster could not be reached.
    func namingBrokers<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as KafkaError {
            throw BrokerError(error, servers: servers)
        } catch let error as BacktestError {
            throw BrokerError("\(error) on \(servers)")
        }
    }

    /// The error of a topic the cluster does not have.
    func noTopic(_ topic: String) -> BrokerError { BrokerError("no topic \(topic) on \(servers)") }

    /// The configuration of a command that only reads: asking about a topic must not create it (a broker with
    /// auto.create.topics.enable would, with its defaults).
    func readingConfig() throws -> KafkaConfig {
        var config = try config()
        config["allow.auto.create.topics"] = config["allow.auto.create.topics"] ?? "false"
        return config
    }
}

/// A Kafka error with the brokers it concerned.
struct BrokerError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }

    init(_ error: KafkaError, servers: String) {
        // librdkafka's names for "no broker answered" (KafkaError.name): say that plainly.
        let unreachable = ["_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE"].contains(error.name)
        description = unreachable ? "cannot reach the brokers at \(servers): \(error)" : "\(error) (brokers \(servers))"
    }
}

import ArgumentParser
import DINOP
import Dispatch
import Foundation
import PromoEvents
import PromoKafka
import PromoService
import PromoStream

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
        for property in properties {
            guard let eq = property.firstIndex(of: "="), eq != property.startIndex else {
                throw ValidationError("-X \(property): expected key=value")
            }
            config[String(property[..<eq])] = String(property[property.index(after: eq)...])
        }
        return config
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a stream-processor member: consume the input topics, publish predictions, rollups and dead letters.",
        discussion: """
            Members of one --group share the input partitions. SIGTERM or SIGINT finishes the batch in flight, \
            commits it, leaves the group and exits 0.
            """)

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "A dinop/1 weight file.") var model: String
    @Option(help: "Consumer group of the members.") var group = "promo-stream"
    @Option(help: "This member's name: unique in the group and the same across restarts (names its transactional id).")
    var member = ProcessInfo.processInfo.hostName
    @Option(help: "exactly-once (transactions) or at-least-once (idempotent producer, commit after flush).")
    var mode = DeliveryMode.exactlyOnce.rawValue
    @Option(help: "Seconds the latest day waits for its buyer profile before it is applied without one.")
    var graceSeconds = 7200.0
    @Option(help: "Days of the pre-sale window; daily events outside it are dead letters.") var presaleDays = 20
    @Option(help: "At most this many input messages per transaction.") var maxBatch = 10_000

    func run() throws {
        guard let mode = DeliveryMode(rawValue: mode) else {
            throw ValidationError("--mode must be one of \(DeliveryMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var options = ServiceOptions(kafka: try kafka.config(), member: member)
        options.group = group
        options.mode = mode
        options.maxBatch = maxBatch
        options.processor.gracePeriodMs = Int64(graceSeconds * 1000)
        options.processor.presaleDays = presaleDays
        let model = try loadModel(model)
        let member = member
        // Batches are a few hundred rows: one BLAS thread is faster than several spinning against the broker
        // client's threads on the same cores.
        BLAS.setThreads(1)
        let service = StreamService(model: model, options: options) { report("promo run [\(member)]: \($0)") }
        let stop = StopSignal()
        let signals = StopOnSignals(stop)
        withExtendedLifetime(signals) {}
        report("promo run [\(member)]: model version \(model.version)")
        try service.run(until: stop)
        withExtendedLifetime(signals) {}
    }
}

/// Turns SIGTERM and SIGINT into a stop request instead of an exit.
final class StopOnSignals {
    private var sources: [DispatchSourceSignal] = []

    init(_ stop: StopSignal) {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.stop() }
            source.resume()
            sources.append(source)
        }
    }
}

struct TopicsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics", abstract: "Create the topics of Topics/topics/ that do not exist yet.")

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Folder of topic specs.") var specs = "Topics/topics"
    @Flag(help: "One replica and min.insync.replicas=1, for a single-broker development cluster.")
    var singleBroker = false

    func run() throws {
        var topics = try TopicSpec.load(folder: URL(fileURLWithPath: specs))
        if singleBroker { topics = topics.map(\.singleBroker) }
        let created = try KafkaAdmin(try kafka.config()).createTopics(topics)
        report("promo topics: \(created.count) created, \(topics.count - created.count) already there")
    }
}

struct ProduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Produce JSON-lines event files to their topics, keyed by item id (a line that does not decode is reported and skipped).")

    @OptionGroup var kafka: KafkaOptions
    @Argument(help: "JSON-lines event files, produced in order.") var files: [String]
    @Option(help: "Days of the pre-sale window.") var presaleDays = 20

    func run() throws {
        var config = try kafka.config()
        config["partitioner"] = config["partitioner"] ?? "murmur2_random"
        config["linger.ms"] = config["linger.ms"] ?? "20"
        let producer = try KafkaProducer(config)
        let topics = ServiceTopics()
        var produced = 0
        for file in files {
            try EventFile.read(URL(fileURLWithPath: file), decoder: EventDecoder(presaleDays: presaleDays),
                               rejected: { report("rejected \($0)") }) { event in
                guard let topic = topics.topic(schema: event.schema) else { return }
                try producer.produce(topic: topic, key: event.itemID.map { Array($0.utf8) }, value: event.encoded())
                produced += 1
                if produced % 100_000 == 0 { producer.poll() }
            }
        }
        try producer.flush(timeoutMs: 120_000)
        report("promo produce: \(produced) events")
    }
}

internal import CRdKafka

/// librdkafka configuration properties (see librdkafka's CONFIGURATION.md), validated when a client is made.
public struct KafkaConfig: Sendable {
    public var properties: [String: String]
    /// Where librdkafka's own log lines go, for every client made from this configuration; nil: librdkafka
    /// writes them to standard error itself.
    public var logHandler: KafkaLogHandler?

    public init(bootstrapServers: String, _ properties: [String: String] = [:]) {
        self.properties = properties
        self.properties["bootstrap.servers"] = bootstrapServers
    }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// Sets each `key=value` in order (a later one wins); returns the first entry that is not `key=value`, if any.
    public mutating func apply(_ assignments: [String]) -> String? {
        for assignment in assignments {
            guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else { return assignment }
            properties[String(assignment[..<eq])] = String(assignment[assignment.index(after: eq)...])
        }
        return nil
    }

    /// Without the properties that only the other kind of client reads (librdkafka warns about each), so one
    /// configuration can serve a member's consumer and producer.
    func only(_ kind: ClientKind) -> KafkaConfig {
        var copy = self
        let foreign = kind == .consumer ? Self.producerOnly : Self.consumerOnly
        copy.properties = properties.filter { !foreign.contains($0.key) }
        return copy
    }

    enum ClientKind { case consumer, producer }

    /// librdkafka's CONFIGURATION.md, properties marked C (consumer) or P (producer) only.
    static let consumerOnly: Set<String> = [
        "group.id", "group.instance.id", "partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms",
        "group.protocol.type", "group.protocol", "group.remote.assignor", "coordinator.query.interval.ms",
        "max.poll.interval.ms", "enable.auto.commit", "auto.commit.interval.ms", "enable.auto.offset.store",
        "queued.min.messages", "queued.max.messages.kbytes", "fetch.wait.max.ms", "fetch.queue.backoff.ms",
        "fetch.message.max.bytes", "max.partition.fetch.bytes", "fetch.max.bytes", "fetch.min.bytes",
        "fetch.error.backoff.ms", "isolation.level", "enable.partition.eof", "check.crcs", "auto.offset.reset",
    ]
    static let producerOnly: Set<String> = [
        "transactional.id", "transaction.timeout.ms", "enable.idempotence", "enable.gapless.guarantee",
        "queue.buffering.max.messages", "queue.buffering.max.kbytes", "queue.buffering.max.ms", "linger.ms",
        "message.send.max.retries", "retries", "retry.backoff.ms", "queue.buffering.backpressure.threshold",
        "compression.codec", "compression.type", "compression.level", "batch.num.messages", "batch.size",
        "delivery.report.only.error", "sticky.partitioning.linger.ms", "partitioner", "request.required.acks", "acks",
        "request.timeout.ms", "message.timeout.ms", "delivery.timeout.ms",
    ]

    /// A new `rd_kafka_conf_t` whose callbacks find `context`; the caller owns it until `rd_kafka_new` takes it,
    /// and keeps `context` alive as long as the handle.
    func make(_ context: ClientContext) throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(configuration: "\(key)=\(value): \(text(errstr))")
            }
        }
        context.install(on: conf)
        return conf
    }
}

/// Creates a client from a configuration, or throws librdkafka's reason.
func makeClient(_ type: rd_kafka_type_t, _ conf: OpaquePointer) throws -> OpaquePointer {
    var errstr = [CChar](repeating: 0, count: 512)
    guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
        rd_kafka_conf_destroy(conf)
        throw KafkaError(configuration: text(errstr))
    }
    return handle
}

public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

/// The text of a NUL-terminated error buffer librdkafka filled.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

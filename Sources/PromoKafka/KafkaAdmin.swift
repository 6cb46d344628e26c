internal import CRdKafka
import Foundation

/// A topic as the specs under `Topics/topics/` describe it.
public struct TopicSpec: Sendable, Decodable, Equatable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    public var config: [String: String]
    /// Named after one application's consumer group (`groupPlaceholder`).
    public var isInternal = false

    enum CodingKeys: String, CodingKey {
        case name, partitions, config
        case replicationFactor = "replication_factor"
    }

    public init(name: String, partitions: Int, replicationFactor: Int, config: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.config = config
    }

    /// Stands for the consumer group in the name of a topic internal to one application (its state changelog).
    public static let groupPlaceholder = "{group}"

    /// Every `*.json` spec of a folder, by name, with `{group}` in names replaced by `group`.
    public static func load(folder: URL, group: String = "promo-stream") throws -> [TopicSpec] {
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        return try files.map {
            var spec = try JSONDecoder().decode(TopicSpec.self, from: Data(contentsOf: $0))
            spec.isInternal = spec.name.contains(groupPlaceholder)
            spec.name = spec.name.replacingOccurrences(of: groupPlaceholder, with: group)
            return spec
        }
    }

    /// The spec for a single-broker development cluster: one replica, so `min.insync.replicas` is 1.
    public var singleBroker: TopicSpec {
        var spec = self
        spec.replicationFactor = 1
        spec.config["min.insync.replicas"] = "1"
        return spec
    }
}

/// Topic administration and cluster metadata.
public final class KafkaAdmin: @unchecked Sendable {
    private let handle: OpaquePointer
    private let context: ClientContext

    public init(_ config: KafkaConfig) throws {
        context = ClientContext(log: config.logHandler)
        handle = try makeClient(RD_KAFKA_PRODUCER, try config.only(.producer).make(context))
    }

    deinit { rd_kafka_destroy(handle) }

    /// Creates the topics that do not exist yet; returns the names created. An existing topic is left as it is.
    @discardableResult
    public func createTopics(_ specs: [TopicSpec], timeoutMs: Int32 = 30_000) throws -> [String] {
        guard !specs.isEmpty else { return [] }
        var errstr = [CChar](repeating: 0, count: 512)
        var topics: [OpaquePointer?] = []
        defer { for topic in topics { rd_kafka_NewTopic_destroy(topic) } }
        for spec in specs {
            guard let topic = rd_kafka_NewTopic_new(spec.name, Int32(spec.partitions), Int32(spec.replicationFactor),
                                                    &errstr, errstr.count) else {
                throw KafkaError(configuration: "topic \(spec.name): \(text(errstr))")
            }
            topics.append(topic)
            for (key, value) in spec.config.sorted(by: { $0.key < $1.key }) {
                try KafkaError.check(rd_kafka_NewTopic_set_config(topic, key, value), "topic \(spec.name) config \(key)")
            }
        }
        let queue = rd_kafka_queue_new(handle)!
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMs, &errstr, errstr.count)
        rd_kafka_CreateTopics(handle, &topics, topics.count, options, queue)
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 5_000) else {
            throw KafkaError(code: RD_KAFKA_RESP_ERR__TIMED_OUT, "create topics")
        }
        defer { rd_kafka_event_destroy(event) }
        try KafkaError.check(rd_kafka_event_error(event), "create topics")
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return [] }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return [] }
        var created: [String] = []
        for i in 0..<count {
            let name = String(cString: rd_kafka_topic_result_name(results[i]))
            let err = rd_kafka_topic_result_error(results[i])
            if err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS { continue }
            try KafkaError.check(err, "create topic \(name)")
            created.append(name)
        }
        return created
    }

    /// Partition count of a topic, or nil when the cluster does not know it.
    public func partitionCount(_ topic: String, timeoutMs: Int32 = 10_000) throws -> Int? {
        let rkt = rd_kafka_topic_new(handle, topic, nil)
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        try KafkaError.check(rd_kafka_metadata(handle, 0, rkt, &metadata, timeoutMs), "metadata of \(topic)")
        defer { rd_kafka_metadata_destroy(metadata) }
        guard let m = metadata?.pointee, m.topic_cnt > 0 else { return nil }
        let t = m.topics[0]
        return t.err == RD_KAFKA_RESP_ERR_NO_ERROR ? Int(t.partition_cnt) : nil
    }
}

import DINOP
import Foundation
import PromoEvents
import PromoKafka
import PromoModels

/// The model topic (one partition): publishing a version (its chunks, then its announcement) and reading
/// versions back.
public struct ModelTopic: Sendable {
    public var kafka: KafkaConfig
    public var topic: String
    var partition: TopicPartition { TopicPartition(topic, 0) }

    public init(kafka: KafkaConfig, topic: String = ServiceTopics().models) {
        self.kafka = kafka
        self.topic = topic
    }

    /// Chunks first, then, once they are durable, the announcement: a member that sees the announcement finds
    /// every chunk before it.
    ///
    /// First it checks the package as every member will (`verify`), so that a version they would refuse (weights
    /// that give non-finite predictions, say) never reaches the topic. `verify: false` publishes it as it is: for
    /// tests of what members do with a version damaged on the way.
    public func publish(_ package: ModelPackage, verify: Bool = true) throws {
        if verify {
            _ = try ModelPackage.assemble(package.announcement,
                                          chunks: Dictionary(uniqueKeysWithValues: package.chunks.enumerated().map { ($0, $1) }))
        }
        let producer = try KafkaProducer(producerConfig)
        for (i, chunk) in package.chunks.enumerated() {
            try producer.produce(topic: topic, partition: 0,
                                 key: Array(ModelPackage.chunkKey(version: package.announcement.version, chunk: i).utf8),
                                 value: [UInt8](chunk))
        }
        try producer.flush()
        try announce(package.announcement, with: producer)
    }

    /// Announces a version whose chunks are on the topic already (a rollback).
    public func announce(_ announcement: ModelAnnouncement) throws {
        try announce(announcement, with: try KafkaProducer(producerConfig))
    }

    private func announce(_ announcement: ModelAnnouncement, with producer: KafkaProducer) throws {
        try producer.produce(topic: topic, partition: 0, key: Array(ModelPackage.announcementKey.utf8),
                             value: Event.announcement(announcement).encoded())
        try producer.flush()
    }

    private var producerConfig: KafkaConfig {
        var config = kafka
        // A full chunk plus the record batch's overhead (librdkafka's default is 1,000,000 bytes).
        config["message.max.bytes"] = "2097152"
        return config
    }

    var consumerConfig: KafkaConfig {
        var config = kafka
        config["enable.partition.eof"] = "true"
        config["fetch.message.max.bytes"] = "2097152"
        return config
    }

    /// Everything on the topic now, with the messages that are neither chunks nor announcements.
    public func readLog() throws -> (log: ModelLog, unreadable: [ModelLogError]) {
        let follower = try ModelFollower(self)
        defer { follower.close() }
        let unreadable = try follower.catchUp().unreadable
        return (follower.log, unreadable)
    }

    /// Reads an announced version's chunks from where the log saw them and checks them against the
    /// announcement (`ModelPackageError` says why they do not match).
    public func load(_ announcement: ModelAnnouncement, log: ModelLog) throws -> DINOPModel {
        try ModelPackage.assemble(announcement, chunks: chunks(of: announcement.version, log: log, count: announcement.chunks))
    }

    /// The announced version's file, checked against its announcement but not read as a model.
    public func loadFile(_ announcement: ModelAnnouncement, log: ModelLog) throws -> Data {
        try ModelPackage.assembledFile(announcement, chunks: chunks(of: announcement.version, log: log, count: announcement.chunks))
    }

    /// The chunks of a version found on the topic (the first `count`, or all), by chunk number.
    public func chunks(of version: Int, log: ModelLog, count: Int = .max) throws -> [Int: Data] {
        let offsets = log.chunkOffsets(of: version).filter { $0.key < count }
        guard let first = offsets.values.min(), let last = offsets.values.max() else { return [:] }
        let wanted = Dictionary(offsets.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        let consumer = try KafkaConsumer(consumerConfig)
        defer { try? consumer.close() }
        try consumer.assign([partition: first])
        var chunks: [Int: Data] = [:]
        var reached = false
        let deadline = ContinuousClock.now + .seconds(30)
        while !reached {
            // The consumer retries a silent cluster forever: give up here, so the member's batches go on.
            guard ContinuousClock.now < deadline else { throw KafkaError.timedOut("reading version \(version)'s chunks") }
            for m in try consumer.poll(maxMessages: 64, timeoutMs: 500) {
                if let chunk = wanted[m.offset] { chunks[chunk] = Data(m.value) }
                if m.offset >= last { reached = true }
            }
            // Compacted away or deleted meanwhile: stop at the end of the partition.
            if consumer.takeEndsReached().contains(partition) { break }
        }
        return chunks
    }

    /// The version the members serve: the latest announced one that verifies. Also returns the later
    /// announcements that were refused, with why.
    public func current(_ log: ModelLog) throws -> (served: (DINOPModel, ModelAnnouncement)?, refused: [(ModelAnnouncement, ModelPackageError)]) {
        var refused: [(ModelAnnouncement, ModelPackageError)] = []
        for entry in log.announcements.reversed() {
            do {
                return ((try load(entry.announcement, log: log), entry.announcement), refused)
            } catch let error as ModelPackageError {
                refused.append((entry.announcement, error))
            }
        }
        return (nil, refused)
    }
}

/// A member's view of the model topic: caught up at start, then polled between batches without waiting.
final class ModelFollower {
    let topic: ModelTopic
    private let consumer: KafkaConsumer
    private(set) var log = ModelLog()

    init(_ topic: ModelTopic) throws {
        self.topic = topic
        consumer = try KafkaConsumer(topic.consumerConfig)
        try consumer.assign([topic.partition: KafkaOffset.beginning])
    }

    /// Reads to the end of the topic; returns the announcements read and the messages that could not be.
    func catchUp() throws -> (announcements: [ModelAnnouncement], unreadable: [ModelLogError]) {
        let (low, high) = try consumer.watermarks(topic.partition)
        guard high > low else { return ([], []) }
        var announcements: [ModelAnnouncement] = [], unreadable: [ModelLogError] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while !consumer.takeEndsReached().contains(topic.partition) {
            guard ContinuousClock.now < deadline else { throw KafkaError.timedOut("reading the model topic to its end") }
            let (a, u) = read(try consumer.poll(maxMessages: 64, timeoutMs: 100))
            announcements += a
            unreadable += u
        }
        return (announcements, unreadable)
    }

    /// What arrived since the last call, without waiting.
    func poll() throws -> (announcements: [ModelAnnouncement], unreadable: [ModelLogError]) {
        read(try consumer.poll(maxMessages: 64, timeoutMs: 0))
    }

    private func read(_ messages: [KafkaMessage]) -> ([ModelAnnouncement], [ModelLogError]) {
        var announcements: [ModelAnnouncement] = [], unreadable: [ModelLogError] = []
        for m in messages {
            do {
                if let a = try log.add(offset: m.offset, key: m.key, value: m.value) { announcements.append(a) }
            } catch {
                unreadable.append(error)
            }
        }
        return (announcements, unreadable)
    }

    func close() { try? consumer.close() }
}

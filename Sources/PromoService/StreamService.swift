import DINOP
import Foundation
import PromoKafka
import PromoStream
import Synchronization

/// Set from a signal handler or another thread; the service's loop reads it between batches.
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    public init() {}
    public func stop() { stopped.store(true, ordering: .relaxed) }
    public var isStopped: Bool { stopped.load(ordering: .relaxed) }
}

/// A consumer-group member: consume a batch → process → publish outputs, changelog records and offsets
/// (one transaction in exactly-once mode) → repeat. Runs on the calling thread, which it blocks; never call it
/// from a task of the Swift concurrency pool.
public final class StreamService {
    public let options: ServiceOptions
    let processor: StreamProcessor
    let log: (String) -> Void
    private var consumer: KafkaConsumer!
    private var producer: KafkaProducer!
    public private(set) var processedMessages = 0
    private var transactionOpen = false
    private var needsRewind = false

    public init(model: DINOPModel, options: ServiceOptions, log: @escaping (String) -> Void) {
        self.options = options
        self.processor = StreamProcessor(model: model, options: options.processor)
        self.log = log
    }

    /// Runs until `stop` is set; then finishes the batch in flight, commits, leaves the group and returns.
    public func run(until stop: StopSignal) throws {
        var producerConfig = options.kafka
        producerConfig["partitioner"] = producerConfig["partitioner"] ?? "murmur2_random"
        producerConfig["linger.ms"] = producerConfig["linger.ms"] ?? "5"
        if options.mode == .exactlyOnce {
            producerConfig["transactional.id"] = "\(options.group)-\(options.member)"
        }
        producer = try KafkaProducer(producerConfig)
        if options.mode == .exactlyOnce { try producer.initTransactions() }

        var consumerConfig = options.kafka
        consumerConfig["group.id"] = options.group
        consumerConfig["client.id"] = options.member
        // Co-partitioned inputs: the range assignor gives partition p of every input topic to the same member.
        consumerConfig["partition.assignment.strategy"] = "range"
        consumerConfig["isolation.level"] = "read_committed"
        consumerConfig["auto.offset.reset"] = consumerConfig["auto.offset.reset"] ?? "earliest"
        consumerConfig["queued.max.messages.kbytes"] = consumerConfig["queued.max.messages.kbytes"] ?? "65536"
        consumer = try KafkaConsumer(consumerConfig, handlers: .init(
            assigned: { [unowned self] partitions in
                try restore(Set(partitions.map(\.partition)))
                return [:]
            },
            revoked: { [unowned self] partitions in
                // Every batch is committed before the next poll, so nothing of these partitions is in flight.
                let numbers = Set(partitions.map(\.partition))
                processor.remove(partitions: numbers)
                log("revoked partitions \(numbers.sorted())")
            }))
        try consumer.subscribe(options.topics.inputs)
        log("member \(options.member) of group \(options.group) subscribed (\(options.mode.rawValue), librdkafka \(librdkafkaVersion))")

        var failures = 0
        while !stop.isStopped {
            do {
                if needsRewind { try rewind() }
                let messages = try consumer.poll(maxMessages: options.maxBatch, timeoutMs: options.pollTimeoutMs)
                try processAndCommit(messages)
                failures = 0
            } catch let error as KafkaError where !error.isFatal {
                // The batch's effects are not durable: forget them and read the inputs again from the committed
                // offsets, once the cluster answers again.
                failures += 1
                log("batch failed (\(failures) in a row), will rewind to the committed state: \(error)")
                needsRewind = true
                Thread.sleep(forTimeInterval: min(0.1 * Double(failures), 2))
            }
        }
        log("stopping: leaving the group")
        try consumer.close()
        if options.mode == .atLeastOnce { try producer.flush() }
        log("stopped after \(processedMessages) messages")
    }

    private func processAndCommit(_ messages: [KafkaMessage]) throws {
        let inputs = messages.map {
            InputMessage(topic: $0.topic, partition: $0.partition, offset: $0.offset, key: $0.key, value: $0.value)
        }
        let outputs = processor.process(inputs, nowMs: Int64(Date().timeIntervalSince1970 * 1000))
        guard !messages.isEmpty || !outputs.isEmpty else { return }
        var offsets: [TopicPartition: Int64] = [:]
        for m in messages { offsets[m.topicPartition] = max(offsets[m.topicPartition] ?? 0, m.offset + 1) }

        switch options.mode {
        case .exactlyOnce:
            try producer.beginTransaction()
            transactionOpen = true
            try publish(outputs)
            try producer.sendOffsets(offsets, consumer: consumer)
            try producer.commitTransaction()
            transactionOpen = false
        case .atLeastOnce:
            try publish(outputs)
            try producer.flush()
            try consumer.commit(offsets)
        }
        processedMessages += messages.count
    }

    private func publish(_ outputs: [OutputRecord]) throws {
        for record in outputs {
            try producer.produce(topic: options.topics.topic(record.kind), partition: record.partition,
                                 key: record.key, value: record.value)
        }
    }

    /// After a failed batch the in-memory state is ahead of what was committed: abort the transaction, drop the
    /// state of every owned partition, restore it from the changelog and consume again from the committed offsets.
    private func rewind() throws {
        if transactionOpen {
            try producer.abortTransaction()
            transactionOpen = false
        }
        let owned = consumer.assignment
        try restore(Set(owned.map(\.partition)))
        let committed = try consumer.committed(Array(owned))
        try consumer.seek(committed.mapValues { $0 < 0 ? KafkaOffset.beginning : $0 })
        needsRewind = false
        log("rewound \(owned.count) partitions to their committed offsets")
    }

    /// Rebuilds the state of these input partitions from their changelog partitions (committed records only).
    private func restore(_ partitions: Set<Int32>) throws {
        guard !partitions.isEmpty else { return }
        let started = Date()
        var config = options.kafka
        config["enable.partition.eof"] = "true"
        config["isolation.level"] = "read_committed"
        let reader = try KafkaConsumer(config)
        var remaining = Set<TopicPartition>()
        var starts: [TopicPartition: Int64] = [:]
        for p in partitions {
            let tp = TopicPartition(options.topics.changelog, p)
            let (low, high) = try reader.watermarks(tp)
            if high > low {
                remaining.insert(tp)
                starts[tp] = KafkaOffset.beginning
            }
        }
        var records: [Int32: [(key: [UInt8]?, value: [UInt8])]] = [:]
        if !starts.isEmpty {
            try reader.assign(starts)
            while !remaining.isEmpty {
                for m in try reader.poll(maxMessages: 10_000, timeoutMs: 500) {
                    records[m.partition, default: []].append((m.key, m.value))
                }
                remaining.subtract(reader.takeEndsReached())
            }
        }
        try reader.close()
        var failures = 0
        for p in partitions {
            for failure in processor.restore(partition: p, records: records[p] ?? []) {
                failures += 1
                log("changelog partition \(p) record \(failure.offset) skipped: \(failure.reason)")
            }
        }
        let count = records.values.reduce(0) { $0 + $1.count }
        log(String(format: "assigned partitions %@: restored %d changelog records (%d items) in %.2f s%@",
                   partitions.sorted().description, count, processor.itemCount, Date().timeIntervalSince(started),
                   failures > 0 ? ", \(failures) unreadable" : ""))
    }
}

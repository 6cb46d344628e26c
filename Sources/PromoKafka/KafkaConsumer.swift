internal import CRdKafka

/// A consumer-group member (or, with `assign`, a consumer of chosen partitions) with manual offset commits.
///
/// Not thread-safe: one thread owns it and calls `poll`, which runs the rebalance handlers synchronously on that
/// same thread, so the owner can flush and commit before partitions go (the lesson of swift-kafka-client's
/// rebalance issues). The owner is a dedicated thread, never a task of the Swift concurrency pool: `poll` blocks.
public final class KafkaConsumer: @unchecked Sendable {
    /// What a member does when partitions change hands.
    public struct RebalanceHandlers {
        /// Partitions were assigned; returns the offset to start each from (missing: the committed offset).
        /// Runs before any message of these partitions is returned: restore their state here.
        public var assigned: ([TopicPartition]) throws -> [TopicPartition: Int64]
        /// Partitions are about to be taken away: finish and commit their work here.
        public var revoked: ([TopicPartition]) throws -> Void

        public init(assigned: @escaping ([TopicPartition]) throws -> [TopicPartition: Int64] = { _ in [:] },
                    revoked: @escaping ([TopicPartition]) throws -> Void = { _ in }) {
            self.assigned = assigned
            self.revoked = revoked
        }
    }

    let handle: OpaquePointer
    private let box: OpaqueBox
    private let queue: OpaquePointer
    private let handlers: RebalanceHandlers
    /// An error thrown by a rebalance handler, rethrown from the `poll` that ran it.
    private var handlerError: Error?
    private var closed = false
    public private(set) var assignment: Set<TopicPartition> = []
    /// Errors that librdkafka reported and retries by itself (a broker unreachable, a fetch failed), since the last
    /// `takeErrors`; at most 100 kept.
    private var transientErrors: [KafkaError] = []

    func keep(_ error: KafkaError) {
        if transientErrors.count < 100 { transientErrors.append(error) }
    }

    public func takeErrors() -> [KafkaError] {
        defer { transientErrors = [] }
        return transientErrors
    }

    /// Partitions whose end was reached since the last `takeEndsReached` (needs `enable.partition.eof=true`).
    private var endsReached: Set<TopicPartition> = []
    /// Whether librdkafka reports partition ends: `readToEnd` would wait forever without them.
    private let reportsEnds: Bool

    /// `group.id` is required for `subscribe` and `commit`; `enable.auto.commit` is forced off.
    public init(_ config: KafkaConfig, handlers: RebalanceHandlers = RebalanceHandlers()) throws {
        var config = config.only(.consumer)
        config["enable.auto.commit"] = "false"
        if config["group.id"] == nil { config["group.id"] = "promo-unassigned-\(UInt64.random(in: 0...UInt64.max))" }
        box = OpaqueBox(log: config.logHandler)
        let conf = try config.make(box)
        reportsEnds = config["enable.partition.eof"] == "true"
        self.handlers = handlers
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
            let box = Unmanaged<OpaqueBox>.fromOpaque(opaque!).takeUnretainedValue()
            if let consumer = box.consumer {
                consumer.rebalance(err, partitions)
            } else {
                rd_kafka_assign(rk, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? partitions : nil)
            }
        }
        // Client-level errors (a broker unreachable, every broker down): librdkafka retries them itself and says
        // so here, served by the consumer's queue like the rebalances; kept for `takeErrors`.
        rd_kafka_conf_set_error_cb(conf) { _, err, reason, opaque in
            let box = Unmanaged<OpaqueBox>.fromOpaque(opaque!).takeUnretainedValue()
            let text = reason.map { String(cString: $0) } ?? ""
            box.consumer?.keep(KafkaError(code: rd_kafka_resp_err_t(rawValue: err), text))
        }
        // librdkafka copies the opaque (set by `make`) when the handle is made, before `self` may be referenced:
        // hence a box.
        handle = try makeClient(RD_KAFKA_CONSUMER, conf)
        rd_kafka_poll_set_consumer(handle)
        queue = rd_kafka_queue_get_consumer(handle)
        box.consumer = self
    }

    deinit {
        if !closed { rd_kafka_consumer_close(handle) }
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy_flags(handle, abandoned ? Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE) : 0)
    }

    private var abandoned = false

    /// Gives the consumer up without leaving the group: for a member whose group never completes a rebalance,
    /// where leaving would wait on the same stuck coordinator. The coordinator drops it when its session times out.
    /// Nothing of it may be used afterwards.
    public func abandon() {
        closed = true
        abandoned = true
    }

    /// Joins the group for these topics; partitions arrive through the `assigned` handler during `poll`.
    public func subscribe(_ topics: [String]) throws {
        let list = PartitionList.make(topics.map { TopicPartition($0, Int32(RD_KAFKA_PARTITION_UA)) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try KafkaError.check(rd_kafka_subscribe(handle, list), "subscribe to \(topics.joined(separator: ", "))")
    }

    /// Consumes exactly these partitions from these offsets, outside any group's assignment.
    public func assign(_ offsets: [TopicPartition: Int64]) throws {
        let list = PartitionList.make(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try KafkaError.check(rd_kafka_assign(handle, list), "assign \(offsets.count) partitions")
        assignment = Set(offsets.keys)
    }

    /// Up to `maxMessages` messages, waiting at most `timeoutMs` for the first. Runs rebalance handlers.
    public func poll(maxMessages: Int, timeoutMs: Int32) throws -> [KafkaMessage] {
        var buffer = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: maxMessages)
        let count = rd_kafka_consume_batch_queue(queue, timeoutMs, &buffer, maxMessages)
        if let error = handlerError {
            handlerError = nil
            for message in buffer.prefix(max(count, 0)) { rd_kafka_message_destroy(message) }
            throw error
        }
        guard count >= 0 else { throw KafkaError(code: rd_kafka_last_error(), "consume") }
        var messages: [KafkaMessage] = []
        messages.reserveCapacity(count)
        for pointer in buffer.prefix(count) {
            guard let pointer else { continue }
            defer { rd_kafka_message_destroy(pointer) }
            let m = pointer.pointee
            let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                endsReached.insert(TopicPartition(topic, m.partition))
                continue
            }
            if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                let error = KafkaError(code: m.err, "consume \(topic)[\(m.partition)]")
                // Transport errors are retried inside librdkafka; only a fatal one ends the consumer. The others
                // are kept for the caller to count and report (`takeErrors`).
                if m.err == RD_KAFKA_RESP_ERR__FATAL { throw error }
                keep(error)
                continue
            }
            let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
            let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
            var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let timestamp = rd_kafka_message_timestamp(pointer, &timestampType)
            var message = KafkaMessage(topic: topic, partition: m.partition, offset: m.offset, key: key,
                                       value: value, timestamp: timestamp >= 0 ? timestamp : nil)
            message.headers = Self.headers(pointer)
            messages.append(message)
        }
        return messages
    }

    /// A message's headers, in order (most messages have none: one call finds that).
    private static func headers(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> [(name: String, value: [UInt8])] {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var out: [(name: String, value: [UInt8])] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            out.append((name.map { String(cString: $0) } ?? "", value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
            index += 1
        }
        return out
    }

    /// Consumes exactly these partitions from these offsets until each has reached its end (the consumer needs
    /// `enable.partition.eof=true`), handing over each poll's messages. A partition that will never report an
    /// end (empty, or started at `KafkaOffset.end`) must be left out.
    public func readToEnd(from starts: [TopicPartition: Int64], maxMessages: Int = 10_000,
                          _ body: ([KafkaMessage]) throws -> Void) throws {
        guard !starts.isEmpty else { return }
        guard reportsEnds else {
            throw KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG, "reading to the end needs a consumer made with enable.partition.eof=true")
        }
        try assign(starts)
        var remaining = Set(starts.keys)
        while !remaining.isEmpty {
            try body(try poll(maxMessages: maxMessages, timeoutMs: 100))
            remaining.subtract(takeEndsReached())
        }
    }

    /// Partitions whose last message has been read since the previous call.
    public func takeEndsReached() -> Set<TopicPartition> {
        defer { endsReached = [] }
        return endsReached
    }

    /// Commits the next offsets to read, synchronously.
    public func commit(_ offsets: [TopicPartition: Int64]) throws {
        guard !offsets.isEmpty else { return }
        let list = PartitionList.make(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try KafkaError.check(rd_kafka_commit(handle, list, 0), "commit offsets")
        for (tp, _, err) in PartitionList.entries(list) where err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: err, "commit offset of \(tp)")
        }
    }

    /// The group's committed offsets of these partitions (`KafkaOffset` logical values where none).
    public func committed(_ partitions: [TopicPartition], timeoutMs: Int32 = 10_000) throws -> [TopicPartition: Int64] {
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try KafkaError.check(rd_kafka_committed(handle, list, timeoutMs), "read committed offsets")
        return Dictionary(PartitionList.entries(list).map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    /// Moves consumption of these partitions to these offsets (after an aborted transaction, say).
    public func seek(_ offsets: [TopicPartition: Int64], timeoutMs: Int32 = 10_000) throws {
        let list = PartitionList.make(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try KafkaError.check(rd_kafka_seek_partitions(handle, list, timeoutMs), "seek")
        for (tp, _, err) in PartitionList.entries(list) where err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: err, "seek \(tp)")
        }
    }

    /// The earliest offset of each partition whose message timestamp is at or after the given time (milliseconds
    /// since the epoch); `KafkaOffset.end` where no message is that late.
    public func offsets(forTimes times: [TopicPartition: Int64], timeoutMs: Int32 = 10_000) throws -> [TopicPartition: Int64] {
        let list = PartitionList.make(times)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try KafkaError.check(rd_kafka_offsets_for_times(handle, list, timeoutMs), "offsets for times")
        var out: [TopicPartition: Int64] = [:]
        for (tp, offset, err) in PartitionList.entries(list) {
            try KafkaError.check(err, "offset for time of \(tp)")
            out[tp] = offset < 0 ? KafkaOffset.end : offset
        }
        return out
    }

    /// Low and high watermarks of a partition, from the broker.
    public func watermarks(_ tp: TopicPartition, timeoutMs: Int32 = 10_000) throws -> (low: Int64, high: Int64) {
        var low: Int64 = 0, high: Int64 = 0
        try KafkaError.check(rd_kafka_query_watermark_offsets(handle, tp.topic, tp.partition, &low, &high, timeoutMs),
                             "watermarks of \(tp)")
        return (low, high)
    }

    /// Per assigned partition, the messages between the consumer's position and the high watermark librdkafka last
    /// saw in a fetch (its cache: no request to the broker). Partitions without a position or a watermark yet are
    /// left out. Under read_committed the high watermark includes records of open transactions.
    public func lag() -> [TopicPartition: Int64] {
        guard !assignment.isEmpty else { return [:] }
        let list = PartitionList.make(Array(assignment))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard rd_kafka_position(handle, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [:] }
        var out: [TopicPartition: Int64] = [:]
        for (tp, position, err) in PartitionList.entries(list) where err == RD_KAFKA_RESP_ERR_NO_ERROR && position >= 0 {
            var low: Int64 = -1, high: Int64 = -1
            guard rd_kafka_get_watermark_offsets(handle, tp.topic, tp.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  high >= 0 else { continue }
            out[tp] = max(high - position, 0)
        }
        return out
    }

    /// The group's metadata, for a transactional producer's `sendOffsets`. The caller destroys it.
    func groupMetadata() -> OpaquePointer { rd_kafka_consumer_group_metadata(handle) }

    /// Leaves the group (running the `revoked` handler) and stops consuming.
    public func close() throws {
        guard !closed else { return }
        closed = true
        try KafkaError.check(rd_kafka_consumer_close(handle), "close the consumer")
        if let error = handlerError { handlerError = nil; throw error }
    }

    private func rebalance(_ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let changed = PartitionList.entries(partitions).map(\.0)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            var starts: [TopicPartition: Int64] = [:]
            do { starts = try handlers.assigned(changed) } catch { handlerError = handlerError ?? error }
            if let partitions {
                for i in 0..<Int(partitions.pointee.cnt) {
                    let element = partitions.pointee.elems[i]
                    if let start = starts[TopicPartition(String(cString: element.topic), element.partition)] {
                        partitions.pointee.elems[i].offset = start
                    }
                }
            }
            rd_kafka_assign(handle, partitions)
            assignment.formUnion(changed)
        default:
            do { try handlers.revoked(changed) } catch { handlerError = handlerError ?? error }
            rd_kafka_assign(handle, nil)
            assignment.subtract(changed)
        }
    }
}

/// Lets the rebalance callback find the consumer during `rd_kafka_new`, before `self` can be referenced.
private final class OpaqueBox: ClientContext, @unchecked Sendable {
    weak var consumer: KafkaConsumer?
}

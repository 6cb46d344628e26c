internal import CRdKafka

/// An idempotent producer, or with `transactional.id` set, a transactional one for consume–transform–produce.
///
/// Not thread-safe: one thread owns it. `produce` copies the bytes; delivery failures are collected from
/// librdkafka's delivery reports and thrown by `flush` (and, for transactions, by `commitTransaction`).
public final class KafkaProducer: @unchecked Sendable {
    let handle: OpaquePointer
    private let reports: DeliveryReports
    public let isTransactional: Bool

    /// `enable.idempotence` is forced on: a retried send is never written twice.
    public init(_ config: KafkaConfig) throws {
        var config = config.only(.producer)
        config["enable.idempotence"] = "true"
        isTransactional = config["transactional.id"] != nil
        reports = DeliveryReports(log: config.logHandler)
        let conf = try config.make(reports)
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let message, let opaque else { return }
            let reports = Unmanaged<DeliveryReports>.fromOpaque(opaque).takeUnretainedValue()
            var topic: String { message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?" }
            if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                reports.failed(KafkaError(code: message.pointee.err, "deliver to \(topic)[\(message.pointee.partition)]"))
            } else if message.pointee._private != nil {
                reports.delivered(TopicPartition(topic, message.pointee.partition), offset: message.pointee.offset)
            }
        }
        handle = try makeClient(RD_KAFKA_PRODUCER, conf)
    }

    deinit { rd_kafka_destroy(handle) }

    /// Queues one message. `partition` nil lets the configured partitioner choose by key.
    public func produce(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8]) throws {
        try whenRoom(topic) {
            value.withUnsafeBytes { v in
                if let key {
                    return key.withUnsafeBytes { k in
                        promo_rd_kafka_produce(handle, topic, partition ?? RD_KAFKA_PARTITION_UA, k.baseAddress, k.count,
                                               v.baseAddress, v.count)
                    }
                }
                return promo_rd_kafka_produce(handle, topic, partition ?? RD_KAFKA_PARTITION_UA, nil, 0,
                                              v.baseAddress, v.count)
            }
        }
    }

    /// Queues one message with one header; `tracked`: its offset, once delivered, is kept for `takeDelivered`.
    public func produce(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8],
                        header: (name: String, value: [UInt8]), tracked: Bool = false) throws {
        // Any non-nil opaque marks a tracked message; librdkafka only hands it back.
        let opaque = tracked ? UnsafeMutableRawPointer(bitPattern: 1) : nil
        try whenRoom(topic) {
            value.withUnsafeBytes { v in
                header.value.withUnsafeBytes { h in
                    (key ?? []).withUnsafeBytes { k in
                        promo_rd_kafka_produce_header(handle, topic, partition ?? RD_KAFKA_PARTITION_UA, key == nil ? nil : k.baseAddress,
                                                      k.count, v.baseAddress, v.count, header.name, h.baseAddress, h.count, opaque)
                    }
                }
            }
        }
    }

    /// Runs `attempt` until librdkafka's queue has room for it, serving delivery reports meanwhile (a bounded
    /// queue); throws any other error.
    private func whenRoom(_ topic: String, _ attempt: () -> rd_kafka_resp_err_t) throws {
        var err = attempt()
        while err == RD_KAFKA_RESP_ERR__QUEUE_FULL {
            rd_kafka_poll(handle, 10)
            err = attempt()
        }
        try KafkaError.check(err, "produce to \(topic)")
    }

    /// The offset of the last tracked message delivered to each partition since the previous call (served by
    /// `flush`): where a record landed, for a commit that names it.
    public func takeDelivered() -> [TopicPartition: Int64] { reports.takeDelivered() }

    /// Serves delivery reports for up to `timeoutMs`.
    public func poll(timeoutMs: Int32 = 0) { rd_kafka_poll(handle, timeoutMs) }

    /// Waits until every queued message is delivered or failed; throws the first failure since the last flush.
    public func flush(timeoutMs: Int32 = 30_000) throws {
        try KafkaError.check(rd_kafka_flush(handle, timeoutMs), "flush")
        if let error = reports.take() { throw error }
    }

    // MARK: Transactions

    public func initTransactions(timeoutMs: Int32 = 30_000) throws {
        try KafkaError.check(rd_kafka_init_transactions(handle, timeoutMs), "init transactions")
    }

    public func beginTransaction() throws {
        _ = reports.take()
        _ = reports.takeDelivered()
        try KafkaError.check(rd_kafka_begin_transaction(handle), "begin transaction")
    }

    /// Adds the consumer's next offsets to the transaction, so they commit (or not) with its messages.
    public func sendOffsets(_ offsets: [TopicPartition: Int64], consumer: KafkaConsumer,
                            timeoutMs: Int32 = 30_000) throws {
        guard !offsets.isEmpty else { return }
        let list = PartitionList.make(offsets)
        let metadata = consumer.groupMetadata()
        defer {
            rd_kafka_topic_partition_list_destroy(list)
            rd_kafka_consumer_group_metadata_destroy(metadata)
        }
        try KafkaError.check(rd_kafka_send_offsets_to_transaction(handle, list, metadata, timeoutMs),
                             "send offsets to the transaction")
    }

    public func commitTransaction(timeoutMs: Int32 = 60_000) throws {
        try KafkaError.check(rd_kafka_commit_transaction(handle, timeoutMs), "commit transaction")
    }

    public func abortTransaction(timeoutMs: Int32 = 60_000) throws {
        try KafkaError.check(rd_kafka_abort_transaction(handle, timeoutMs), "abort transaction")
    }
}

/// Delivery failures, written by librdkafka's callback on the thread that polls; the producer's callback context.
private final class DeliveryReports: ClientContext, @unchecked Sendable {
    private var first: KafkaError?
    private var offsets: [TopicPartition: Int64] = [:]

    func delivered(_ tp: TopicPartition, offset: Int64) { offsets[tp] = max(offsets[tp] ?? offset, offset) }

    func takeDelivered() -> [TopicPartition: Int64] {
        defer { offsets = [:] }
        return offsets
    }

    func failed(_ error: KafkaError) {
        if first == nil { first = error }
    }

    func take() -> KafkaError? {
        defer { first = nil }
        return first
    }
}

import Foundation
import PromoEvents
import PromoKafka
import PromoStream

/// `promo.predictions` as a table, for the recommendation role: every partition from its start, outside any group
/// (each member needs every item's latest prediction), committed records only.
final class CandidateFeed {
    private let consumer: KafkaConsumer
    private let decoder = EventDecoder()
    private let partitions: [TopicPartition]
    /// Records that are not prediction/1 events (the item members publish nothing else there): counted, skipped.
    private(set) var unreadable = 0

    init(kafka: KafkaConfig, topic: String) throws {
        var config = kafka
        config["enable.partition.eof"] = "true"
        config["isolation.level"] = "read_committed"
        config["allow.auto.create.topics"] = "false"
        // An offset that retention deleted mid-read resumes at the oldest record left, not at the end.
        config["auto.offset.reset"] = "earliest"
        let admin = try KafkaAdmin(kafka)
        guard let count = try admin.partitionCount(topic), count > 0 else {
            throw ServiceError("the predictions topic \(topic) does not exist: create the topics with `promo topics`")
        }
        partitions = (0..<Int32(count)).map { TopicPartition(topic, $0) }
        consumer = try KafkaConsumer(config)
        try consumer.assign(Dictionary(uniqueKeysWithValues: partitions.map { ($0, KafkaOffset.beginning) }))
    }

    /// Reads every partition to its current end into `processor`'s table; returns the predictions read.
    func catchUp(into processor: UserProcessor, until deadline: ContinuousClock.Instant, stop: StopSignal?) throws -> Int {
        var remaining = Set<TopicPartition>()
        for tp in partitions {
            let (low, high) = try consumer.watermarks(tp)
            if high > low { remaining.insert(tp) }
        }
        var read = 0
        while !remaining.isEmpty {
            if stop?.isStopped == true { throw ServiceStopped() }
            guard ContinuousClock.now < deadline else { throw KafkaError.timedOut("reading the predictions topic to its end") }
            read += apply(try consumer.poll(maxMessages: 10_000, timeoutMs: 100), to: processor)
            remaining.subtract(consumer.takeEndsReached())
        }
        return read
    }

    /// What arrived since the last call, without waiting.
    func poll(into processor: UserProcessor) throws -> Int {
        apply(try consumer.poll(maxMessages: 10_000, timeoutMs: 0), to: processor)
    }

    /// Errors librdkafka retries by itself since the last call (the member counts and reports them).
    func takeErrors() -> [KafkaError] { consumer.takeErrors() }

    private func apply(_ messages: [KafkaMessage], to processor: UserProcessor) -> Int {
        var predictions: [PredictionEvent] = []
        for m in messages {
            guard case .prediction(let p)? = try? decoder.decode(m.value) else {
                unreadable += 1
                continue
            }
            predictions.append(p)
        }
        processor.apply(predictions: predictions, atMs: monotonicMs())
        return predictions.count
    }

    func close() { try? consumer.close() }
}

/// Milliseconds from an arbitrary origin on a clock that never steps back: the candidates' settle period is
/// measured on it, so that a wall-clock correction neither stalls nor rushes a refresh.
func monotonicMs() -> Int64 {
    let elapsed = ContinuousClock.now - monotonicOrigin
    return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
}

private let monotonicOrigin = ContinuousClock.now

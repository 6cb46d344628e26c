import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka

/// Every item's inputs and outcome as the topics hold them now, for the fine-tuner: the input and outcome
/// topics read to their ends (committed records only) outside any group, and joined per item and promotion.
public enum TopicRecords {
    public static func read(kafka: KafkaConfig, topics: ServiceTopics = ServiceTopics(), presaleDays: Int = 20,
                            log: (String) -> Void) throws -> ItemRecords {
        var config = kafka
        config["enable.partition.eof"] = "true"
        config["isolation.level"] = "read_committed"
        let consumer = try KafkaConsumer(config)
        defer { try? consumer.close() }
        let admin = try KafkaAdmin(kafka)
        var starts: [TopicPartition: Int64] = [:]
        for topic in topics.inputs + [topics.outcomes] {
            guard let count = try admin.partitionCount(topic) else { throw BacktestError("no topic \(topic)") }
            for p in 0..<Int32(count) {
                let tp = TopicPartition(topic, p)
                let (low, high) = try consumer.watermarks(tp)
                if high > low { starts[tp] = KafkaOffset.beginning }
            }
        }
        let decoder = EventDecoder(presaleDays: presaleDays)
        var records = ItemRecords()
        var messages = 0, rejected = 0
        try consumer.readToEnd(from: starts) { batch in
            for m in batch {
                messages += 1
                // What the members dead-letter is no example either.
                guard let event = try? decoder.decode(m.value), records.apply(event) else {
                    rejected += 1
                    continue
                }
            }
        }
        log("read \(messages) input and outcome messages (\(rejected) not applicable) of \(records.records.count) items")
        return records
    }
}

import Foundation
import PromoKafka
import PromoTesting
import Testing

/// The librdkafka wrapper against librdkafka's mock cluster, in its own process over TCP: what the service builds
/// on, checked where it is made rather than only through a whole member.
@Suite("PromoKafka against the mock cluster", .serialized, .timeLimit(.minutes(5)))
struct MockClusterTests {
    let topic = "promo.dead-letter"

    @Test("messages come back as produced: partition, key, value, header; delivered offsets and watermarks agree")
    func roundTrip() throws {
        let broker = try LocalBroker.mock()
        let producer = try KafkaProducer(broker.config())
        var sent: [TopicPartition: [(key: [UInt8], value: [UInt8])]] = [:]
        for i in 0..<120 {
            let partition = Int32(i % 12)
            let (key, value) = (Array("key-\(i)".utf8), Array("value \(i) ✓".utf8) + [0, 255])
            try producer.produce(topic: topic, partition: partition, key: key, value: value,
                                 header: (name: "promo-test", value: Array("\(i)".utf8)), tracked: true)
            sent[TopicPartition(topic, partition), default: []].append((key, value))
        }
        try producer.flush()
        let delivered = producer.takeDelivered()
        #expect(delivered.count == 12)
        for (tp, offset) in delivered { #expect(offset == 9, "\(tp): last of 10 messages lands at offset 9, got \(offset)") }

        let reader = try KafkaConsumer(broker.config(["enable.partition.eof": "true"]))
        var read: [TopicPartition: [KafkaMessage]] = [:]
        let starts = Dictionary(uniqueKeysWithValues: sent.keys.map { ($0, KafkaOffset.beginning) })
        try reader.readToEnd(from: starts) { messages in
            for m in messages { read[m.topicPartition, default: []].append(m) }
        }
        for (tp, messages) in sent {
            let got = try #require(read[tp], "nothing read from \(tp)")
            #expect(got.map(\.offset) == Array(0..<10))
            #expect(got.map { $0.key ?? [] } == messages.map(\.key))
            #expect(got.map(\.value) == messages.map(\.value))
            #expect(got.allSatisfy { $0.header("promo-test").map { Int(String(decoding: $0, as: UTF8.self)) != nil } ?? false })
            #expect(try reader.watermarks(tp) == (0, 10))
        }
    }

    @Test("a group's commits are read back per partition; partitions never committed read as no offset")
    func commits() throws {
        let broker = try LocalBroker.mock(groups: ["kafka-tests"])
        let consumer = try KafkaConsumer(broker.config(["group.id": "kafka-tests", "enable.auto.commit": "false"]))
        let committed = [TopicPartition(topic, 0): Int64(7), TopicPartition(topic, 5): 42]
        try consumer.commit(committed)
        let partitions = [TopicPartition(topic, 0), TopicPartition(topic, 5), TopicPartition(topic, 6)]
        let read = try consumer.committed(partitions)
        #expect(read[TopicPartition(topic, 0)] == 7)
        #expect(read[TopicPartition(topic, 5)] == 42)
        #expect((read[TopicPartition(topic, 6)] ?? 0) < 0, "never committed: a logical offset, not a position")
    }

    @Test("reading to the end with a consumer that is not told partition ends is refused, not a wait forever")
    func readToEndNeedsEnds() throws {
        let broker = try LocalBroker.mock()
        let reader = try KafkaConsumer(broker.config())
        #expect(throws: KafkaError.self) {
            try reader.readToEnd(from: [TopicPartition(topic, 0): KafkaOffset.beginning]) { _ in }
        }
    }

    @Test("admin: an existing topic's partition count, none for an unknown topic")
    func partitionCounts() throws {
        let broker = try LocalBroker.mock()
        // As `promo watch` asks: a producer-type handle's metadata request would otherwise create the topic.
        let admin = try KafkaAdmin(broker.config(["allow.auto.create.topics": "false"]))
        #expect(try admin.partitionCount("promo.predictions") == 12)
        #expect(try admin.partitionCount("no.such.topic") == nil)
    }

    @Test("a produce request the broker fails is retried by the idempotent producer, and every message lands once")
    func retriedProduce() throws {
        let broker = try LocalBroker.mock()
        // Produce (API key 0) answers NOT_LEADER_OR_FOLLOWER (6), retriable, to its next three requests.
        try broker.mockCommand("error 0 6 3")
        let producer = try KafkaProducer(broker.config(["enable.idempotence": "true"]))
        for i in 0..<50 { try producer.produce(topic: topic, partition: 3, key: nil, value: Array("\(i)".utf8)) }
        try producer.flush()
        let reader = try KafkaConsumer(broker.config(["enable.partition.eof": "true"]))
        var values: [String] = []
        try reader.readToEnd(from: [TopicPartition(topic, 3): KafkaOffset.beginning]) { messages in
            values += messages.map { String(decoding: $0.value, as: UTF8.self) }
        }
        #expect(values == (0..<50).map(String.init))
    }
}

import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoService
import PromoTesting
import PromoWorld
import Testing

extension BrokerTests {
    /// Issue 12's fuzzing through the stream: mutated events (bit flips, truncations, type swaps, huge numbers, other
    /// schemas…) produced into the input topics and consumed by a member in exactly-once mode. 20,000 in the suite;
    /// `Deploy/local/fuzz.sh --kafka` runs a million (`PROMO_FUZZ_KAFKA_RECORDS`). The oracle is the strict decoder
    /// and the key rule, applied to the records as the broker holds them (read back with their offsets); the outputs
    /// are judged over committed records only.
    @Test("mutated events through the input topics: the member never stops; each bad one is one dead letter with a reason, every good one is applied")
    func mutatedEventsThroughKafka() throws {
        let total = ProcessInfo.processInfo.environment["PROMO_FUZZ_KAFKA_RECORDS"].flatMap(Int.init) ?? 20_000
        let started = Date()
        let world = try World.make(items: 150)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        let member = try startMember(broker, world, name: "f", extra: ["--max-batch", "5000"])
        #expect(member.awaitEvent("assigned") != nil)

        var mutator = EventMutator(seed: 12)
        var kinds: [String: Int] = [:]
        let producer = try KafkaProducer(broker.config(["partitioner": "murmur2_random", "linger.ms": "20"]))
        for i in 0..<total {
            let event = world.events[(i &* 7919) % world.events.count]
            let (value, kind) = mutator.mutate(event.value)
            kinds[kind, default: 0] += 1
            try producer.produce(topic: event.topic, key: Array(event.key.utf8), value: value)
            if i % 10_000 == 0 { producer.poll() }
        }
        try producer.flush(timeoutMs: 300_000)

        // The records as the broker holds them, and the oracle's verdict on each.
        let topics = ServiceTopics()
        let inputs = Set([topics.profiles, topics.sales, topics.buyers, topics.activities])
        let decoder = EventDecoder()
        let inputSchemas: Set<String> = [ItemProfile.schema, DailySales.schema, DailyBuyers.schema, ActivityOffer.schema]
        var expectedBad = Set<String>(), validItems = Set<ItemKey>()
        var ends: [TopicPartition: Int64] = [:]
        let reader = try KafkaConsumer(broker.config(["enable.partition.eof": "true"]))
        var starts: [TopicPartition: Int64] = [:]
        for topic in inputs {
            for p in Int32(0)..<12 {
                let tp = TopicPartition(topic, p)
                let (low, high) = try reader.watermarks(tp)
                ends[tp] = high
                if high > low { starts[tp] = KafkaOffset.beginning }
            }
        }
        var read = 0
        try reader.readToEnd(from: starts) { messages in
            for m in messages {
                read += 1
                if let event = try? decoder.decode(m.value), inputSchemas.contains(event.schema), let key = event.itemKey,
                   m.key.map({ $0.elementsEqual(key.itemID.utf8) }) == true {
                    validItems.insert(key)
                } else {
                    expectedBad.insert("\(m.topic)/\(m.partition)/\(m.offset)")
                }
            }
        }
        try reader.close()
        #expect(read == total)

        // The member has consumed everything once its committed offsets reach the ends.
        let group = try KafkaConsumer(broker.config(["group.id": "e2e"]))
        let deadline = Date().addingTimeInterval(Double(total) / 500 + 120)
        var caughtUp = false
        while !caughtUp && Date() < deadline && member.process.isRunning {
            let committed = try group.committed(Array(ends.keys))
            caughtUp = ends.allSatisfy { (committed[$0.key] ?? -1) >= $0.value || $0.value == 0 }
            if !caughtUp { Thread.sleep(forTimeInterval: 1) }
        }
        try group.close()
        #expect(caughtUp, "the member consumed every input: \(member.output.suffix(5))")
        member.signal(SIGTERM)
        #expect(member.wait(timeout: 60) == 0, "the member is still up and stops cleanly")

        var changelogTopics = ServiceTopics()
        changelogTopics.changelog = ServiceTopics.changelog(group: "e2e")
        let outputs = try CommittedOutputs.read(kafka: broker.config(), topics: changelogTopics, group: "e2e")
        var perSource: [String: [DeadLetter]] = [:]
        for letter in outputs.deadLetters { perSource["\(letter.sourceTopic)/\(letter.partition)/\(letter.offset)", default: []].append(letter) }
        let missing = expectedBad.filter { perSource[$0]?.count != 1 }
        let goodLettered = perSource.filter { !expectedBad.contains($0.key) }
        let notFinite = goodLettered.filter { $0.value.count == 1 && $0.value[0].reason.hasPrefix("prediction not finite") }
        let withheld = Set(notFinite.values.compactMap { (try? decoder.decode($0[0].value))?.itemKey })
        let predicted = Set(outputs.predictions.map { ItemKey(promotionID: $0.promotionID, itemID: $0.itemID) })
        let unpredicted = validItems.subtracting(predicted).subtracting(withheld)
        #expect(missing.isEmpty, "bad records without exactly one dead letter: \(missing.prefix(5))")
        #expect(goodLettered.count == notFinite.count, "good records dead-lettered: \(goodLettered.filter { notFinite[$0.key] == nil }.prefix(3).map { ($0.key, $0.value.map(\.reason)) })")
        #expect(outputs.deadLetters.allSatisfy { !$0.reason.isEmpty })
        #expect(unpredicted.isEmpty, "items with a good event but no prediction: \(unpredicted.prefix(5))")
        #expect(outputs.undecidedRecords == 0)
        #expect(expectedBad.count > total / 3 && expectedBad.count < total * 29 / 30, "a mix of good and bad")
        print(String(format: "fuzz-kafka: %d mutated records through the input topics and a member in %.0f s: it never stopped; %d bad ones each one committed dead letter, %d good ones dead-lettered as not finite, %d items predicted; mutations %@",
                     total, Date().timeIntervalSince(started), expectedBad.count, notFinite.count, predicted.count,
                     kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
    }
}

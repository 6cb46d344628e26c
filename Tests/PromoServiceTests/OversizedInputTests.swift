import Foundation
import PromoEvents
import PromoKafka
import PromoService
import PromoTesting
import Testing

extension BrokerTests {
    /// An input topic may take messages larger than any record the member may write (librdkafka's default
    /// `message.max.bytes`, 1,000,000): before dead letters were cut, the dead letter of such a message was refused
    /// by the producer, and the member rewound and retried its batch for ever.
    @Test("a 1.2 MB message and an event with a 300-character id: each one committed dead letter, and every item is predicted as offline")
    func oversizedInputs() throws {
        let world = try World.make(items: 60)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        var reader = try TopicReader(broker, topics: ["promo.predictions", "promo.dead-letter"])
        let member = try startMember(broker, world, name: "o")
        #expect(member.awaitEvent("assigned") != nil)

        let huge = [UInt8](repeating: UInt8(ascii: "x"), count: 1_200_000), hugeKey = [UInt8](repeating: UInt8(ascii: "k"), count: 20_000)
        let longID = String(repeating: "i", count: 300)
        let long = Event.sales(DailySales(itemID: longID, promotionID: "p", day: 1, sales: ["gmv": 1])).encoded()
        let producer = try KafkaProducer(broker.config(["message.max.bytes": "2000000"]))
        try producer.produce(topic: "promo.daily-sales", key: hugeKey, value: huge)
        try producer.produce(topic: "promo.daily-sales", key: Array(longID.utf8), value: long)
        try producer.flush()
        try produce(broker, world.events)

        let converged = try reader.read(timeout: 180) { mismatches($0, world.offline).isEmpty && deadLetters($0).count >= 2 }
        #expect(converged, "items still differing from offline: \(mismatches(reader.messages, world.offline).prefix(5)); \(member.output.suffix(6))")
        let letters = deadLetters(reader.messages)
        #expect(letters.count == 2)
        let cut = letters.first { $0.valueBytes != nil }
        #expect(cut?.valueBytes == huge.count && cut?.value == Array(huge.prefix(DeadLetter.maxCarriedValue)))
        #expect(cut?.keyBytes == hugeKey.count && cut?.key == Array(hugeKey.prefix(DeadLetter.maxCarriedKey)))
        let refused = letters.first { $0.valueBytes == nil }
        #expect(refused?.value == long && refused?.reason == "item_id: at most 256 characters, got 300", "\(letters.map(\.reason))")
        member.signal(SIGTERM)
        #expect(member.wait(timeout: 60) == 0, "the member is still up and stops cleanly")
    }
}

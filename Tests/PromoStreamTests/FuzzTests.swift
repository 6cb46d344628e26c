import DINOP
import Foundation
import PromoEvents
import PromoFeatures
@testable import PromoStream
import PromoWorld
import Testing

/// Issue 12's fuzzing tier in the suite (`Deploy/local/fuzz.sh` runs a million through Kafka): mutated events
/// through the processor. The process itself is the first assertion: a trap would end the test run.
@Test("30,000 mutated events: no trap; every bad one dead-lettered once with a reason, every good one applied")
func mutatedEventsThroughTheProcessor() throws {
    let stream = try SmallStream(items: 150)
    let processor = StreamProcessor(model: stream.model)
    var mutator = EventMutator(seed: 12)
    let decoder = EventDecoder()
    var messages: [InputMessage] = []
    var expectedBad = Set<Int64>(), validItems = Set<ItemKey>(), kinds: [String: Int] = [:]
    let inputSchemas: Set<String> = [ItemProfile.schema, DailySales.schema, DailyBuyers.schema, ActivityOffer.schema, Outcome.schema]
    for i in 0..<30_000 {
        var message = stream.messages[(i &* 7919) % stream.messages.count]
        let (value, kind) = mutator.mutate(message.value)
        kinds[kind, default: 0] += 1
        message.value = value
        message.offset = Int64(i)
        messages.append(message)
        // The oracle: the strict decoder, the key rule and the input schemas, independently of the processor.
        if let event = try? decoder.decode(value), inputSchemas.contains(event.schema),
           let key = event.itemKey, message.key.map({ $0.elementsEqual(key.itemID.utf8) }) == true {
            if event.schema != Outcome.schema { validItems.insert(key) }
        } else {
            expectedBad.insert(Int64(i))
        }
    }
    var out: [OutputRecord] = []
    for start in stride(from: 0, to: messages.count, by: 1_000) {
        out += processor.process(Array(messages[start..<min(start + 1_000, messages.count)]), nowMs: 1_000)
    }
    out += processor.process([], nowMs: .max / 2)

    var letters: [Int64: [DeadLetter]] = [:]
    for record in out where record.kind == .deadLetter {
        guard case .deadLetter(let letter) = try decoder.decode(record.value) else { continue }
        letters[letter.offset, default: []].append(letter)
    }
    #expect(expectedBad.count > 10_000 && expectedBad.count < 29_000, "a mix of good and bad: \(expectedBad.count) bad, \(kinds)")
    for offset in expectedBad {
        #expect(letters[offset]?.count == 1, "offset \(offset): \(letters[offset]?.count ?? 0) dead letters")
    }
    // A good event is dead-lettered only when its prediction is not finite (a huge but valid number).
    let extra = letters.filter { !expectedBad.contains($0.key) }
    #expect(extra.values.allSatisfy { $0.count == 1 && $0[0].reason.hasPrefix("prediction not finite") },
            "\(extra.values.prefix(3).map { $0.map(\.reason) })")
    let unclear = letters.values.joined().filter { $0.reason.isEmpty || $0.reason.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0xFFFD } }
    #expect(unclear.isEmpty, "reasons with raw control characters: \(unclear.prefix(3).map { quoted($0.reason) })")
    let predicted = Set(out.filter { $0.kind == .prediction }.compactMap { record -> ItemKey? in
        guard case .prediction(let p)? = try? decoder.decode(record.value) else { return nil }
        return ItemKey(promotionID: p.promotionID, itemID: p.itemID)
    })
    let withheldItems = Set(extra.values.joined().compactMap { letter in
        (try? decoder.decode(letter.value))?.itemKey
    })
    #expect(validItems.subtracting(predicted).subtracting(withheldItems).isEmpty,
            "items with a good event but no prediction: \(validItems.subtracting(predicted).subtracting(withheldItems).prefix(5))")
}

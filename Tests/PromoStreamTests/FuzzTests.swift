import DINOP
import Foundation
import PromoEvents
import PromoFeatures
@testable import PromoStream
import PromoWorld
import Testing

/// Issue 12's fuzzing tier: mutated events through the processor, 30,000 in the suite;
/// `Deploy/local/fuzz.sh` runs a million (`PROMO_FUZZ_RECORDS`). The process itself is the first assertion: a
/// trap would end the run. Checked chunk by chunk, so memory stays flat whatever the count.
@Test("mutated events: no trap; every bad one dead-lettered once with a reason, every good one applied")
func mutatedEventsThroughTheProcessor() throws {
    let total = ProcessInfo.processInfo.environment["PROMO_FUZZ_RECORDS"].flatMap(Int.init) ?? 30_000
    let started = Date()
    let stream = try SmallStream(items: 150)
    let processor = StreamProcessor(model: stream.model)
    var mutator = EventMutator(seed: 12)
    let decoder = EventDecoder()
    let inputSchemas: Set<String> = [ItemProfile.schema, DailySales.schema, DailyBuyers.schema, ActivityOffer.schema, Outcome.schema]
    var kinds: [String: Int] = [:]
    var bad = 0, notFinite = 0, letters = 0, problems: [String] = []
    var validItems = Set<ItemKey>(), predicted = Set<ItemKey>(), withheldItems = Set<ItemKey>()
    func problem(_ text: @autoclosure () -> String) { if problems.count < 10 { problems.append(text()) } }

    let chunk = 1_000
    for start in stride(from: 0, to: total, by: chunk) {
        var messages: [InputMessage] = [], expectedBad = Set<Int64>()
        for i in start..<min(start + chunk, total) {
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
        bad += expectedBad.count
        var perOffset: [Int64: [DeadLetter]] = [:]
        for record in processor.process(messages, nowMs: 1_000) {
            switch record.kind {
            case .deadLetter:
                guard case .deadLetter(let letter) = try decoder.decode(record.value) else { continue }
                perOffset[letter.offset, default: []].append(letter)
                letters += 1
            case .prediction:
                guard case .prediction(let p) = try decoder.decode(record.value) else { continue }
                predicted.insert(ItemKey(promotionID: p.promotionID, itemID: p.itemID))
            default: break
            }
        }
        for offset in expectedBad where perOffset[offset]?.count != 1 {
            problem("offset \(offset): \(perOffset[offset]?.count ?? 0) dead letters for a bad event")
        }
        for (offset, list) in perOffset where !expectedBad.contains(offset) {
            // A good event is dead-lettered only when its prediction is not finite (a huge but valid number).
            if list.count == 1, list[0].reason.hasPrefix("prediction not finite") {
                notFinite += 1
                if let key = (try? decoder.decode(list[0].value))?.itemKey { withheldItems.insert(key) }
            } else {
                problem("offset \(offset): a good event dead-lettered: \(list.map(\.reason))")
            }
        }
        for letter in perOffset.values.joined()
        where letter.reason.isEmpty || letter.reason.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0xFFFD }) {
            problem("a reason with raw control characters: \(quoted(letter.reason))")
        }
    }
    let unpredicted = validItems.subtracting(predicted).subtracting(withheldItems)
    #expect(problems.isEmpty, "\(problems)")
    #expect(bad > total / 3 && bad < total * 29 / 30, "a mix of good and bad: \(bad) bad of \(total), \(kinds)")
    #expect(unpredicted.isEmpty, "items with a good event but no prediction: \(unpredicted.prefix(5))")
    print(String(format: "fuzz: %d mutated records through the processor in %.0f s: 0 traps, %d bad ones each dead-lettered once, %d good ones dead-lettered as not finite, %d items predicted; mutations %@",
                 total, Date().timeIntervalSince(started), bad, notFinite, predicted.count,
                 kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
}

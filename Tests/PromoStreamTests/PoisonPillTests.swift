import DINOP
import Foundation
import PromoEvents
import PromoFeatures
@testable import PromoStream
import Testing

/// The poison pill of issue 12: one valid profile whose price drives the GMV head past float32.
@Test("a valid event whose prediction is not finite is a dead letter; the item recovers when its inputs change")
func nonFinitePredictionIsDeadLettered() throws {
    let stream = try SmallStream(items: 40)
    let processor = StreamProcessor(model: stream.model)
    let before = try latestPredictions(processor.process(stream.messages, nowMs: 1_000)
                                       + processor.process([], nowMs: .max / 2))
    let profileMessage = try #require(stream.messages.first { $0.topic == ItemProfile.schema })
    guard case .profile(var profile) = try EventDecoder().decode(profileMessage.value) else {
        Issue.record("not a profile")
        return
    }
    let original = profile
    let key = ItemKey(promotionID: profile.promotionID, itemID: profile.itemID)
    let sequence = try #require(before[key]?.sequence)
    profile.sis["price"] = 3e38
    var poison = profileMessage
    poison.offset = 1_000_000
    poison.value = Event.profile(profile).encoded()
    // Another item's event in the same batch must still be predicted.
    var other = try #require(stream.messages.last { $0.topic == DailySales.schema && $0.key != poison.key })
    guard case .sales(var sales) = try EventDecoder().decode(other.value) else {
        Issue.record("not a sales event")
        return
    }
    sales.sales["units"] = (sales.sales["units"] ?? 0) + 1
    other.value = Event.sales(sales).encoded()

    let out = processor.process([poison, other], nowMs: .max / 2)
    let letters = try out.filter { $0.kind == .deadLetter }.map { record -> DeadLetter in
        guard case .deadLetter(let letter) = try EventDecoder().decode(record.value) else { throw EventError(path: "", reason: "not a dead letter") }
        return letter
    }
    #expect(letters.count == 1)
    #expect(letters.first?.offset == poison.offset)
    #expect(letters.first?.reason.hasPrefix("prediction not finite: gmv = ") == true, "\(letters)")
    let predictions = try latestPredictions(out)
    #expect(predictions[key] == nil)
    #expect(predictions.count == 1, "the other item is predicted")
    #expect(out.contains { $0.kind == .changelog && $0.key == StreamProcessor.changelogKey(key) }, "the input is kept durably")
    #expect(processor.state(partition: poison.partition, key: key)?.sequence == sequence, "no sequence number is spent")
    #expect(processor.withheldCount == 1)

    // The profile corrected: predicted again from its stored days, with the next sequence number.
    var fixed = profileMessage
    fixed.offset = 1_000_001
    fixed.value = Event.profile(original).encoded()
    let recovered = try latestPredictions(processor.process([fixed], nowMs: .max / 2))
    let prediction = try #require(recovered[key])
    #expect(prediction.sequence == sequence + 1)
    let offline = try #require(stream.offline[key])
    expectClose(prediction, offline)
}

@Test("weights that give non-finite predictions for ordinary inputs are refused when a weight file is read",
      arguments: ["head.gmv.fc2.bias=1e4", "head.gmv.fc2.weight=3e38", "head.bsp.fc1.weight=3e38", "sis.norm.std=1e-38"])
func unusableWeightsAreRefused(change: String) throws {
    let stream = try SmallStream(items: 10)
    let parts = change.split(separator: "=")
    let (name, value) = (String(parts[0]), try #require(Float(String(parts[1]))))
    var model = stream.model
    let count = model.parameters[name].count
    model.parameters[name] = ArraySlice(repeating: value, count: count)
    do {
        _ = try DINOPModel(safetensors: model.safetensors())
        Issue.record("\(change): loaded")
    } catch let error as ModelError {
        guard case .unusable(let why) = error else {
            Issue.record("refused for another reason: \(error)")
            return
        }
        #expect(why.contains("prediction not finite"))
    } catch {
        Issue.record("\(change): \(error)")
    }
    // The unchanged weights load.
    _ = try DINOPModel(safetensors: stream.model.safetensors())
}

/// Issue 12: a restore that does not trust the broker to hide aborted records, and refuses other applications'.
@Test("a restore skips changelog records beyond the committed input offsets, of another application, or of another shape")
func restoreChecksProvenance() throws {
    let stream = try SmallStream(items: 30, partitions: 1)
    var options = ProcessorOptions()
    options.application = "app-a"
    options.inputTopics = [ItemProfile.schema, DailySales.schema, DailyBuyers.schema, ActivityOffer.schema]
    let processor = StreamProcessor(model: stream.model, options: options)
    // Two batches: the second's records carry positions beyond the first's.
    let half = stream.messages.count / 2
    let first = processor.process(Array(stream.messages[..<half]), nowMs: 1_000)
    let second = processor.process(Array(stream.messages[half...]), nowMs: 1_000)
    let firstPositions = options.inputTopics.map { topic in
        (stream.messages[..<half].filter { $0.topic == topic }.map(\.offset).max() ?? -1) + 1
    }
    let records = (first + second).filter { $0.kind == .changelog }
    #expect(try records.prefix(5).allSatisfy { try StateCodec.decodeWithProvenance($0.value).provenance.application == "app-a" })

    // Only the first batch committed: every item as it was after the first batch, none from the second.
    let restored = StreamProcessor(model: stream.model, options: options)
    restored.startRestore(partition: 0, committed: firstPositions)
    var uncommitted = 0
    for record in records {
        do { try restored.restore(partition: 0, value: record.value) } catch RestoreError.uncommitted { uncommitted += 1 }
    }
    restored.finishRestore(partition: 0)
    let secondKeys = Set(second.filter { $0.kind == .changelog }.map(\.key))
    #expect(uncommitted == second.filter { $0.kind == .changelog }.count)
    for record in first where record.kind == .changelog && !secondKeys.contains(record.key) {
        let state = try StateCodec.decode(record.value)
        #expect(restored.state(partition: 0, key: state.key)?.sequence == state.sequence)
    }
    var afterFirst: [ItemKey: Int] = [:]
    for record in first where record.kind == .changelog {
        let state = try StateCodec.decode(record.value)
        afterFirst[state.key] = state.sequence
    }
    for (key, sequence) in afterFirst { #expect(restored.state(partition: 0, key: key)?.sequence == sequence) }

    // Everything committed: the latest records.
    let all = StreamProcessor(model: stream.model, options: options)
    all.startRestore(partition: 0, committed: options.inputTopics.map { topic in
        (stream.messages.filter { $0.topic == topic }.map(\.offset).max() ?? -1) + 1
    })
    for record in records { try all.restore(partition: 0, value: record.value) }
    all.finishRestore(partition: 0)
    #expect(all.itemCount == Set(records.map(\.key)).count)

    // Another application's changelog, and a record of another model's shape, are refused.
    var other = options
    other.application = "app-b"
    let b = StreamProcessor(model: stream.model, options: other)
    b.startRestore(partition: 0, committed: [.max, .max, .max, .max])
    #expect(throws: RestoreError.otherApplication("app-a", expected: "app-b")) {
        try b.restore(partition: 0, value: records[0].value)
    }
    var state = try StateCodec.decode(records[0].value)
    state.sis.removeLast()
    #expect(throws: RestoreError.self) { try b.restore(partition: 0, value: StateCodec.encode(state)) }
    // Values whose arithmetic would overflow later (`sequence + 1`, `now - grace start`) are refused too.
    for change in [{ (s: inout ItemState) in s.sequence = .max }, { $0.pendingSince = .min; $0.waitingDay = Int($0.dayNumbers[0]) }] {
        var bad = try StateCodec.decode(records[0].value)
        change(&bad)
        #expect(throws: RestoreError.self) { try b.restore(partition: 0, value: StateCodec.encode(bad)) }
    }
    #expect(b.itemCount == 0)
}

/// An input topic may take messages larger than a dead letter may be (the local broker takes 8 MiB): a dead letter
/// of one carries its first bytes and their full sizes, and stays within a Kafka message's default 1,000,000 bytes.
@Test("a dead letter of a huge message carries its first bytes and its full sizes, within one Kafka message")
func hugeMessageDeadLetter() throws {
    let processor = StreamProcessor(model: try SmallStream(items: 4).model)
    let value = [UInt8](repeating: UInt8(ascii: "{"), count: 3_000_000), key = [UInt8](repeating: 0xFF, count: 40_000)
    let message = InputMessage(topic: DailySales.schema, partition: 0, offset: 7, key: key, value: value)
    let out = processor.process([message], nowMs: 1_000)
    let record = try #require(out.first { $0.kind == .deadLetter })
    #expect(out.count == 1)
    #expect(record.value.count + record.key.count < 1_000_000 - 1024, "\(record.value.count) bytes")
    #expect(record.key == Array(key.prefix(DeadLetter.maxCarriedKey)))
    guard case .deadLetter(let letter) = try EventDecoder().decode(record.value) else {
        Issue.record("not a dead letter")
        return
    }
    #expect(letter.value == Array(value.prefix(DeadLetter.maxCarriedValue)) && letter.valueBytes == value.count)
    #expect(letter.key == Array(key.prefix(DeadLetter.maxCarriedKey)) && letter.keyBytes == key.count)
    #expect(letter.offset == 7 && !letter.reason.isEmpty)
    // A message within the bounds is carried whole, with no sizes.
    let small = processor.process([InputMessage(topic: DailySales.schema, partition: 0, offset: 8, key: [1], value: [2])], nowMs: 1_000)
    guard case .deadLetter(let whole)? = try small.first.map({ try EventDecoder().decode($0.value) }) else {
        Issue.record("no dead letter")
        return
    }
    #expect(whole.value == [2] && whole.key == [1] && whole.valueBytes == nil && whole.keyBytes == nil)
}

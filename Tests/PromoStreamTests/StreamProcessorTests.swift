import DINOP
import Foundation
import PromoEvents
import PromoFeatures
@testable import PromoStream
import PromoWorld
import Testing

/// A small generated promotion as stream messages (profiles and activities first, then each day's sales and
/// buyers), with a model whose normalisation is fitted to it so that outputs are not saturated.
struct SmallStream {
    var messages: [InputMessage] = []
    var records: [ItemRecord] = []
    var model: DINOPModel

    /// `markets`: the four-market world, and a model with MARKETS.md's market-embedding over its markets;
    /// `domainAttention`: domain-attention too, its heads' weights on `o` drawn (a fresh model starts them at zero).
    /// `competition`: MARKETS.md's competition too (F = 6, with cooperation), its heads' weights drawn.
    init(items: Int = 200, partitions: Int32 = 4, markets: Bool = false, domainAttention: Bool = false,
         competition: Bool = false) throws {
        var options = PromotionWorld.Options()
        options.seed = 5
        options.itemsPerPromotion = items
        if markets { options.markets = PromotionWorld.fourMarkets }
        options.promotions = [options.promotions[0]]
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try PromotionWorld(options: options).write(to: folder, threads: 1)
        let promotion = folder.appendingPathComponent(options.promotions[0].id)
        let files = PromotionWorld.inputFiles.map { promotion.appendingPathComponent("\($0).jsonl") }
        records = try ItemRecords.read(files, decoder: EventDecoder()) { _ in Issue.record("rejected line") }.records
        messages = try PromotionWorld.inputEvents(promotionFolder: promotion).enumerated().map { offset, event in
            let itemID = event.itemID!
            return InputMessage(topic: event.schema, partition: Int32(fnv1a64(itemID) % UInt64(partitions)),
                                offset: Int64(offset), key: Array(itemID.utf8), value: event.encoded())
        }

        var config = ModelConfig.default
        config.hidden = 16
        config.attention = 8
        if markets {
            config.extensions = [ModelExtension.marketEmbedding] + (domainAttention ? [ModelExtension.domainAttention] : [])
            config.markets = PromotionWorld.fourMarkets.map(\.id)
            config.domainAttention.specRows = 101
        }
        if competition {
            config.extensions.append(ModelExtension.competition)
            config.competition = CompetitionSizes(width: 6, cooperation: true)
        }
        var model = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 1009, encoderWidth: 8, headHidden: 16),
                                          seed: 3)
        var rng = SeededGenerator(seed: 4)
        for spec in model.layout.specs where spec.name.hasSuffix(".spec.weight") || spec.name.hasSuffix("comp.weight")
            || spec.name.hasSuffix("coop.weight") {
            for i in spec.range { model.parameters.values[i] = Float(0.3 * rng.normal()) }
        }
        let pipeline = FeaturePipeline(config: config)
        Trainer.fitNormalisation(&model.parameters, to: records.map { TrainingExample(item: pipeline.raw($0), labels: ItemLabels()) })
        self.model = model
    }

    var offline: [ItemKey: Prediction] {
        Dictionary(uniqueKeysWithValues: zip(records.map(\.key), FeaturePipeline(config: model.config).predictions(model, for: records)))
    }
}

/// The latest prediction per item among output records (by sequence number).
func latestPredictions(_ records: [OutputRecord]) throws -> [ItemKey: PredictionEvent] {
    var latest: [ItemKey: PredictionEvent] = [:]
    for record in records where record.kind == .prediction {
        guard case .prediction(let p) = try EventDecoder().decode(record.value) else { continue }
        let key = ItemKey(promotionID: p.promotionID, itemID: p.itemID)
        if (latest[key]?.sequence ?? 0) < (p.sequence ?? 0) { latest[key] = p }
    }
    return latest
}

func expectClose(_ p: PredictionEvent, _ q: Prediction, _ comment: Comment? = nil) {
    #expect(p.daysSeen == q.daysSeen, comment)
    #expect(abs(p.gmv - q.gmv!) <= 1e-4 * max(1, q.gmv!), comment)
    #expect(abs(p.bsp - q.bsp!) <= 1e-5, comment)
    #expect(zip(p.ssProbabilities, q.slotProbabilities!).allSatisfy { abs($0 - $1) <= 1e-5 }, comment)
    #expect((p.ja == nil) == (q.ja == nil), comment)
    if let a = p.ja, let b = q.ja { #expect(abs(a - b) <= 1e-5, comment) }
}

@Test("streamed in batches, every item's last prediction equals the offline batch prediction",
      arguments: [200_000, 10])
func streamingEqualsOffline(hotItems: Int) throws {
    // With 10 hot items, nearly every change finds its item compact and recomputes it from its stored days.
    let stream = try SmallStream()
    var options = ProcessorOptions()
    options.hotItems = hotItems
    let processor = StreamProcessor(model: stream.model, options: options)
    var out: [OutputRecord] = []
    for start in stride(from: 0, to: stream.messages.count, by: 700) {
        out += processor.process(Array(stream.messages[start..<min(start + 700, stream.messages.count)]), nowMs: 1_000)
    }
    // Days whose buyer profile never came wait out the grace period, as offline has no such wait.
    out += processor.process([], nowMs: 1_000 + ProcessorOptions().gracePeriodMs)
    #expect(!out.contains { $0.kind == .deadLetter })
    let latest = try latestPredictions(out)
    let offline = stream.offline
    #expect(latest.count == offline.count)
    for (key, expected) in offline {
        guard let p = latest[key] else { Issue.record("no prediction for \(key)"); continue }
        expectClose(p, expected, "\(key)")
        let record = stream.records.first { $0.key == key }!
        #expect(p.daysWithoutBuyers == record.days.filter { record.buyers[$0] == nil })
    }
    // Some items took several batches, so they were advanced incrementally rather than computed at once.
    #expect(latest.values.contains { ($0.sequence ?? 0) > 3 })
}

@Test("a late day recomputes the item, a duplicate changes nothing, a corrected day recomputes it")
func lateDuplicateAndCorrectedDays() throws {
    let stream = try SmallStream(items: 60)
    let item = stream.records.first { $0.days.count >= 4 && $0.buyers.count == $0.days.count }!
    let mine = stream.messages.filter { $0.key == Array(item.key.itemID.utf8) }
    func day(_ m: InputMessage) -> Int? {
        switch try? EventDecoder().decode(m.value) {
        case .sales(let e): e.day
        case .buyers(let e): e.day
        default: nil
        }
    }
    let lateDay = item.days[1]
    let processor = StreamProcessor(model: stream.model)
    var out = processor.process(mine.filter { day($0) != lateDay }, nowMs: 0)
    let withoutLate = try #require(try latestPredictions(out)[item.key])
    #expect(withoutLate.daysSeen == item.days.count - 1)
    out = processor.process(mine.filter { day($0) == lateDay }, nowMs: 0)
    let afterLate = try #require(try latestPredictions(out)[item.key])
    expectClose(afterLate, try #require(stream.offline[item.key]))
    #expect((afterLate.sequence ?? 0) > (withoutLate.sequence ?? 0))

    // The same events again: no prediction, no changelog record.
    #expect(processor.process(mine, nowMs: 0).isEmpty)

    // A corrected earlier day: the item is recomputed with the new figures, as offline would.
    var sales = item.sales[item.days[0]]!
    sales["units"] = (sales["units"] ?? 0) + 7
    let correction = DailySales(itemID: item.key.itemID, promotionID: item.key.promotionID, day: item.days[0], sales: sales)
    out = processor.process([InputMessage(topic: "daily-sales", partition: mine[0].partition, offset: 99_999,
                                          key: Array(item.key.itemID.utf8), value: Event.sales(correction).encoded())],
                            nowMs: 0)
    var corrected = item
    corrected.sales[item.days[0]] = sales
    let expected = FeaturePipeline(config: stream.model.config).predictions(stream.model, for: [corrected])[0]
    expectClose(try #require(try latestPredictions(out)[item.key]), expected)
}

/// An item with a buyer profile for every day, and its events without the last day's buyer profile.
func itemMissingLastBuyers() throws -> (SmallStream, ItemRecord, Int, [InputMessage]) {
    let stream = try SmallStream(items: 60)
    let item = stream.records.first { $0.days.count >= 3 && $0.buyers.count == $0.days.count }!
    let lastDay = item.days.last!
    let mine = stream.messages.filter { m in
        guard m.key == Array(item.key.itemID.utf8) else { return false }
        if case .buyers(let e) = try? EventDecoder().decode(m.value) { return e.day != lastDay }
        return true
    }
    return (stream, item, lastDay, mine)
}

@Test("a day without its buyer profile waits for the grace period, then is applied with the missing default")
func gracePeriod() throws {
    let (stream, item, lastDay, mine) = try itemMissingLastBuyers()
    var options = ProcessorOptions()
    options.gracePeriodMs = 60_000
    let processor = StreamProcessor(model: stream.model, options: options)
    let before = try #require(try latestPredictions(processor.process(mine, nowMs: 1_000))[item.key])
    #expect(before.daysSeen == item.days.count - 1, "the latest day waits for its buyers")
    #expect(processor.process([], nowMs: 60_999).isEmpty, "still within the grace period")
    let after = try #require(try latestPredictions(processor.process([], nowMs: 61_000))[item.key])
    #expect(after.daysSeen == item.days.count)
    #expect(after.asOfDay == lastDay)
    #expect(after.daysWithoutBuyers == [lastDay])
    var withoutBuyers = item
    withoutBuyers.buyers[lastDay] = nil
    expectClose(after, FeaturePipeline(config: stream.model.config).predictions(stream.model, for: [withoutBuyers])[0])
}

@Test("restoring from the changelog records continues where the state left off")
func restoreFromChangelog() throws {
    let stream = try SmallStream(items: 120)
    let half = stream.messages.count / 2
    let first = StreamProcessor(model: stream.model)
    let early = first.process(Array(stream.messages[..<half]), nowMs: 0)
    let second = StreamProcessor(model: stream.model)
    for p in Set(early.compactMap(\.partition)) {
        let failures = second.restore(partition: p, records: early.filter { $0.kind == .changelog && $0.partition == p }
            .map { (key: $0.key, value: $0.value) })
        #expect(failures.isEmpty)
    }
    #expect(second.itemCount == first.itemCount)
    let late = second.process(Array(stream.messages[half...]), nowMs: 0)
    let reference = first.process(Array(stream.messages[half...]), nowMs: 0)
    let (a, b) = (try latestPredictions(late), try latestPredictions(reference))
    #expect(a.count == b.count)
    for (key, p) in a {
        #expect(p.sequence == b[key]?.sequence)
        // Restored items are kept compactly and recomputed from their stored days: equal up to float rounding.
        let reference = try #require(b[key])
        #expect(abs(p.gmv - reference.gmv) <= 1e-4 * max(1, p.gmv))
    }
}

@Test("bad input becomes a dead letter with the reason, and the rest is processed")
func deadLetters() throws {
    let stream = try SmallStream(items: 30)
    let good = stream.messages.filter { $0.partition == 0 }
    let bad = [
        InputMessage(topic: "daily-sales", partition: 0, offset: 1, key: Array("x".utf8), value: Array("{not json".utf8)),
        InputMessage(topic: "daily-sales", partition: 0, offset: 2, key: Array("x".utf8),
                     value: Array(#"{"schema":"daily_sales/1","item_id":"x","promotion_id":"p","day":99,"sales":{}}"#.utf8)),
        InputMessage(topic: "daily-sales", partition: 0, offset: 3, key: Array("other".utf8),
                     value: Array(#"{"schema":"daily_sales/1","item_id":"x","promotion_id":"p","day":1,"sales":{}}"#.utf8)),
    ]
    let processor = StreamProcessor(model: stream.model)
    let out = processor.process(Array(good.prefix(10)) + bad + good.dropFirst(10), nowMs: 0)
    let letters = try out.filter { $0.kind == .deadLetter }.map { record -> DeadLetter in
        guard case .deadLetter(let d) = try EventDecoder().decode(record.value) else { throw EventError(path: "", reason: "not a dead letter") }
        return d
    }
    #expect(letters.map(\.offset) == [1, 2, 3])
    #expect(letters[1].reason.hasPrefix("day:"))
    #expect(letters[2].reason.hasPrefix("key:"))
    #expect(letters.allSatisfy { $0.sourceTopic == "daily-sales" && $0.value.count > 0 })
    let items = Set(stream.records.filter { r in good.contains { $0.key == Array(r.key.itemID.utf8) } }.map(\.key))
    #expect(Set(try latestPredictions(out).keys) == items)
}

@Test("predictions as of a day equal offline predictions from the days up to it (the backtest's view)")
func predictionsAsOfDay() throws {
    let stream = try SmallStream(items: 80)
    let processor = StreamProcessor(model: stream.model)
    _ = processor.process(stream.messages, nowMs: 0)
    let pipeline = FeaturePipeline(config: stream.model.config)
    let network = Network(stream.model.parameters)
    var scorer = Scorer(network: network, capacity: 64)
    for day in [0, 3, 20] {
        let asOf = Dictionary(uniqueKeysWithValues: processor.predictions(asOfDay: day).map { (ItemKey(promotionID: $0.promotionID, itemID: $0.itemID), $0) })
        #expect(asOf.count == stream.records.count)
        // Offline, with the days up to `day` (the latest day of an item still waits for its buyers live only
        // within the grace period, which a backtest treats as over).
        let expected = scorer.predict(stream.records.map { network.encode(pipeline.raw($0, throughDay: day)) })
        for (record, q) in zip(stream.records, expected) {
            expectClose(try #require(asOf[record.key]), q, "\(record.key) day \(day)")
        }
    }
}

@Test("a changelog record round-trips bit for bit, whatever the values, and refuses a damaged record")
func changelogRecordRoundTrip() throws {
    var state = ItemState(key: ItemKey(promotionID: "p", itemID: "ünïcode-item"), siiCount: 2, nSis: 2, nU: 3)
    state.hasProfile = true
    state.sii = ["seller-1", nil]
    state.sis = [1.5, .nan]
    let tricky: [Float] = [0, 1, 3, 127, 128, 16_777_218, 268_435_455, 268_435_456, 0.5, -0.0, -3, .nan, 1e30,
                           .infinity, .leastNonzeroMagnitude, 42, 7, 0.25, 1, 0, 2]
    for (day, offset) in [(1, 0), (4, 7), (2, 14)] {
        _ = state.store(day: day, buyers: false, values: Array(tricky[offset..<(offset + 4)]), nDis: 4, nU: 3)
        _ = state.store(day: day, buyers: true, values: Array(tricky[(offset + 4)..<(offset + 7)]), nDis: 4, nU: 3)
    }
    state.activityID = "a"
    state.act = [2, 0.1]
    state.pendingSince = 1_700_000_000_000
    state.waitingDay = 4
    state.sequence = 9
    state.lastGMV = 123.25
    // Layout 1 (before model distribution) is still read: layout 2 without the last prediction's version;
    // layout 2 is layout 3 without the provenance header (an empty application: 4 bytes, no positions: 1).
    let layout1 = [1] + StateCodec.encode(state).dropFirst(6)
    #expect(try [1] + StateCodec.encode(StateCodec.decode(layout1)).dropFirst(6) == layout1)
    state.predictedBy = 4
    let layout2 = [2] + StateCodec.encode(state).dropFirst(6)
    #expect(try StateCodec.encode(StateCodec.decode(layout2)) == StateCodec.encode(state))
    let provenance = Provenance(application: "promo-stream", positions: [12, 0, 7, 1 << 40])
    let bytes = StateCodec.encode(state, provenance: provenance)
    #expect(try StateCodec.decodeWithProvenance(bytes).provenance == provenance)
    let back = try StateCodec.decode(bytes)
    #expect(back.key == state.key && back.sii == state.sii && back.activityID == "a" && back.sequence == 9)
    #expect(back.predictedBy == 4)
    #expect(back.dayNumbers == [1, 2, 4] && back.dayFlags == state.dayFlags)
    #expect(back.dayValues.map(\.bitPattern) == state.dayValues.map(\.bitPattern))
    #expect(back.sis.map(\.bitPattern) == state.sis.map(\.bitPattern))
    #expect(back.pendingSince == state.pendingSince && back.waitingDay == 4 && back.lastGMV == 123.25)
    #expect(throws: StateCodecError.self) { try StateCodec.decode(Array(bytes.dropLast())) }
    #expect(throws: StateCodecError.self) { try StateCodec.decode([4] + bytes.dropFirst()) }
}

@Test("the latest rollup records of all partitions add up to the latest predicted GMVs per platform, market, industry and seller, also after items change seller")
func rollupsAddUp() throws {
    let stream = try SmallStream(items: 150)
    let processor = StreamProcessor(model: stream.model)
    var out: [OutputRecord] = []
    for (batch, start) in stride(from: 0, to: stream.messages.count, by: 500).enumerated() {
        out += processor.process(Array(stream.messages[start..<min(start + 500, stream.messages.count)]),
                                 nowMs: Int64(batch) * 300)
    }
    out += processor.process([], nowMs: 10_000_000)
    // Three items move to another seller after their predictions: their GMV leaves the old seller's sum.
    var movedSeller: [ItemKey: String] = [:]
    var moves: [InputMessage] = []
    for message in stream.messages where moves.count < 3 {
        guard case .profile(var profile) = try EventDecoder().decode(message.value), profile.ids["seller"] != nil else { continue }
        profile.ids["seller"] = "moved-seller"
        movedSeller[ItemKey(promotionID: profile.promotionID, itemID: profile.itemID)] = "moved-seller"
        moves.append(InputMessage(topic: message.topic, partition: message.partition, offset: Int64(stream.messages.count + moves.count),
                                  key: message.key, value: Event.profile(profile).encoded()))
    }
    #expect(moves.count == 3)
    out += processor.process(moves, nowMs: 10_000_000 + 5_000)
    var latest: [String: Rollup] = [:]
    for record in out where record.kind == .rollup {
        guard case .rollup(let r) = try EventDecoder().decode(record.value) else { continue }
        #expect(String(decoding: record.key, as: UTF8.self) == "\(r.promotionID)/\(r.scope)/\(r.id)/\(r.partition)")
        latest[String(decoding: record.key, as: UTF8.self)] = r
    }
    var published: [String: Double] = [:]
    for r in latest.values { published["\(r.scope)/\(r.id)", default: 0] += r.gmv }

    var expected: [String: Double] = [:]
    let predictions = try latestPredictions(out)
    for record in stream.records {
        guard let gmv = predictions[record.key]?.gmv else { continue }
        expected["platform/all", default: 0] += gmv
        if let market = record.profile?.ids["market"], !market.isEmpty { expected["market/\(market)", default: 0] += gmv }
        if let industry = record.profile?.ids["industry"] { expected["industry/\(industry)", default: 0] += gmv }
        if let seller = movedSeller[record.key] ?? record.profile?.ids["seller"] { expected["seller/\(seller)", default: 0] += gmv }
    }
    #expect(Set(published.keys) == Set(expected.keys))
    for (key, value) in expected {
        #expect(abs((published[key] ?? -1) - value) <= 1e-6 * max(1, value), "\(key)")
    }
    // Coalesced: far fewer rollup records than item changes.
    #expect(out.filter { $0.kind == .rollup }.count < out.filter { $0.kind == .prediction }.count)
}

@Test("a day waiting for its buyers keeps its grace clock across a restore")
func graceSurvivesRestore() throws {
    let (stream, item, lastDay, mine) = try itemMissingLastBuyers()
    var options = ProcessorOptions()
    options.gracePeriodMs = 60_000
    let first = StreamProcessor(model: stream.model, options: options)
    let records = first.process(mine, nowMs: 1_000).filter { $0.kind == .changelog }
    let second = StreamProcessor(model: stream.model, options: options)
    #expect(second.restore(partition: mine[0].partition, records: records.map { (key: $0.key, value: $0.value) }).isEmpty)
    #expect(try latestPredictions(second.process([], nowMs: 60_999))[item.key] == nil)
    let after = try #require(try latestPredictions(second.process([], nowMs: 61_000))[item.key])
    #expect(after.daysSeen == item.days.count && after.daysWithoutBuyers == [lastDay])
}

@Test("partitions processed by three threads give the same outputs as one processor, share its limits and swap together")
func shardedEqualsSingle() throws {
    let stream = try SmallStream(items: 150, partitions: 12)
    var options = ProcessorOptions()
    options.threads = 3
    options.recomputePerCall = 30
    let sharded = ShardedProcessor(model: stream.model, options: options)
    #expect(sharded.shards.allSatisfy { $0.options.recomputePerCall == 10 && $0.options.hotItems == 200_000 / 3 + 1 })
    let single = StreamProcessor(model: stream.model)
    #expect(sharded.shards.count == 3)
    func run(_ messages: ArraySlice<InputMessage>) throws -> ([ItemKey: PredictionEvent], [ItemKey: PredictionEvent]) {
        var a: [OutputRecord] = [], b: [OutputRecord] = []
        for start in stride(from: messages.startIndex, to: messages.endIndex, by: 600) {
            let batch = Array(messages[start..<min(start + 600, messages.endIndex)])
            a += sharded.process(batch, nowMs: 0)
            b += single.process(batch, nowMs: 0)
        }
        a += sharded.process([], nowMs: ProcessorOptions().gracePeriodMs)
        b += single.process([], nowMs: ProcessorOptions().gracePeriodMs)
        #expect(a.count == b.count)
        return (try latestPredictions(a), try latestPredictions(b))
    }
    let half = stream.messages.count / 2
    let (a, b) = try run(stream.messages[..<half])
    #expect(a.count == b.count && a.count > 0)
    // Equal up to float rounding: a shard's GEMMs have other row counts, which BLAS may sum in another order.
    func close(_ x: Double, _ y: Double?) -> Bool { y.map { abs(x - $0) <= 1e-4 * max(1, abs($0)) } ?? false }
    for (key, p) in a { #expect(close(p.gmv, b[key]?.gmv) && p.sequence == b[key]?.sequence, "\(key)") }
    #expect(sharded.itemCount == single.itemCount)

    let next = try nextVersion(of: stream.model)
    try sharded.swap(to: next)
    #expect(sharded.shards.allSatisfy { $0.model.version == next.version })
    // The member's recompute budget per call, split over the shards.
    #expect(sharded.process([], nowMs: 0).filter { $0.kind == .prediction }.count == 30)
    try single.swap(to: next)
    let (c, d) = try run(stream.messages[half...])
    for (key, p) in c { #expect(close(p.gmv, d[key]?.gmv) && p.modelVersion == next.version, "\(key)") }
    while sharded.staleCount > 0 { _ = sharded.process([], nowMs: 0) }
    #expect(sharded.shards.allSatisfy { $0.staleCount == 0 })
}

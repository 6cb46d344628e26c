import DINOP
import Foundation
import PromoEvents
import PromoFeatures
@testable import PromoStream
import PromoWorld
import Testing

/// MARKETS.md `competition` in the stream without Kafka: the item role's vectors and watermarks go to an industry
/// stage, its contexts back to the item role, as the topics would carry them.
@Suite("competition through the item role and the industry stage")
struct CompetitionStreamTests {
    static let (vectors, contexts) = ("app.competition-vectors", "app.competition-contexts")

    @Test("every item's prediction at each day's close equals offline `promo predict --as-of-day` of that day")
    func closesEqualOffline() throws {
        let stream = try SmallStream(items: 240, markets: true, domainAttention: true, competition: true)
        let (inputPartitions, stagePartitions): (Int32, Int32) = (4, 3)
        var options = ProcessorOptions()
        options.competitionContexts = Self.contexts
        // The contexts are an input whose position the item's changelog records carry.
        options.inputTopics = PromotionWorld.inputFiles + [Self.contexts]
        let processor = StreamProcessor(model: stream.model, options: options)
        processor.setCompetitionPartitions(input: inputPartitions, stage: stagePartitions)
        var stageOptions = IndustryStageOptions()
        stageOptions.vectors = Self.vectors
        stageOptions.width = 6
        stageOptions.graceMs = .max / 4
        let stage = IndustryStage(options: stageOptions)

        var offsets: [String: Int64] = [:]
        func message(_ record: OutputRecord, topic: String, partitions: Int32) -> InputMessage {
            let partition = record.partition ?? Int32(record.key.reduce(UInt64(7)) { $0 &* 31 &+ UInt64($1) } % UInt64(partitions))
            let key = "\(topic)/\(partition)"
            defer { offsets[key, default: 0] += 1 }
            return InputMessage(topic: topic, partition: partition, offset: offsets[key] ?? 0, key: record.key, value: record.value)
        }
        var published: [OutputRecord] = [], toStage: [InputMessage] = [], toItems: [InputMessage] = []
        var vectorCount = 0, watermarkCount = 0
        /// One round: the item role's call, then the stage's on what the item role sent.
        func round(_ events: [InputMessage], nowMs: Int64) {
            let itemOut = processor.process(events + toItems, nowMs: nowMs)
            toItems = []
            published += itemOut.filter { $0.kind == .prediction || $0.kind == .deadLetter }
            for record in itemOut where record.kind == .competitionVector {
                if record.partition == nil { vectorCount += 1 } else { watermarkCount += 1 }
                toStage.append(message(record, topic: Self.vectors, partitions: stagePartitions))
            }
            let stageOut = stage.process(toStage, nowMs: nowMs)
            toStage = []
            #expect(!stageOut.contains { $0.kind == .deadLetter })
            toItems = stageOut.filter { $0.kind == .competitionContext }
                .map { message($0, topic: Self.contexts, partitions: inputPartitions) }
        }
        for start in stride(from: 0, to: stream.messages.count, by: 600) {
            round(Array(stream.messages[start..<min(start + 600, stream.messages.count)]), nowMs: 1_000)
        }
        // Days whose buyers never came wait out the item role's grace period; then the contexts go round.
        round([], nowMs: 1_000 + ProcessorOptions().gracePeriodMs)
        round([], nowMs: 1_000 + ProcessorOptions().gracePeriodMs)
        #expect(!published.contains { $0.kind == .deadLetter })
        #expect(vectorCount >= stream.records.reduce(0) { $0 + $1.days.count } - stream.records.count)
        #expect(watermarkCount > 0 && watermarkCount % Int(stagePartitions) == 0)

        // The last pre-sale day closes only after the stage's grace period: every earlier one closed on watermarks.
        let lastDay = stream.records.flatMap(\.days).max() ?? 0
        let closed = (0..<stagePartitions).map { stage.closedDay(partition: $0, promotion: stream.records[0].key.promotionID) }
        #expect(closed.allSatisfy { $0 == lastDay - 1 }, "closed days \(closed), last day \(lastDay)")

        var byDay: [Int: [ItemKey: PredictionEvent]] = [:]
        for record in published where record.kind == .prediction {
            guard case .prediction(let p) = try EventDecoder().decode(record.value), let day = p.asOfDay else {
                Issue.record("a prediction without as_of_day")
                continue
            }
            let key = ItemKey(promotionID: p.promotionID, itemID: p.itemID)
            #expect(byDay[day]?[key] == nil, "two predictions of \(key) as of day \(day)")
            byDay[day, default: [:]][key] = p
        }
        let pipeline = FeaturePipeline(config: stream.model.config)
        var compared = 0
        for day in 1..<lastDay {
            let offline = pipeline.predictions(stream.model, for: stream.records, asOfDay: day)
            for (record, expected) in zip(stream.records, offline) {
                let seen = record.days.contains { $0 <= day }
                let streamed = byDay[day]?[record.key]
                #expect(seen == (streamed != nil), "\(record.key) day \(day): seen \(seen)")
                guard let streamed else { continue }
                expectClose(streamed, expected, "\(record.key) as of day \(day)")
                compared += 1
            }
        }
        #expect(compared > 240 * (lastDay - 1) / 2)
        #expect(processor.staleContexts == 0)
        // The group matters: an item predicted alone (its own group, no neighbours) comes out otherwise.
        let day = lastDay - 1
        let moved = stream.records.prefix(40).filter { record in
            guard let streamed = byDay[day]?[record.key], let alone = pipeline.predictions(stream.model, for: [record], asOfDay: day).first?.gmv
            else { return false }
            return abs(streamed.gmv - alone) > 1e-3 * max(1, alone)
        }
        #expect(moved.count > 20)
    }

    @Test("LocalCompetition (two shards, one stage): profiles that come after an item's first days hold its partition's watermark, and every close still equals offline")
    func lateProfilesHoldTheWatermark() throws {
        let stream = try SmallStream(items: 160, markets: true, domainAttention: true, competition: true)
        // A tenth of the items' profiles arrive after every day's events.
        let late = Set(stream.records.enumerated().filter { $0.offset % 10 == 3 }.map { Array($0.element.key.itemID.utf8) })
        func isLateProfile(_ m: InputMessage) -> Bool {
            guard let key = m.key, late.contains(key), case .profile? = try? EventDecoder().decode(m.value) else { return false }
            return true
        }
        let ordered = stream.messages.filter { !isLateProfile($0) } + stream.messages.filter(isLateProfile)
        var closedBeforeProfiles = 0
        try expectClosesEqualOffline(stream, ordered) { local, batch in
            if batch.contains(where: isLateProfile), closedBeforeProfiles == 0 {
                closedBeforeProfiles = local.stage.closedDay(partition: 0, promotion: stream.records[0].key.promotionID)
            }
        }
        // Every item of the partitions without a profile held them at its first day less one.
        let firstDay = stream.records.filter { late.contains(Array($0.key.itemID.utf8)) }.compactMap(\.days.first).min() ?? 1
        #expect(closedBeforeProfiles <= firstDay - 1)
    }

    static func isBuyers(_ m: InputMessage) -> Bool {
        guard case .buyers? = try? EventDecoder().decode(m.value) else { return false }
        return true
    }

    @Test("LocalCompetition: a partition's buyers read days ahead of its sales (the topics of a partition are read in no set order) do not move its watermark, and every close still equals offline")
    func buyersAheadOfSales() throws {
        let stream = try SmallStream(items: 160, markets: true, domainAttention: true, competition: true)
        // Every day's buyers first, then the profiles and sales, in their order.
        let ordered = stream.messages.filter(Self.isBuyers) + stream.messages.filter { !Self.isBuyers($0) }
        #expect(ordered.prefix(500).contains(where: Self.isBuyers) && ordered.suffix(500).allSatisfy { !Self.isBuyers($0) })
        try expectClosesEqualOffline(stream, ordered) { _, _ in }
    }

    @Test("LocalCompetition: a partition's sales read days ahead of its buyers (each day applied without its buyers once a later day comes) hold its watermark until the buyers come, and every close still equals offline")
    func salesAheadOfBuyers() throws {
        let stream = try SmallStream(items: 160, markets: true, domainAttention: true, competition: true)
        // The profiles and every day's sales first, then the buyers, in their order.
        let ordered = stream.messages.filter { !Self.isBuyers($0) } + stream.messages.filter(Self.isBuyers)
        var closedBeforeBuyers: Int?
        try expectClosesEqualOffline(stream, ordered) { local, batch in
            if batch.contains(where: Self.isBuyers), closedBeforeBuyers == nil {
                closedBeforeBuyers = local.stage.closedDay(partition: 0, promotion: stream.records[0].key.promotionID)
            }
        }
        #expect(closedBeforeBuyers == 0)
    }

    @Test("a partition restored from its changelog sends its day watermark from its items' days, without waiting for a new event")
    func restoreFindsTheWatermark() throws {
        let stream = try SmallStream(items: 80, markets: true, domainAttention: true, competition: true)
        var options = ProcessorOptions()
        options.competitionContexts = Self.contexts
        options.inputTopics = PromotionWorld.inputFiles + [Self.contexts]
        func watermarks(_ records: [OutputRecord]) -> [Int32: Int] {
            var days: [Int32: Int] = [:]
            for record in records where record.kind == .competitionVector && record.partition != nil {
                guard case .watermark(let w)? = try? CompetitionCodec.decodeStageInput(record.value) else { continue }
                days[w.partition] = max(days[w.partition] ?? 0, w.day)
            }
            return days
        }
        let grace = options.gracePeriodMs
        let before = StreamProcessor(model: stream.model, options: options)
        before.setCompetitionPartitions(input: 4, stage: 1)
        var out = before.process(stream.messages, nowMs: 1_000)
        out += before.process([], nowMs: 1_000 + grace)
        let lastDay = stream.records.flatMap(\.days).max() ?? 0
        #expect(watermarks(out) == [0: lastDay - 1, 1: lastDay - 1, 2: lastDay - 1, 3: lastDay - 1])

        let after = StreamProcessor(model: stream.model, options: options)
        after.setCompetitionPartitions(input: 4, stage: 1)
        for p in Int32(0)..<4 {
            let records = out.filter { $0.kind == .changelog && $0.partition == p }.map { (key: Optional($0.key), value: $0.value) }
            #expect(after.restore(partition: p, records: records).isEmpty)
        }
        // Days lacking their buyers hold it for the grace period from the restore on, then it is sent again.
        #expect(watermarks(after.process([], nowMs: 2_000 + grace)).isEmpty)
        #expect(watermarks(after.process([], nowMs: 2_000 + 2 * grace)) == watermarks(out))
    }

    /// Runs `ordered` through a LocalCompetition (two shards, four input partitions, one stage) in batches of 500,
    /// `before` looking at each batch first, then the item role's grace period; every item seen by day t has its
    /// prediction as of t, equal to offline, for the first, middle and last day closed on watermarks.
    func expectClosesEqualOffline(_ stream: SmallStream, _ ordered: [InputMessage],
                                  before: (LocalCompetition, [InputMessage]) -> Void) throws {
        var options = ProcessorOptions()
        options.threads = 2
        let local = LocalCompetition(processor: ShardedProcessor(model: stream.model, options: options), inputPartitions: 4,
                                     graceMs: .max / 4)
        var out: [OutputRecord] = []
        for start in stride(from: 0, to: ordered.count, by: 500) {
            let batch = Array(ordered[start..<min(start + 500, ordered.count)])
            before(local, batch)
            out += local.process(batch, nowMs: 1_000)
        }
        out += local.process([], nowMs: 1_000 + ProcessorOptions().gracePeriodMs)
        let lastDay = stream.records.flatMap(\.days).max() ?? 0
        #expect(local.stage.closedDay(partition: 0, promotion: stream.records[0].key.promotionID) == lastDay - 1)
        var byDay: [Int: [ItemKey: PredictionEvent]] = [:]
        for record in out where record.kind == .prediction {
            guard case .prediction(let p) = try EventDecoder().decode(record.value), let day = p.asOfDay else { continue }
            byDay[day, default: [:]][ItemKey(promotionID: p.promotionID, itemID: p.itemID)] = p
        }
        let pipeline = FeaturePipeline(config: stream.model.config)
        for day in [1, lastDay / 2, lastDay - 1] {
            var missing: [ItemKey] = []
            for (record, expected) in zip(stream.records, pipeline.predictions(stream.model, for: stream.records, asOfDay: day)) {
                guard record.days.contains(where: { $0 <= day }) else { continue }
                guard let streamed = byDay[day]?[record.key] else {
                    missing.append(record.key)
                    continue
                }
                expectClose(streamed, expected, "\(record.key) as of day \(day)")
            }
            #expect(missing.count == 0, "day \(day): no close of \(missing.count) seen items, e.g. \(missing.prefix(3))")
        }
    }
}

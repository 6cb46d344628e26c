import DINOP
import Foundation
import PromoEvents
import PromoFeatures
@testable import PromoStream
import Testing

/// The same architecture with other weights (and the next version number), as a fine-tune would make.
func nextVersion(of model: DINOPModel, seed: UInt64 = 11) throws -> DINOPModel {
    var next = try DINOPModel.random(config: model.config, dims: model.layout.dims, seed: seed)
    for group in FeatureGroup.allCases {
        for part in ["mean", "std"] {
            let name = "\(group.rawValue).norm.\(part)"
            if let spec = model.layout.spec(name) { next.parameters[name] = model.parameters.values[spec.range] }
        }
    }
    next.version = model.version + 1
    next.parent = model.version
    return next
}

@Test("after a model swap every item is recomputed in the background, most active first, and ends as the new model predicts offline")
func swapRecomputesEveryItem() throws {
    let stream = try SmallStream(items: 150)
    var options = ProcessorOptions()
    options.recomputePerCall = 40
    options.hotItems = 100  // some items compact, so both kinds are queued
    let processor = StreamProcessor(model: stream.model, options: options)
    // The whole stream first: no item has an event of its own after the swap, so only the background work
    // can bring it to the new version.
    for start in stride(from: 0, to: stream.messages.count, by: 500) {
        _ = processor.process(Array(stream.messages[start..<min(start + 500, stream.messages.count)]), nowMs: 0)
    }
    _ = processor.process([], nowMs: options.gracePeriodMs)
    let compact = processor.partitions.all.values.reduce(0) { $0 + $1.count - $1.hotCount }
    #expect(compact > 0)
    let next = try nextVersion(of: stream.model)
    try processor.swap(to: next)
    #expect(processor.model.version == next.version)
    #expect(processor.staleCount == processor.itemCount)
    // The first call takes the hot items with the most predictions so far.
    let hot = processor.partitions.all.values.flatMap { $0.hotStates }
    var out = processor.process([], nowMs: options.gracePeriodMs)
    let firstBatch = try latestPredictions(out)
    #expect(firstBatch.count == 40 && firstBatch.values.allSatisfy { $0.modelVersion == next.version })
    let hottest = hot.filter { firstBatch[$0.key] == nil }.map(\.sequence).max() ?? 0
    #expect(firstBatch.values.allSatisfy { ($0.sequence ?? 0) - 1 >= hottest }, "most active first")
    var calls = 1
    while processor.staleCount > 0 {
        out += processor.process([], nowMs: options.gracePeriodMs)
        calls += 1
    }
    #expect(calls >= 150 / 40)
    let latest = try latestPredictions(out)
    let offline = FeaturePipeline(config: next.config).predictions(next, for: stream.records)
    for (record, expected) in zip(stream.records, offline) {
        guard let p = latest[record.key] else { Issue.record("no prediction for \(record.key)"); continue }
        #expect(p.modelVersion == next.version)
        expectClose(p, expected, "\(record.key)")
    }
    // Nothing left to recompute: another call publishes nothing.
    #expect(processor.process([], nowMs: options.gracePeriodMs + 1).filter { $0.kind == .prediction }.isEmpty)
}

@Test("a restored item last predicted by another version is queued for recomputation; one of this version is not")
func restoreQueuesOtherVersions() throws {
    let stream = try SmallStream(items: 60)
    let old = StreamProcessor(model: stream.model)
    let outputs = old.process(stream.messages, nowMs: 0)
    let records = outputs.filter { $0.kind == .changelog }
    let next = try nextVersion(of: stream.model)
    let same = StreamProcessor(model: stream.model), newer = StreamProcessor(model: next)
    for processor in [same, newer] {
        for p in Set(records.compactMap(\.partition)) {
            #expect(processor.restore(partition: p, records: records.filter { $0.partition == p }.map { ($0.key, $0.value) }).isEmpty)
        }
    }
    #expect(same.staleCount == 0)
    // Every item with a prediction (an item whose only day waits for its buyers has none yet).
    let predicted = try latestPredictions(outputs).count
    #expect(newer.staleCount >= predicted && predicted > 0)
    var out: [OutputRecord] = []
    while newer.staleCount > 0 { out += newer.process([], nowMs: 0) }
    #expect(Set(try latestPredictions(out).values.map(\.modelVersion)) == [next.version])
    #expect(try latestPredictions(out).count == predicted)
}

@Test("a model reading other input features is refused and the current one stays")
func swapRefusesOtherFeatures() throws {
    let stream = try SmallStream(items: 20)
    let processor = StreamProcessor(model: stream.model)
    var config = stream.model.config
    config.features["dis"]!.removeLast()
    let other = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 1009, encoderWidth: 8, headHidden: 16), seed: 2)
    #expect(throws: ModelSwapError.self) { try processor.swap(to: other) }
    #expect(processor.model.version == stream.model.version)
}

@Test("a swap across the competition extension is refused and the current one stays")
func swapRefusesCompetition() throws {
    let stream = try SmallStream(items: 20)
    let processor = StreamProcessor(model: stream.model)
    var config = stream.model.config
    config.extensions = [ModelExtension.competition]
    config.markets = ["cn"]
    let other = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 1009, encoderWidth: 8, headHidden: 16), seed: 2)
    #expect(throws: ModelSwapError.self) { try processor.swap(to: other) }
    #expect(processor.model.version == stream.model.version)
    // And back: a competition processor refuses a plain model, and one of another width (the stage's vectors).
    let competing = try SmallStream(items: 20, markets: true, domainAttention: true, competition: true)
    let member = StreamProcessor(model: competing.model)
    #expect(throws: ModelSwapError.self) { try member.swap(to: stream.model) }
    var wider = competing.model.config
    wider.competition.width = 7
    let widerModel = try DINOPModel.random(config: wider, dims: .defaults(for: wider, rows: 1009, encoderWidth: 8, headHidden: 16), seed: 2)
    #expect(throws: ModelSwapError.self) { try member.swap(to: widerModel) }
    #expect(member.model.version == competing.model.version)
}

@Test("a version that changed only one market's parts recomputes that market's items; the others are left as they were (market-embedding; with domain-attention)",
      arguments: [false, true])
func marketScopedSwap(domainAttention: Bool) throws {
    let stream = try SmallStream(items: 400, markets: true, domainAttention: domainAttention)
    var options = ProcessorOptions()
    options.recomputePerCall = 30
    options.hotItems = 250  // some items compact: both kinds are left alone or recomputed
    let processor = StreamProcessor(model: stream.model, options: options)
    var out = processor.process(stream.messages, nowMs: 0)
    out += processor.process([], nowMs: options.gracePeriodMs)
    let before = try latestPredictions(out)
    // As a fine-tune of scope market on sea: only sea's part of every market-indexed tensor moves (and the
    // discriminators, which no prediction reads).
    var next = stream.model
    next.version += 1
    let markets = next.config.markets.count, sea = try #require(next.config.markets.firstIndex(of: "sea"))
    for spec in next.layout.specs {
        // (A small step for domain-attention's wide blocks, so that the predictions stay ordinary ones.)
        let step: Float = spec.marketIndexing == .columns ? 0.7 : 0.02
        for range in spec.elements(ofMarket: sea, markets: markets) { for i in range { next.parameters.values[i] += step } }
        if spec.trainingOnly { for i in spec.range { next.parameters.values[i] += 0.1 } }
    }
    #expect(next.marketsChanged(from: stream.model) == ["sea"])
    try processor.swap(to: next)
    var after: [OutputRecord] = []
    while processor.staleCount > 0 { after += processor.process([], nowMs: options.gracePeriodMs) }
    let recomputed = try latestPredictions(after)
    let seaItems = Set(stream.records.filter { $0.profile?.ids["market"] == "sea" }.map(\.key))
    #expect(!seaItems.isEmpty && Set(recomputed.keys) == seaItems.intersection(before.keys))
    #expect(processor.skippedRecomputes == before.count - recomputed.count && processor.skippedRecomputes > 0)
    // The sea items as the new version predicts them offline; the others' predictions bit-identical under it.
    let offline = FeaturePipeline(config: next.config).predictions(next, for: stream.records)
    let previous = FeaturePipeline(config: next.config).predictions(stream.model, for: stream.records)
    for (i, record) in stream.records.enumerated() {
        if let p = recomputed[record.key] {
            #expect(p.modelVersion == next.version && p.market == record.profile?.ids["market"])
            expectClose(p, offline[i], "\(record.key)")
        } else {
            #expect(offline[i] == previous[i], "\(record.key) of \(record.profile?.ids["market"] ?? "no market") predicts otherwise")
        }
    }
}

@Test("a version with the very same weights (a re-publish, a rollback) is recomputed in full: every latest prediction names it")
func identicalVersionRecomputesAll() throws {
    let stream = try SmallStream(items: 80, markets: true)
    let processor = StreamProcessor(model: stream.model)
    let before = try latestPredictions(processor.process(stream.messages, nowMs: 0))
    var same = stream.model
    same.version += 1
    #expect(same.marketsChanged(from: stream.model) == [])
    try processor.swap(to: same)
    var out: [OutputRecord] = []
    while processor.staleCount > 0 { out += processor.process([], nowMs: 0) }
    let after = try latestPredictions(out)
    #expect(Set(after.keys) == Set(before.keys) && after.values.allSatisfy { $0.modelVersion == same.version })
    #expect(processor.skippedRecomputes == 0)
}

import DINOP
import Foundation
@testable import PromoEvaluation
import PromoFeatures
import PromoWorld
import Testing

/// A small model trained elsewhere: on the first promotion of another generated world, whose sellers and brands
/// are other ones.
func modelTrainedElsewhere() throws -> DINOPModel {
    let (elsewhere, _) = try smallWorld(items: 800, seed: 23)
    var config = ModelConfig.default
    config.hidden = 16
    config.attention = 8
    let random = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 1009, encoderWidth: 8, headHidden: 16), seed: 5)
    var options = TrainingOptions()
    options.maxEpochs = 6
    options.learningRate = 0.02
    options.batchSize = 128
    return try DINOPRun.train(random, elsewhere, pipeline: FeaturePipeline(config: config), options: options) { _ in }
}

@Test("fine-tuning on the first promotion's outcomes lowers the second promotion's held-out GMV MAE", arguments: FineTuneMethod.allCases)
func fineTuneImprovesNextPromotion(method: FineTuneMethod) throws {
    let (first, second) = try smallWorld(items: 800)
    let current = try modelTrainedElsewhere()
    var options = FineTuneOptions()
    options.method = method
    options.training.maxEpochs = 6
    let result = try FineTuner.run(current, on: first, options: options)
    print(result.table)
    #expect(result.candidate.version == current.version + 1 && result.candidate.parent == current.version)
    let (accepted, rejections) = (result.accepted, result.rejections)
    #expect(accepted, "\(rejections)")
    if method == .rt {
        // RT moves the heads only.
        for spec in current.layout.specs where !spec.name.hasPrefix("head.") {
            #expect(result.candidate.parameters.values[spec.range] == current.parameters.values[spec.range], "\(spec.name)")
        }
    }
    // The second promotion's held-out items, which neither model has seen.
    let (_, heldOut) = second.split(fraction: 0.3, salt: "test")
    let pipeline = FeaturePipeline(config: current.config)
    let before = EvaluationRow(name: "untuned", scores: DINOPRun.scores(current, heldOut, pipeline: pipeline), labels: heldOut.labels, seconds: 0)
    let after = EvaluationRow(name: method.rawValue, scores: DINOPRun.scores(result.candidate, heldOut, pipeline: pipeline), labels: heldOut.labels, seconds: 0)
    print(String(format: "second promotion, %d held-out items: GMV MAE un-tuned %.2f, after %@ on the first promotion %.2f",
                 heldOut.count, before.gmvMAE, method.rawValue.uppercased(), after.gmvMAE))
    #expect(after.gmvMAE < before.gmvMAE)
}

@Test("the holdout gate rejects a candidate whose metrics get worse beyond the margin, naming each one")
func holdoutGate() {
    func row(_ mae: Double, _ auc: Double, _ accuracy: Double) -> EvaluationRow {
        var row = EvaluationRow(name: "", scores: ItemScores(gmv: [], bsp: nil, slot: nil, ja: nil), labels: [], seconds: 0)
        (row.gmvMAE, row.bspAUC, row.ssAccuracy, row.jaAUC) = (mae, auc, accuracy, .nan)
        return row
    }
    let current = row(100, 0.80, 0.5)
    #expect(FineTuner.rejections(current, row(100.9, 0.795, 0.5), margin: 0.01).isEmpty, "within 1%")
    let worse = FineTuner.rejections(current, row(102, 0.80, 0.48), margin: 0.01)
    #expect(worse.count == 2 && worse[0].hasPrefix("GMV MAE rose") && worse[1].hasPrefix("SS accuracy fell"))
    #expect(FineTuner.rejections(current, row(.nan, 0.8, 0.5), margin: 0.01).count == 1)
}

@Test("a fine-tune of scope market moves only that market's parts: every other market's predictions stay bit-identical (market-embedding; with domain-attention)",
      arguments: [false, true])
func marketScopedFineTune(domainAttention: Bool) throws {
    let (first, _) = try smallWorld(items: 1_500, markets: PromotionWorld.fourMarkets)
    let markets = ["cn", "sea", "eu", "latam"]
    var config = domainAttention ? ModelConfig.default.withDomainAttention(markets) : ModelConfig.default.withMarketEmbedding(markets)
    config.domainAttention.specRows = 101
    config.hidden = 16
    config.attention = 8
    var current = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 1009, encoderWidth: 8, headHidden: 16), seed: 5)
    let pipeline = FeaturePipeline(config: config)
    Trainer.fitNormalisation(&current.parameters, to: first.records.map { TrainingExample(item: pipeline.raw($0), labels: ItemLabels()) })
    var options = FineTuneOptions()
    options.market = "sea"
    options.marketScope = .market
    options.training.maxEpochs = 3
    options.training.learningRate = 0.05
    let result = try FineTuner.run(current, on: first, options: options)
    #expect(result.labelledItems < first.count / 5, "only sea's items: \(result.labelledItems)")

    // Parameters: only sea's (market 1's) parts moved: its mkt.* columns, with domain-attention its sii.spec rows,
    // gate.m, spec.fc and head spec slices; every one of those kinds moved.
    var moved: [String: Int] = [:]
    for spec in current.layout.specs {
        for i in spec.range where result.candidate.parameters.values[i].bitPattern != current.parameters.values[i].bitPattern {
            #expect(spec.market(ofElement: i, markets: markets.count) == 1, "\(spec.name)[\(i - spec.offset)] moved")
            moved[String(spec.name.prefix(while: { $0 != "." }))] = (moved[String(spec.name.prefix(while: { $0 != "." }))] ?? 0) + 1
        }
    }
    #expect(Set(moved.keys) == (domainAttention ? ["mkt", "sii", "gate", "spec", "head"] : ["mkt"]), "\(moved)")
    // Predictions: bit-identical for every other market, changed for sea.
    let before = pipeline.predictions(current, for: first.records), after = pipeline.predictions(result.candidate, for: first.records)
    var seaChanged = 0
    for (i, record) in first.records.enumerated() {
        if record.profile?.ids["market"] == "sea" {
            if before[i] != after[i] { seaChanged += 1 }
        } else {
            #expect(before[i] == after[i], "\(record.key) of \(record.profile?.ids["market"] ?? "no market") changed")
        }
    }
    #expect(seaChanged > 0)
}

@Test("scope market is refused for a model without market columns, or a market it does not list")
func marketScopeRefusals() throws {
    let (first, _) = try smallWorld(items: 300, markets: PromotionWorld.fourMarkets)
    var options = FineTuneOptions()
    options.market = "sea"
    options.marketScope = .market
    let plain = try modelTrainedElsewhere()
    #expect(throws: TrainingDataError.self) { try FineTuner.run(plain, on: first, options: options) }
    var config = plain.config.withMarketEmbedding(["cn", "eu"])
    config.hidden = 16
    let listed = try DINOPModel.random(config: config, dims: plain.layout.dims, seed: 1)
    #expect(throws: TrainingDataError.self) { try FineTuner.run(listed, on: first, options: options) }
}

@Test("markets are ordered by items; scores assembled from per-market parts read back per market as they were")
func marketSplitAndAssembly() throws {
    let (first, _) = try smallWorld(items: 600, markets: PromotionWorld.fourMarkets)
    let split = MarketSplit(first)
    #expect(split.markets.first == "cn" && Set(split.markets) == ["cn", "sea", "eu", "latam"])
    #expect(split.markets.map { split.indices(of: $0).count }.reduce(0, +) == first.count)
    let parts = split.markets.enumerated().map { k, market in
        let indices = split.indices(of: market)
        return (indices, ItemScores(gmv: indices.map { Double($0) + Double(k) / 10 }, bsp: indices.map { _ in Double(k) },
                                    slot: indices.map { _ in k + 1 }, ja: indices.map { _ in nil }))
    }
    let whole = ItemScores.assembled(count: first.count, parts)
    for (indices, scores) in parts {
        let back = whole.subset(indices)
        #expect(back.gmv == scores.gmv && back.bsp == scores.bsp && back.slot == scores.slot)
    }
    #expect(!whole.gmv.contains { $0.isNaN }, "every item in exactly one part")
}

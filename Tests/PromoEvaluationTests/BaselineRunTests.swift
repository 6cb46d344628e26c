import DINOP
import Foundation
import PromoEvaluation
import PromoEvents
import PromoWorld
import Testing

/// A small generated world, loaded as the evaluation loads it.
func smallWorld(items: Int, seed: UInt64 = 11, markets: [PromotionWorld.Market]? = nil) throws -> (training: LabelledItems, test: LabelledItems) {
    var options = PromotionWorld.Options()
    options.seed = seed
    options.itemsPerPromotion = items
    options.markets = markets
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("eval-world-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    _ = try PromotionWorld(options: options).write(to: folder, threads: 2)
    var rejected = 0
    let load = { (id: String) in
        try LabelledItems.load([folder.appendingPathComponent(id).path], decoder: EventDecoder()) { _ in rejected += 1 }
    }
    let result = (try load(options.promotions[0].id), try load(options.promotions[1].id))
    #expect(rejected == 0)
    return result
}

@Test("the LightGBM peer script trains on the flattened features and its predictions beat a constant")
func gradientBoostedTrees() throws {
    let (training, test) = try smallWorld(items: 1_500)
    var trees = GradientBoostedTrees(config: .default)
    trees.threads = 1
    var log: [String] = []
    let scores = try trees.scores(training: training, test: test) { log.append($0) }
    #expect(scores.gmv.count == test.count && scores.slot?.count == test.count)
    #expect(log.contains { $0.contains("gmv:") && $0.contains("best iteration") })
    let row = EvaluationRow(name: "gbdt", scores: scores, labels: test.labels, seconds: 0)
    let median = test.labels.map { $0.gmv! }.sorted()[test.count / 2]
    let constant = EvaluationRow(name: "median", scores: ItemScores(gmv: Array(repeating: median, count: test.count),
                                                                    bsp: nil, slot: nil, ja: nil),
                                 labels: test.labels, seconds: 0)
    #expect(row.gmvMAE < constant.gmvMAE)
    #expect(row.bspAUC > 0.8 && row.jaAUC > 0.6)
}

@Test("a missing peer script is an error, not a crash")
func missingScript() throws {
    let (training, test) = try smallWorld(items: 200)
    var trees = GradientBoostedTrees(config: .default)
    trees.script = "/nonexistent/gbdt_baseline.py"
    #expect(throws: (any Error).self) { try trees.scores(training: training, test: test) { _ in } }
}

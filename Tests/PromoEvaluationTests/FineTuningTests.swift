import DINOP
import Foundation
@testable import PromoEvaluation
import PromoFeatures
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

import DINOP
import Foundation
import PromoEvaluation
import PromoFeatures
import PromoWorld
import Testing

@Test("CATN's ablation: without competitive attention θ stays pinned at 1 (c = f, whatever the competitors) while the rest trains; without cooperative attention the file has no coop tensor",
      arguments: CompetitionVariant.allCases)
func competitionVariant(variant: CompetitionVariant) throws {
    let (first, _) = try smallWorld(items: 400, markets: PromotionWorld.fourMarkets)
    var base = ModelConfig.default.withDomainAttention(["cn", "sea", "eu", "latam"])
    base.domainAttention.specRows = 101
    base.hidden = 8
    base.attention = 4
    let config = variant.config(base)
    var model = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 1009, encoderWidth: 8, headHidden: 8), seed: 3)
    var options = TrainingOptions()
    options.maxEpochs = 2
    options.learningRate = 0.05
    variant.pin(&model, &options)
    let trained = try DINOPRun.train(model, first, pipeline: FeaturePipeline(config: config), options: options) { _ in }
    #expect(config.has(extension: ModelExtension.competition))
    #expect((trained.layout.spec("head.gmv.coop.weight") != nil) == (variant != .withoutCooperative))
    #expect(trained.parameters["comp.fc.weight"] != model.parameters["comp.fc.weight"], "comp.fc trains")
    let theta = try #require(trained.parameters["comp.theta"].first)
    if variant == .withoutCompetitive {
        #expect(theta == 30)
        // θ = 1: an item's prediction is the same whichever competitors it has (its neighbours still count).
        let pipeline = FeaturePipeline(config: config)
        let cn = first.records.filter { $0.profile?.ids["market"] == "cn" }
        let others = first.records.filter { $0.profile?.ids["market"] != "cn" }
        let withAll = pipeline.predictions(trained, for: cn + others)
        let withHalf = pipeline.predictions(trained, for: Array(cn.prefix(cn.count / 2)) + others)
        for k in 0..<(cn.count / 2) {
            #expect(abs((withAll[k].gmv ?? 0) - (withHalf[k].gmv ?? 1)) <= 1e-4 * max(1, abs(withAll[k].gmv ?? 0)))
        }
    } else {
        #expect(theta != 0 && theta != 30, "θ trains")
    }
}

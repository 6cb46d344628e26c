@testable import DINOP
import Foundation
import Testing

/// A small promotion with learnable structure: the day's sales and the day's buyer mix both move the
/// promotion-day GMV; best-seller and slot labels follow from the GMVs; joining depends on the activity.
func toyProblem(config: ModelConfig, items: Int, seed: UInt64) -> [TrainingExample] {
    var rng = SeededGenerator(seed: seed)
    var raw: [RawItem] = []
    var gmv: [Double] = []
    var industry: [String] = []
    var joined: [Bool] = []
    for i in 0..<items {
        var item = randomItem(config, days: 1 + Int(rng.next() % 10), rng: &rng)
        item.sii[1] = "industry-\(i % 3)"
        let popularity = rng.normal()
        var signal = 0.0
        for t in item.days.indices {
            item.days[t].dis[0] = Float(exp(4 + popularity + 0.3 * rng.normal()))
            if item.days[t].du != nil { signal += Double(item.days[t].du![0]) > 1 ? 0.3 : -0.1 }
        }
        raw.append(item)
        gmv.append(exp(5 + 1.5 * popularity + signal))
        industry.append("industry-\(i % 3)")
        joined.append(item.act![0].isNaN ? false : item.act![0] > 1.5)
    }
    let (bestSeller, slot) = PromotionLabels.compute(gmv: gmv, industry: industry)
    return raw.indices.map {
        TrainingExample(item: raw[$0], labels: ItemLabels(gmv: gmv[$0], bestSeller: bestSeller[$0], slot: slot[$0],
                                                         joinedActivity: joined[$0]))
    }
}

@Suite("Training")
struct TrainingTests {
    let config = smallConfig(hidden: 16, attention: 8)

    func train(seed: UInt64, epochs: Int) throws -> (before: LossBreakdown, after: LossBreakdown, model: DINOPModel) {
        let data = toyProblem(config: config, items: 600, seed: 5)
        let training = Array(data[..<480]), validation = Array(data[480...])
        var model = try DINOPModel.random(config: config, dims: smallDims(config, width: 8, headHidden: 16), seed: seed)
        var options = TrainingOptions()
        options.learningRate = 0.05
        options.batchSize = 32
        options.maxEpochs = epochs
        options.patience = epochs
        options.seed = seed
        Trainer.fitNormalisation(&model.parameters, to: training)
        let before = Trainer.evaluate(model.parameters, on: validation, options: options.loss)
        let trained = Trainer.train(model, training: training, validation: validation, options: options,
                                    fitNormalisation: false)
        return (before, Trainer.evaluate(trained.parameters, on: validation, options: options.loss), trained)
    }

    @Test("training lowers every task's validation loss")
    func lowersLoss() throws {
        let (before, after, _) = try train(seed: 9, epochs: 6)
        for head in Head.allCases {
            let b = try #require(before.perTask[head]), a = try #require(after.perTask[head])
            #expect(a < b * 0.95, "\(head): validation loss \(b) → \(a)")
        }
    }

    @Test("the same seed gives the same weights; another seed does not")
    func deterministic() throws {
        let first = try train(seed: 21, epochs: 2).model.parameters.values
        let second = try train(seed: 21, epochs: 2).model.parameters.values
        let other = try train(seed: 22, epochs: 2).model.parameters.values
        #expect(first == second)
        #expect(first != other)
    }

    @Test("an embedding table moves only in the rows that training items use, and those rows do move")
    func sparseEmbeddingUpdates() throws {
        var dims = smallDims(config, width: 8, headHidden: 16)
        dims.embeddingRows = [101, 101, 101, 101]  // more rows than the items use
        var start = try DINOPModel.random(config: config, dims: dims, seed: 3)
        let data = Array(toyProblem(config: config, items: 120, seed: 5))
        Trainer.fitNormalisation(&start.parameters, to: data)
        var options = TrainingOptions()
        options.maxEpochs = 1
        options.batchSize = 16
        let trained = Trainer.train(start, training: data, validation: data, options: options, fitNormalisation: false)
        let network = Network(start.parameters)
        let used = data.map { network.encode($0.item).rows }
        var unusedRows = 0
        for (f, field) in config.siiFields.enumerated() {
            let spec = try #require(start.layout.spec("sii.emb.\(field)"))
            let width = spec.shape[1], rows = Set(used.map { $0[f] })
            unusedRows += spec.shape[0] - rows.count
            for row in 0..<spec.shape[0] {
                let range = (spec.offset + row * width)..<(spec.offset + (row + 1) * width)
                let moved = start.parameters.values[range] != trained.parameters.values[range]
                #expect(moved == rows.contains(row), "\(field) row \(row): moved \(moved), used \(rows.contains(row))")
            }
        }
        #expect(unusedRows > 100)
    }

    @Test("weight averaging: β = 0 keeps each epoch's raw weights; β > 0 keeps another model, as good on validation")
    func weightAveraging() throws {
        let data = toyProblem(config: config, items: 600, seed: 5)
        let training = Array(data[..<480]), validation = Array(data[480...])
        func run(_ beta: Double?) throws -> (DINOPModel, Double) {
            var model = try DINOPModel.random(config: config, dims: smallDims(config, width: 8, headHidden: 16), seed: 4)
            Trainer.fitNormalisation(&model.parameters, to: training)
            var options = TrainingOptions()
            options.learningRate = 0.05
            options.batchSize = 32
            options.maxEpochs = 6
            options.patience = 6
            options.weightAverage = beta
            let trained = Trainer.train(model, training: training, validation: validation, options: options,
                                        fitNormalisation: false)
            return (trained, Trainer.evaluate(trained.parameters, on: validation, options: options.loss).total)
        }
        let (raw, rawLoss) = try run(nil), (zero, _) = try run(0), (averaged, averagedLoss) = try run(0.7)
        #expect(zero.parameters.values == raw.parameters.values)
        #expect(averaged.parameters.values != raw.parameters.values)
        #expect(averagedLoss < rawLoss * 1.1, "averaged \(averagedLoss) vs raw \(rawLoss)")
    }

    @Test("normalisation fits mean and std of the transformed values, ignoring missing ones")
    func normalisation() throws {
        let layout = try ParameterLayout(config: config, dims: smallDims(config))
        var parameters = Parameters<Float>.zeros(layout)
        var item = RawItem(sii: [nil, nil, nil, nil], sis: Array(repeating: .nan, count: 5),
                           su: Array(repeating: 0.5, count: 12), days: [], act: nil)
        item.sis[0] = Float(expm1(1.0))  // gmv_90d takes log1p → 1
        var other = item
        other.sis[0] = Float(expm1(3.0))  // → 3
        other.sis[2] = 7  // price, no log1p, one value only
        Trainer.fitNormalisation(&parameters, to: [TrainingExample(item: item, labels: ItemLabels()),
                                                   TrainingExample(item: other, labels: ItemLabels())])
        let mean = Array(parameters["sis.norm.mean"]), std = Array(parameters["sis.norm.std"])
        #expect(abs(mean[0] - 2) < 1e-5 && abs(std[0] - 1) < 1e-5)
        #expect(mean[2] == 7 && std[2] == 1)
        #expect(parameters["su.norm.std"].allSatisfy { $0 == 1 })  // constant feature: std 1, not 0
    }
}

@testable import DINOP
import Foundation
import Testing

@Suite("Backpropagation")
struct GradientTests {
    /// Central finite differences in float64 against the analytic gradient, for every trainable tensor.
    @Test("finite-difference check of every parameter group (also market-embedding's columns)",
          arguments: GMVLoss.allCases, [false, true])
    func finiteDifferences(gmvLoss: GMVLoss, markets: Bool) throws {
        let config = markets ? smallMarketConfig() : smallConfig()
        let layout = try ParameterLayout(config: config, dims: smallDims(config))
        let parameters = randomParameters(layout, seed: 11, scale: 1.5).converted(to: Double.self)
        var rng = SeededGenerator(seed: 12)
        var raw = [0, 1, 3, 6, 2, 6].map { randomItem(config, days: $0, rng: &rng, activity: $0 != 2) }
        // Four items of three listed markets (two share one), the others as drawn (mostly unlisted or none).
        if markets { for (i, id) in ["id-1", "id-2", "id-2", "id-5"].enumerated() { raw[i + 1].sii[0] = id } }
        let labels = raw.indices.map { i in
            ItemLabels(gmv: exp(2 + rng.normal()), bestSeller: i % 2 == 0, slot: 1 + i % 10, joinedActivity: i % 3 == 0)
        }
        var options = LossOptions()
        options.dropout = 0
        options.l2 = 1e-2
        options.taskWeights = [.gmv: 0.7, .bsp: 1.3, .ss: 1, .ja: 0.9]
        options.gmvLoss = gmvLoss

        func loss(_ p: Parameters<Double>) -> Double {
            let network = Network(p)
            var pass = BatchPass(network: network, items: raw.map { network.encode($0) }, labels: labels)
            var unused = SeededGenerator(seed: 0)
            pass.forward(dropout: 0, rng: &unused)
            return pass.loss(options: options).0.total
        }
        let network = Network(parameters)
        var pass = BatchPass(network: network, items: raw.map { network.encode($0) }, labels: labels)
        var unused = SeededGenerator(seed: 0)
        pass.forward(dropout: 0, rng: &unused)
        let (_, dOutputs) = pass.loss(options: options)
        var gradient = Parameters<Double>.zeros(layout)
        pass.backward(dOutputs: dOutputs, options: options, into: &gradient)

        let checked = expectGradientsMatch(layout, gradient, items: pass.items, perTensor: 6, seed: 13) { _, i in
            let eps = 1e-6
            var plus = parameters, minus = parameters
            plus.values[i] += eps
            minus.values[i] -= eps
            return (loss(plus) - loss(minus)) / (2 * eps)
        }
        #expect(checked > 100)
        // Normalisation statistics are fitted, never trained.
        for spec in layout.specs where !spec.trainable {
            #expect(gradient[spec.name].allSatisfy { $0 == 0 })
        }
    }
}

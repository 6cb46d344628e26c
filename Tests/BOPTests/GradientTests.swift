@testable import BOP
import DINOP
import Foundation
import Testing

@Suite("BOP backpropagation")
struct BOPGradientTests {
    /// Central finite differences in float64 against the analytic gradient, for every tensor of BOP.md's table.
    /// With dropout the masks come from the seed, so each evaluation of the loss drops the same units.
    /// Float passes run the attention in the C kernels (`dinop_attention`, `dinop_attention_backward`), float64
    /// passes in the Swift loops the finite differences check: the two gradients agree, with and without dropout.
    @Test("the float32 kernels' gradient equals the checked float64 one", arguments: [0.0, 0.3])
    func floatKernelsAgree(dropout: Double) throws {
        let config = BOPConfig(width: 16, layers: 2, heads: 4, ffn: 12, maxHistory: 12, itemRows: 31)
        let model = try BOPModel.random(config: config, markets: ["de", "jp"], seed: 9)
        var rng = SeededGenerator(seed: 4)
        let sequences = (0..<24).map { s in
            BOPSequence(history: (0..<(s % 11)).map { _ in Int(rng.next() % 31) }, candidate: Int(rng.next() % 31),
                        market: s % 3 == 2 ? nil : s % 2)
        }
        let labels = sequences.indices.map { $0 % 3 == 0 }
        var single = [Float](repeating: 0, count: model.values.count)
        var double = [Double](repeating: 0, count: model.values.count)
        let lossFloat = BOPNetwork<Float>(model).loss(sequences, labels: labels, gradient: &single, dropout: dropout, seed: 3)
        let lossDouble = BOPNetwork<Double>(model, values: model.values.map(Double.init))
            .loss(sequences, labels: labels, gradient: &double, dropout: dropout, seed: 3)
        #expect(abs(lossFloat - lossDouble) < 1e-5)
        let scale = double.map(abs).max() ?? 1
        #expect(scale > 0)
        var worst = 0.0
        for i in double.indices { worst = max(worst, abs(Double(single[i]) - double[i]) / scale) }
        #expect(worst < 1e-4, "largest difference \(worst) of the largest gradient entry \(scale)")
    }

    @Test("finite-difference check of every BOP tensor (without dropout; with PyTorch's four dropout sites)",
          arguments: [0.0, 0.3])
    func finiteDifferences(dropout: Double) throws {
        let config = BOPConfig(width: 8, layers: 2, heads: 2, ffn: 6, maxHistory: 6, itemRows: 13)
        var model = try BOPModel(config: config, markets: ["de", "jp", "in"], repWidth: 3)
        var rng = SeededGenerator(seed: 5)
        for spec in model.layout.specs {
            let isNorm = spec.name.hasSuffix("norm1.weight") || spec.name.hasSuffix("norm2.weight")
            for i in spec.range { model.values[i] = Float(isNorm ? 1 + 0.2 * rng.normal() : 0.4 * rng.normal()) }
        }
        let sequences = [
            BOPSequence(history: [], candidate: 3, market: 0),
            BOPSequence(history: [1, 2, 2], candidate: 5, market: 1, rep: [0.5, -1, 2]),
            BOPSequence(history: [7, 8, 9, 10, 11], candidate: 12, market: nil),
            BOPSequence(history: [4], candidate: 6, market: 2),
            BOPSequence(history: [1, 9, 4], candidate: 0, market: 0, rep: [1, 0.25, -0.5]),
        ]
        let labels = [true, false, true, false, true]
        let values = model.values.map(Double.init)
        func loss(_ v: [Double]) -> Double {
            var unused = [Double](repeating: 0, count: v.count)
            return BOPNetwork<Double>(model, values: v).loss(sequences, labels: labels, gradient: &unused, dropout: dropout, seed: 7)
        }
        var gradient = [Double](repeating: 0, count: values.count)
        _ = BOPNetwork<Double>(model, values: values).loss(sequences, labels: labels, gradient: &gradient, dropout: dropout, seed: 7)
        if dropout > 0 {
            // The masks matter: another seed gives another loss.
            var unused = [Double](repeating: 0, count: values.count)
            let other = BOPNetwork<Double>(model, values: values).loss(sequences, labels: labels, gradient: &unused, dropout: dropout, seed: 8)
            #expect(other != loss(values))
        }

        var pick = SeededGenerator(seed: 6)
        var checked = 0
        for spec in model.layout.specs {
            var candidates = Array(spec.range)
            if spec.name == "bop.item.emb" {
                let used = Set(sequences.flatMap { $0.history + [$0.candidate] })
                candidates = candidates.filter { used.contains(($0 - spec.offset) / config.width) }
            }
            var sawNonZero = false
            for _ in 0..<min(5, candidates.count) {
                let i = candidates[Int(pick.next() % UInt64(candidates.count))]
                let eps = 1e-6
                var plus = values, minus = values
                plus[i] += eps
                minus[i] -= eps
                let numeric = (loss(plus) - loss(minus)) / (2 * eps)
                #expect(abs(gradient[i] - numeric) <= 1e-5 * max(abs(numeric), abs(gradient[i])) + 1e-8,
                        "\(spec.name)[\(i - spec.offset)]: analytic \(gradient[i]), numeric \(numeric)")
                sawNonZero = sawNonZero || abs(numeric) > 1e-7
                checked += 1
            }
            #expect(sawNonZero, "\(spec.name): every sampled gradient is zero, the check proves nothing")
        }
        #expect(checked > 100)
    }
}

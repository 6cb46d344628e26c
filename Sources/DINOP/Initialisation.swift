/// A small, fast, seedable generator (SplitMix64), so that a seed gives the same model and training run
/// on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal draw (Box–Muller).
    public mutating func normal() -> Double {
        let u = Swift.max(unit(), 1e-300), v = unit()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * .pi * v)
    }
}

import Foundation

extension DINOPModel {
    /// A freshly initialised model: Glorot-uniform weight matrices, zero biases, embeddings N(0, 0.1²),
    /// identity normalisation (mean 0, std 1) until it is fitted to data.
    public static func random(config: ModelConfig, dims: ModelDimensions, seed: UInt64) throws -> DINOPModel {
        let layout = try ParameterLayout(config: config, dims: dims)
        var rng = SeededGenerator(seed: seed)
        var values = [Float](repeating: 0, count: layout.count)
        for spec in layout.specs {
            if spec.name.hasPrefix("sii.emb.") || spec.name.hasPrefix("sii.spec.") {
                for i in spec.range { values[i] = Float(0.1 * rng.normal()) }
            } else if spec.name.hasPrefix("mkt.") || spec.name.hasSuffix(".spec.weight") || spec.trainingOnly
                || spec.name.hasSuffix(".bias") || spec.name.hasSuffix(".comp.weight") || spec.name.hasSuffix(".coop.weight")
                || spec.name == "comp.theta" {
                // Market terms (and the heads' weights on `o`) start at zero: the pre-trained model begins as the
                // pooled one, and each market's parts move only as far as its items pull them. Discriminators
                // start uniform. The heads' weights on c and q start at zero too (each item predicted alone at
                // first), θ at σ(0) = ½.
                continue
            } else if spec.name.hasSuffix(".norm.std") {
                for i in spec.range { values[i] = 1 }
            } else if spec.shape.count >= 2 {
                // Glorot over each matrix (a market-indexed tensor is n_M matrices).
                let (rows, columns) = (spec.shape[spec.shape.count - 2], spec.shape[spec.shape.count - 1])
                let limit = (6.0 / Double(rows + columns)).squareRoot()
                for i in spec.range { values[i] = Float((2 * rng.unit() - 1) * limit) }
            } else if spec.name == "att.v" {
                let limit = (3.0 / Double(spec.count)).squareRoot()
                for i in spec.range { values[i] = Float((2 * rng.unit() - 1) * limit) }
            }
        }
        return DINOPModel(parameters: Parameters(layout: layout, values: values), version: 1, parent: nil)
    }
}

import DINOP

extension BOPModel {
    /// A fresh model, initialised as PyTorch initialises these modules: embeddings N(0, 1) scaled by 1/√d (so a
    /// token starts near unit length), `in_proj_weight` Glorot-uniform, other linear layers uniform in ±1/√fan_in
    /// (weights and biases), attention biases 0, LayerNorm weight 1 and bias 0. A SplitMix64 seed.
    public static func random(config: BOPConfig, markets: [String], repWidth: Int? = nil, seed: UInt64) throws -> BOPModel {
        var model = try BOPModel(config: config, markets: markets, repWidth: repWidth)
        var rng = SeededGenerator(seed: seed)
        let d = Double(config.width)
        for spec in model.layout.specs {
            let name = spec.name
            func uniform(_ limit: Double) { for i in spec.range { model.values[i] = Float((2 * rng.unit() - 1) * limit) } }
            if name == "bop.item.emb" || name == "bop.mkt.emb" {
                for i in spec.range { model.values[i] = Float(rng.normal() / d.squareRoot()) }
            } else if name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") {
                for i in spec.range { model.values[i] = 1 }
            } else if name.hasSuffix("in_proj_weight") {
                uniform((6 / Double(spec.shape[0] + spec.shape[1])).squareRoot())
            } else if name.hasSuffix("in_proj_bias") || name.hasSuffix("out_proj.bias") || name.contains(".norm") {
                continue
            } else if name.hasSuffix(".bias") {
                // nn.Linear: the bias's bound is 1/√fan_in of its weight.
                let weight = model.layout.spec(String(name.dropLast(4)) + "weight")
                uniform(1 / Double(Swift.max(weight?.shape.last ?? 1, 1)).squareRoot())
            } else if spec.shape.count == 2 {
                uniform(1 / Double(Swift.max(spec.shape[1], 1)).squareRoot())
            }
        }
        return model
    }
}

import DINOP
import Foundation
import Testing

/// Small model sizes for tests that run the math in Double or many times.
func smallConfig(hidden: Int = 6, attention: Int = 4, heads: [Head] = Head.allCases) -> ModelConfig {
    var config = ModelConfig.default
    config.hidden = hidden
    config.attention = attention
    config.heads = heads.map(\.rawValue)
    return config
}

/// `smallConfig` with MARKETS.md's `market-embedding` over eight markets: of `randomItem`'s market ids ("id-0" …
/// "id-19", or none) about 40% are listed, the others take the shared parts alone.
func smallMarketConfig(hidden: Int = 6, attention: Int = 4) -> ModelConfig {
    var config = smallConfig(hidden: hidden, attention: attention)
    config.extensions = [ModelExtension.marketEmbedding]
    config.markets = (0..<8).map { "id-\($0)" }
    return config
}

func smallDims(_ config: ModelConfig, width: Int = 5, headHidden: Int = 4) -> ModelDimensions {
    ModelDimensions(
        embeddingRows: [7, 5, 11, 3], embeddingWidths: [3, 2, 3, 2], siiWidth: width, sisWidth: width,
        actWidth: width, headHidden: Dictionary(uniqueKeysWithValues: config.headSet.map { ($0, headHidden) }))
}

/// A model whose every parameter is drawn N(0, scale² / fan-in), norm stds positive, so no path is trivially zero.
func randomParameters(_ layout: ParameterLayout, seed: UInt64, scale: Double = 1) -> Parameters<Float> {
    var rng = SeededGenerator(seed: seed)
    var values = [Float](repeating: 0, count: layout.count)
    for spec in layout.specs {
        let fanIn = spec.shape.count == 2 && !spec.name.hasPrefix("sii.emb.") ? Double(spec.shape[1]) : 1
        for i in spec.range {
            values[i] = spec.name.hasSuffix("norm.std") ? Float(0.5 + rng.unit())
                : Float(scale * rng.normal() / fanIn.squareRoot())
        }
    }
    return Parameters(layout: layout, values: values)
}

/// A random raw item with `days` pre-sale days; some values and buyer profiles are missing.
func randomItem(_ config: ModelConfig, days: Int, rng: inout SeededGenerator, activity: Bool = true) -> RawItem {
    func values(_ group: FeatureGroup) -> [Float] {
        config.names(group).map { _ in rng.unit() < 0.1 ? .nan : Float(exp(2 * rng.normal())) }
    }
    let ids: [String?] = config.siiFields.map { _ in rng.unit() < 0.1 ? nil : "id-\(rng.next() % 20)" }
    return RawItem(
        sii: ids, sis: values(.sis), su: values(.su),
        days: (0..<days).map { _ in RawDay(dis: values(.dis), du: rng.unit() < 0.2 ? nil : values(.du)) },
        act: activity ? values(.act) : nil)
}

func relativeClose(_ a: Double, _ b: Double, rtol: Double, atol: Double = 0) -> Bool {
    abs(a - b) <= rtol * max(abs(a), abs(b)) + atol
}

/// `smallMarketConfig` with MARKETS.md's `domain-attention` too, in small sizes (V' = 5, d' = 2, gates [3, 2],
/// D_m = 4); `domainDims` gives every embedding the one width it needs.
func smallDomainConfig(hidden: Int = 6, attention: Int = 4, marketEmbedding: Bool = true) -> ModelConfig {
    var config = smallMarketConfig(hidden: hidden, attention: attention)
    config.extensions = (marketEmbedding ? [ModelExtension.marketEmbedding] : []) + [ModelExtension.domainAttention]
    config.domainAttention.specRows = 5
    config.domainAttention.specWidth = 2
    config.domainAttention.gate = [3, 2]
    config.domainAttention.width = 4
    return config
}

func domainDims(_ config: ModelConfig, width: Int = 5, headHidden: Int = 4) -> ModelDimensions {
    var dims = smallDims(config, width: width, headHidden: headHidden)
    dims.embeddingWidths = Array(repeating: 3, count: config.siiFields.count)
    return dims
}

/// The entries of `spec` a batch of `items` can move: the embedding rows they use, and of a market-indexed tensor
/// the markets they belong to; every entry of any other tensor.
func reachableEntries(_ spec: TensorSpec, _ layout: ParameterLayout, _ items: [EncodedItem<Double>]) -> [Int] {
    let config = layout.config
    var candidates = Array(spec.range)
    let markets = Set(items.compactMap(\.market)), nM = config.markets.count
    if spec.name.hasPrefix("sii.emb.") || spec.name.hasPrefix("sii.spec.") {
        guard let f = config.siiFields.firstIndex(of: String(spec.name.split(separator: ".").last ?? "")) else { return [] }
        let used = Set(items.flatMap { item in
            spec.name.hasPrefix("sii.emb.") ? [item.rows[f]] : item.specRows.isEmpty ? [] : [item.specRows[f]]
        })
        candidates = candidates.filter { used.contains(($0 - spec.offset) / spec.shape[1]) }
    } else if spec.name.hasPrefix("mkt.") {
        candidates = candidates.filter { markets.contains(($0 - spec.offset) % spec.shape[1]) }
    } else if spec.shape.first == nM, spec.name.hasPrefix("gate.m.") || spec.name.hasPrefix("spec.fc.")
                || spec.name.hasSuffix(".spec.weight") {
        candidates = candidates.filter { markets.contains(($0 - spec.offset) / (spec.count / nM)) }
    }
    return candidates
}

/// Samples up to `perTensor` reachable entries of every tensor `include` picks, expects `analytic` to agree with
/// `numeric(spec, entry)` (1e-5 relative, 1e-8 absolute) and some sampled gradient of each tensor to be non-zero
/// (else the check proves nothing); returns how many entries it checked.
func expectGradientsMatch(_ layout: ParameterLayout, _ analytic: Parameters<Double>, items: [EncodedItem<Double>],
                          perTensor: Int, seed: UInt64, label: String = "", include: (TensorSpec) -> Bool = { $0.trainable },
                          numeric: (TensorSpec, Int) -> Double) -> Int {
    var pick = SeededGenerator(seed: seed)
    var checked = 0
    for spec in layout.specs where include(spec) {
        let candidates = reachableEntries(spec, layout, items)
        var sawNonZero = false
        for _ in 0..<min(perTensor, candidates.count) {
            let i = candidates[Int(pick.next() % UInt64(candidates.count))]
            let estimate = numeric(spec, i), exact = analytic.values[i]
            #expect(relativeClose(exact, estimate, rtol: 1e-5, atol: 1e-8),
                    "\(label)\(spec.name)[\(i - spec.offset)]: analytic \(exact), numeric \(estimate)")
            sawNonZero = sawNonZero || abs(estimate) > 1e-7
            checked += 1
        }
        #expect(sawNonZero, "\(label)\(spec.name): every sampled gradient is zero, the check proves nothing")
    }
    return checked
}

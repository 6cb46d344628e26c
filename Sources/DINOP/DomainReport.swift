/// What MARKETS.md's `domain-attention` makes of one item: both units' gates, `rep`, `o` and what each
/// discriminator reads from them.
public struct DomainView: Sendable, Equatable {
    /// The item's market (`m`), nil for none.
    public var market: Int?
    /// `a_f` per field, in `sii_fields` order.
    public var sharedGates: [Float]
    /// `a_f^m` per field; nil without a listed market.
    public var marketGates: [Float]?
    public var rep: [Float]
    /// `o`, zeros without a listed market.
    public var o: [Float]
    /// `softmax(dom.c · rep)` and `softmax(dom.m · o)` over the markets.
    public var repProbabilities: [Float], oProbabilities: [Float]
}

/// MARKETS.md's checks of a `domain-attention` model over a set of items: the feature importance per market and
/// how well the discriminators tell the markets apart, from `rep` (against chance) and from `o`.
public struct DomainSummary: Sendable, Equatable {
    /// Per market with items, the mean `a_f^m` per field (`sii_fields` order).
    public var importance: [String: [Double]]
    /// The domain terms over the items with a listed market; `discriminatorCorrect` of `items`.
    public var losses: DomainLosses
    /// Share of those items that `dom.m` names right from `o`.
    public var specAccuracy: Double
    /// The largest market's share of those items: what a discriminator that always names it scores.
    public var chance: Double

    public var discriminatorAccuracy: Double { losses.items > 0 ? Double(losses.discriminatorCorrect) / Double(losses.items) : 0 }

    public init(views: [DomainView], markets: [String]) {
        var sums = [[Double]](repeating: [], count: markets.count), counts = [Int](repeating: 0, count: markets.count)
        var losses = DomainLosses(), specCorrect = 0
        for view in views {
            guard let m = view.market, let gates = view.marketGates else { continue }
            sums[m] = sums[m].isEmpty ? gates.map(Double.init) : zip(sums[m], gates).map { $0 + Double($1) }
            counts[m] += 1
            losses.items += 1
            losses.discriminator -= Double(Float.log(Swift.max(view.repProbabilities[m], .leastNormalMagnitude)))
            losses.entropy += view.repProbabilities.reduce(0.0) { $0 + ($1 > 0 ? Double($1 * Float.log($1)) : 0) }
            losses.spec -= Double(Float.log(Swift.max(view.oProbabilities[m], .leastNormalMagnitude)))
            if view.repProbabilities.argmax == m { losses.discriminatorCorrect += 1 }
            if view.oProbabilities.argmax == m { specCorrect += 1 }
        }
        let n = Double(Swift.max(losses.items, 1))
        losses.discriminator /= n
        losses.entropy /= n
        losses.spec /= n
        self.losses = losses
        specAccuracy = Double(specCorrect) / n
        chance = Double(counts.max() ?? 0) / n
        importance = [:]
        for (m, id) in markets.enumerated() where counts[m] > 0 {
            importance[id] = sums[m].map { $0 / Double(counts[m]) }
        }
    }
}

extension Array where Element == Float {
    /// Index of the largest element (the first of ties).
    var argmax: Int? { indices.max { self[$0] < self[$1] || (self[$0] == self[$1] && $0 > $1) } }
}

extension DINOPModel {
    /// Each item's `domain-attention` view (empty for a model without the extension), computed as training does.
    public func domainViews(_ items: [RawItem], batchSize: Int = 512) -> [DomainView] {
        guard let da = layout.domainAttention, da.markets > 0 else { return [] }
        let network = Network(parameters), size = Swift.max(batchSize, 1)
        var views: [DomainView] = []
        views.reserveCapacity(items.count)
        var unused = SeededGenerator(seed: 0)
        for start in stride(from: 0, to: items.count, by: size) {
            let chunk = items[start..<Swift.min(start + size, items.count)]
            var pass = BatchPass(network: network, items: chunk.map { network.encode($0) },
                                 labels: chunk.map { _ in ItemLabels() })
            pass.forward(dropout: 0, rng: &unused)
            guard let domain = pass.domain else { continue }  // (there is one: the model has the extension)
            let r = network.representationWidth, nf = da.fields
            var chunkViews = [DomainView?](repeating: nil, count: chunk.count)
            var marketGates = [[Float]?](repeating: nil, count: chunk.count)
            for (group, (_, members)) in domain.groups.enumerated() {
                for (g, p) in members.enumerated() { marketGates[p] = Array(domain.market[group].gate[(g * nf)..<((g + 1) * nf)]) }
            }
            for (p, index) in pass.order.enumerated() {
                let rep = Array(pass.cleanRep[(p * r)..<((p + 1) * r)])
                let o = domain.o.isEmpty ? [Float](repeating: 0, count: da.width) : Array(domain.o[(p * da.width)..<((p + 1) * da.width)])
                chunkViews[index] = DomainView(
                    market: pass.items[index].market, sharedGates: Array(domain.shared.gate[(p * nf)..<((p + 1) * nf)]),
                    marketGates: marketGates[p], rep: rep, o: o,
                    repProbabilities: network.discriminate("dom.c", rep[...]),
                    oProbabilities: network.discriminate("dom.m", o[...]))
            }
            views += chunkViews.map { $0! }
        }
        return views
    }
}

extension Network {
    /// `softmax(<prefix>.weight · x + <prefix>.bias)` over the markets: a domain discriminator's probabilities.
    func discriminate(_ prefix: String, _ x: ArraySlice<T>) -> [T] {
        let w = layout.require("\(prefix).weight"), bias = layout.require("\(prefix).bias")
        let values = parameters.values, width = x.count
        let logits = (0..<bias.count).map { d in
            var z = values[bias.offset + d]
            for (j, v) in x.enumerated() { z += values[w.offset + d * width + j] * v }
            return z
        }
        let top = logits.max() ?? 0
        let exps = logits.map { T.exp($0 - top) }
        let total = exps.reduce(0, +)
        return exps.map { $0 / total }
    }
}

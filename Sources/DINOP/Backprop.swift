/// Task weights, regularisation and dropout of the multi-task loss.
public struct LossOptions: Sendable, Equatable {
    /// Weight of each task in the total loss.
    public var taskWeights: [Head: Double] = [.gmv: 1, .bsp: 1, .ss: 1, .ja: 1]
    /// L2 penalty `λ/2 · Σ‖W‖²` over weight matrices (not biases, embeddings or norms).
    public var l2: Double = 1e-5
    /// Inverted dropout on `rep` before the heads; 0 turns it off.
    public var dropout: Double = 0.1
    /// The GMV head's loss on log1p(GMV).
    public var gmvLoss = GMVLoss.squared
    /// MARKETS.md's domain terms (models with `domain-attention` only).
    public var domain = DomainLossOptions()

    public init() {}
}

/// MARKETS.md's domain losses: the adversarial term on `rep` and the discrimination term on `o`.
public struct DomainLossOptions: Sendable, Equatable {
    public var adversarial = AdversarialTerm.none
    /// `λ_adv`: the entropy term's weight, or the top of the reversal schedule.
    public var adversarialWeight = 0.1
    /// `λ_spec`: the weight of `dom.m`'s cross-entropy on `o`.
    public var specWeight = 0.1
    /// The run's progress `p = s / S` at this step (set by the trainer), for the reversal schedule.
    public var progress = 1.0

    public init() {}

    /// The reversal layer's `λ = λ_adv · (2 / (1 + exp(−10 p)) − 1)` (the DANN schedule).
    public var reversalScale: Double { adversarialWeight * (2 / (1 + Foundation.exp(-10 * progress)) - 1) }
}

/// Which adversarial term keeps `rep` market-invariant (MARKETS.md `domain-attention`).
public enum AdversarialTerm: String, Sendable, Equatable, CaseIterable {
    /// None: `dom.c` still learns to tell markets from `rep`, which measures how invariant `rep` is.
    case none
    /// CNAN-AT: `rep` maximises the fixed discriminator's entropy.
    case entropy
    /// CATN / DANN: the discriminator's gradient reaches `rep` reversed, scaled by the schedule's λ.
    case reversal
}

/// MARKETS.md's domain terms over a batch's items with a listed market (each 0 when there are none): unweighted.
public struct DomainLosses: Sendable, Equatable {
    /// `dom.c`'s cross-entropy on `rep`, and how many of the items it names right.
    public var discriminator = 0.0, discriminatorCorrect = 0
    /// `(1/n) Σ_i Σ_d p(d|rep_i) log p(d|rep_i)` (minus the discriminator's entropy).
    public var entropy = 0.0
    /// `dom.m`'s cross-entropy on `o`.
    public var spec = 0.0
    /// Items with a listed market.
    public var items = 0
}

/// The GMV head's training loss on `log1p(GMV)`: MODEL.md's squared error (its minimiser is the conditional mean of
/// log GMV), or the absolute error, whose minimiser is the conditional median of log GMV and therefore of GMV itself
/// (a median survives monotone maps) — the prediction that minimises the GMV MAE the forecasts are judged by.
public enum GMVLoss: String, Sendable, Equatable, CaseIterable {
    case squared, absolute
}

/// Mean loss of each task over the labelled examples, and the weighted total with the L2 term.
public struct LossBreakdown: Sendable, Equatable {
    public var perTask: [Head: Double] = [:]
    public var labelled: [Head: Int] = [:]
    public var total: Double = 0
    /// MARKETS.md's domain terms (training batches of a `domain-attention` model), outside `total`.
    public var domain: DomainLosses?
}

/// Forward and backward pass of the whole network over a minibatch of items (backpropagation through time).
///
/// Items are sorted by their number of days, longest first, so that the items still running on day t are a
/// prefix of the batch and each day is one set of GEMMs over that prefix.
struct BatchPass<T: DINOPScalar> {
    let network: Network<T>
    let items: [EncodedItem<T>]
    let labels: [ItemLabels]
    let order: [Int]
    let lengths: [Int]
    /// First cache row of each day's block; `offsets[t] ..< offsets[t] + active[t]`.
    var offsets: [Int] = [], active: [Int] = []
    var x: [T] = [], z: [T] = [], r: [T] = [], n: [T] = [], h: [T] = [], e: [T] = [], score: [T] = []
    var attentionWeights: [T] = [], pooled: [T] = []
    var embeddingIn: [T] = [], sii: [T] = [], sisIn: [T] = [], sis: [T] = [], actIn: [T] = [], act: [T] = []
    var rep: [T] = [], dropMask: [T] = [], headHidden: [T] = [], outputs: [T] = []
    /// `rep` before dropout, which the domain discriminator reads.
    var cleanRep: [T] = []
    /// MARKETS.md `domain-attention`'s parts, nil without it.
    var domain: DomainPass<T>?
    /// Where each item competes (MARKETS.md `competition`), in `items` order; nil puts every item in one group.
    let keys: [CompetitionKey]?
    /// MARKETS.md `competition`'s parts, nil without it.
    var competition: CompetitionPass<T>?

    init(network: Network<T>, items: [EncodedItem<T>], labels: [ItemLabels], keys: [CompetitionKey]? = nil) {
        self.network = network
        self.items = items
        self.labels = labels
        self.keys = keys
        order = items.indices.sorted { items[$0].dayCount > items[$1].dayCount }
        lengths = order.map { items[$0].dayCount }
    }

    var batchSize: Int { items.count }

    // MARK: Forward

    mutating func forward(dropout: Double, rng: inout SeededGenerator) {
        let net = network, b = batchSize, hd = net.hidden, a = net.attention, k = net.inputWidth
        let dims = net.layout.dims
        let maxDays = lengths.first ?? 0
        var rows = 0
        for t in 0..<maxDays {
            offsets.append(rows)
            let count = lengths.prefix { $0 > t }.count
            active.append(count)
            rows += count
        }
        x = Array(repeating: 0, count: rows * k)
        for t in 0..<maxDays {
            for p in 0..<active[t] {
                let item = items[order[p]]
                x.replaceSubrange(((offsets[t] + p) * k)..<((offsets[t] + p + 1) * k),
                                  with: item.dayInputs[(t * k)..<((t + 1) * k)])
            }
        }
        // Each item's market, in batch order (row p of every day's block is item order[p]).
        let markets = order.map { Int32(items[$0].market ?? -1) }
        z = Array(repeating: 0, count: rows * hd); r = z; n = z; h = z
        e = Array(repeating: 0, count: rows * a)
        score = Array(repeating: 0, count: rows)
        var workspace = StepWorkspace<T>(capacity: Swift.max(active.first ?? 0, 1), hidden: hd, attention: a)
        let zeros = [T](repeating: 0, count: b * hd)
        for t in 0..<maxDays {
            let o = offsets[t]
            zeros.withUnsafeBufferPointer { zeros in
            x.withUnsafeBufferPointer { x in z.withUnsafeMutableBufferPointer { z in r.withUnsafeMutableBufferPointer { r in
            n.withUnsafeMutableBufferPointer { n in h.withUnsafeMutableBufferPointer { h in
            e.withUnsafeMutableBufferPointer { e in score.withUnsafeMutableBufferPointer { s in
                let out = StepOutputs(z: z.baseAddress! + o * hd, r: r.baseAddress! + o * hd, n: n.baseAddress! + o * hd,
                                      h: h.baseAddress! + o * hd, e: e.baseAddress! + o * a, score: s.baseAddress! + o)
                let hPrev = t == 0 ? zeros.baseAddress! : UnsafePointer(h.baseAddress! + offsets[t - 1] * hd)
                markets.withUnsafeBufferPointer { markets in
                    net.step(rows: active[t], x: x.baseAddress! + o * k, hPrev: hPrev,
                             markets: net.marketBias.isEmpty ? nil : markets.baseAddress!, out: out, workspace: &workspace)
                }
            }}}}}}}}
        }

        // Attention pooling, batch form: softmax of each item's scores over its days.
        attentionWeights = Array(repeating: 0, count: rows)
        pooled = Array(repeating: 0, count: b * hd)
        for p in 0..<b where lengths[p] > 0 {
            var m = -T.infinity
            for t in 0..<lengths[p] { m = Swift.max(m, score[offsets[t] + p]) }
            var total: T = 0
            for t in 0..<lengths[p] {
                let w = T.exp(score[offsets[t] + p] - m)
                attentionWeights[offsets[t] + p] = w
                total += w
            }
            for t in 0..<lengths[p] {
                let row = offsets[t] + p
                attentionWeights[row] /= total
                for j in 0..<hd { pooled[p * hd + j] += attentionWeights[row] * h[row * hd + j] }
            }
        }

        // Static encoders.
        let embWidth = dims.embeddingWidths.reduce(0, +)
        embeddingIn = Array(repeating: 0, count: b * embWidth)
        if let da = net.layout.domainAttention {
            let pass = DomainPass(network: net, dims: da, rows: order.map { items[$0].rows },
                                  specRows: order.map { items[$0].specRows }, markets: order.map { items[$0].market })
            embeddingIn = pass.gatedEmbedding
            domain = pass
        } else {
            net.gatherEmbeddings(order.map { items[$0].rows }, into: &embeddingIn)
        }
        sii = Array(repeating: 0, count: b * dims.siiWidth)
        net.dense("sii.fc", rows: b, x: embeddingIn, ldx: embWidth, relu: true, out: &sii)
        sisIn = order.flatMap { items[$0].sis }
        sis = Array(repeating: 0, count: b * dims.sisWidth)
        net.dense("sis.fc", rows: b, x: sisIn, ldx: net.layout.config.count(.sis), relu: true, out: &sis)
        act = Array(repeating: 0, count: b * dims.actWidth)
        if net.layout.config.has(.ja) {
            let nAct = net.layout.config.count(.act)
            actIn = order.flatMap { items[$0].act ?? Array(repeating: 0, count: nAct) }
            net.dense("act.fc", rows: b, x: actIn, ldx: nAct, relu: true, out: &act)
        }

        // Representation, dropout, heads.
        let width = net.representationWidth
        rep = Array(repeating: 0, count: b * width)
        net.assembleRepresentation(rows: b, pooled: pooled, sii: sii, sis: sis, into: &rep)
        if domain != nil || net.competition != nil { cleanRep = rep }
        // Competition reads every item's rep without dropout (what serving reads), and o.
        var headTerm = domain?.headTerm ?? []
        if let weights = net.competition {
            let o = domain?.oOfEveryItem ?? []
            let batchKeys = order.map { keys?[$0] ?? .unkeyed }
            let pass = CompetitionPass(network: net, weights: weights, rep: cleanRep, o: o, keys: batchKeys,
                                       seen: lengths.map { $0 > 0 })
            let term = pass.headTerm(weights, headHiddenWidth: net.headHiddenWidth)
            if headTerm.isEmpty { headTerm = term } else { for j in headTerm.indices { headTerm[j] += term[j] } }
            competition = pass
        }
        dropMask = Array(repeating: 1, count: b * width)
        if dropout > 0 {
            let keep = T(1 / (1 - dropout))
            for j in dropMask.indices { dropMask[j] = rng.unit() < dropout ? 0 : keep }
            for j in rep.indices { rep[j] *= dropMask[j] }
        }
        headHidden = Array(repeating: 0, count: b * net.headHiddenWidth)
        outputs = Array(repeating: 0, count: b * net.outputWidth)
        headTerm.withUnsafeBufferPointer { term in
            net.heads(rows: b, rep: rep, activity: act, hiddenTerm: term.isEmpty ? nil : term.baseAddress!,
                      hiddenOut: &headHidden, out: &outputs)
        }
    }

    /// MARKETS.md's domain terms on this batch (forward done): their values; the discriminators' gradients into
    /// `gradient`; the gradients that reach `rep` (before dropout) and `o`, for `backward`.
    func domainTerms(options: DomainLossOptions, into gradient: inout Parameters<T>) -> (DomainLosses, dRep: [T], dO: [T]) {
        guard let domain, let da = network.layout.domainAttention else { return (DomainLosses(), [], []) }
        let layout = network.layout, values = network.parameters.values
        let b = batchSize, r = network.representationWidth, dm = da.width, nM = da.markets
        var losses = DomainLosses()
        let labelled = (0..<b).compactMap { p in items[order[p]].market.map { (p, $0) } }
        losses.items = labelled.count
        guard !labelled.isEmpty else { return (losses, [], []) }
        var dRep = [T](repeating: 0, count: b * r), dO = [T](repeating: 0, count: b * dm)
        let n = T(labelled.count)
        let (cw, cb) = (layout.require("dom.c.weight"), layout.require("dom.c.bias"))
        let (mw, mb) = (layout.require("dom.m.weight"), layout.require("dom.m.bias"))
        let reversal = T(options.reversalScale), adversarialWeight = T(options.adversarialWeight)
        let specWeight = T(options.specWeight)
        for (p, m) in labelled {
            let x = cleanRep[(p * r)..<((p + 1) * r)]
            let probs = network.discriminate("dom.c", x)
            losses.discriminator -= Double(T.log(Swift.max(probs[m], T.leastNormalMagnitude))) / Double(n)
            if probs.indices.max(by: { probs[$0] < probs[$1] }) == m { losses.discriminatorCorrect += 1 }
            let plogp = probs.map { $0 > 0 ? $0 * T.log($0) : 0 }
            let negativeEntropy = plogp.reduce(0, +)
            losses.entropy += Double(negativeEntropy) / Double(n)
            // d CE / d logits = (p − onehot) / n: the discriminator's own step, on a fixed rep.
            var dLogits = probs.map { $0 / n }
            dLogits[m] -= 1 / n
            // What reaches rep: the reversed CE gradient, or the entropy term's (through a fixed discriminator).
            var dRepLogits = [T](repeating: 0, count: nM)
            switch options.adversarial {
            case .none: break
            case .reversal: dRepLogits = dLogits.map { -reversal * $0 }
            case .entropy: dRepLogits = (0..<nM).map { adversarialWeight * probs[$0] * ((probs[$0] > 0 ? T.log(probs[$0]) : 0) - negativeEntropy) / n }
            }
            for d in 0..<nM {
                gradient.values[cb.offset + d] += dLogits[d]
                for (j, v) in x.enumerated() {
                    gradient.values[cw.offset + d * r + j] += dLogits[d] * v
                    dRep[p * r + j] += dRepLogits[d] * values[cw.offset + d * r + j]
                }
            }
            // dom.m on o: λ_spec · its cross-entropy, for dom.m and what lies below o.
            let o = domain.o[(p * dm)..<((p + 1) * dm)]
            let specProbs = network.discriminate("dom.m", o)
            losses.spec -= Double(T.log(Swift.max(specProbs[m], T.leastNormalMagnitude))) / Double(n)
            var dSpec = specProbs.map { specWeight * $0 / n }
            dSpec[m] -= specWeight / n
            for d in 0..<nM {
                gradient.values[mb.offset + d] += dSpec[d]
                for (j, v) in o.enumerated() {
                    gradient.values[mw.offset + d * dm + j] += dSpec[d] * v
                    dO[p * dm + j] += dSpec[d] * values[mw.offset + d * dm + j]
                }
            }
        }
        return (losses, dRep, dO)
    }

    /// The multi-task loss, and its gradient with respect to the raw head outputs.
    func loss(options: LossOptions) -> (LossBreakdown, dOutputs: [T]) {
        let net = network, width = net.outputWidth
        var breakdown = LossBreakdown()
        var dOut = [T](repeating: 0, count: batchSize * width)
        for head in net.layout.config.headSet {
            let c = net.outputColumn(head)!
            let labelled = order.indices.filter { p in
                labels[order[p]].isLabelled(for: head, hasActivity: items[order[p]].act != nil)
            }
            breakdown.labelled[head] = labelled.count
            guard !labelled.isEmpty else { continue }
            let scale = T(options.taskWeights[head] ?? 1) / T(labelled.count)
            var total = 0.0
            for p in labelled {
                let l = labels[order[p]], o = p * width + c
                switch head {
                case .gmv:
                    let diff = outputs[o] - T(Foundation.log1p(Swift.max(l.gmv!, 0)))
                    switch options.gmvLoss {
                    case .squared:
                        total += Double(diff * diff)
                        dOut[o] = 2 * diff * scale
                    case .absolute:
                        total += Double(Swift.abs(diff))
                        dOut[o] = (diff > 0 ? 1 : diff < 0 ? -1 : 0) * scale
                    }
                case .bsp, .ja:
                    let y: T = (head == .bsp ? l.bestSeller! : l.joinedActivity!) ? 1 : 0
                    let logit = outputs[o]
                    // softplus(logit) − y·logit, computed stably.
                    total += Double(Swift.max(logit, 0) - logit * y + T.log1p(T.exp(-Swift.abs(logit))))
                    dOut[o] = (1 / (1 + T.exp(-logit)) - y) * scale
                case .ss:
                    let logits = (0..<ModelConfig.slotCount).map { outputs[o + $0] }
                    let m = logits.max()!
                    let exps = logits.map { T.exp($0 - m) }
                    let sum = exps.reduce(0, +)
                    let target = Swift.min(Swift.max(l.slot!, 1), ModelConfig.slotCount) - 1
                    total += Double(T.log(sum) + m - logits[target])
                    for j in 0..<ModelConfig.slotCount {
                        dOut[o + j] = (exps[j] / sum - (j == target ? 1 : 0)) * scale
                    }
                }
            }
            breakdown.perTask[head] = total / Double(labelled.count)
            breakdown.total += (options.taskWeights[head] ?? 1) * total / Double(labelled.count)
        }
        if options.l2 > 0 {
            var squares = 0.0
            for spec in net.layout.specs where spec.decays {
                for i in spec.range { squares += Double(net.parameters.values[i] * net.parameters.values[i]) }
            }
            breakdown.total += options.l2 / 2 * squares
        }
        return (breakdown, dOut)
    }

    // MARK: Backward

    /// Adds the gradient of the loss (given `dOutputs`, plus L2) to `gradient`, in the weight file's layout.
    ///
    /// `dRepExtra` (`batch × R`, or empty) adds to the gradient at `rep` before dropout, `dO` (`batch × D_m`) at `o`:
    /// the domain terms' (`domainTerms`).
    func backward(dOutputs: [T], options: LossOptions, dRepExtra: [T] = [], dO: [T] = [],
                  into gradient: inout Parameters<T>) {
        let net = network, layout = net.layout, dims = layout.dims, config = layout.config
        let b = batchSize, hd = net.hidden, a = net.attention, k = net.inputWidth, g = net.gateWidth
        let width = net.representationWidth, hiddenWidth = net.headHiddenWidth, outWidth = net.outputWidth
        let rows = h.count / hd

        // Heads: second layers, relu, fused first layer.
        var dHidden = [T](repeating: 0, count: b * hiddenWidth)
        var column = 0
        for (head, columns) in net.heads {
            let w2 = layout.require("head.\(head.rawValue).fc2.weight"), b2 = layout.require("head.\(head.rawValue).fc2.bias")
            let o = head.outputs
            gradient.values.withUnsafeMutableBufferPointer { grad in
            dOutputs.withUnsafeBufferPointer { dOut in headHidden.withUnsafeBufferPointer { hidden in
                T.gemm(transA: true, transB: false, m: o, n: columns.count, k: b, alpha: 1, dOut.baseAddress! + column,
                       lda: outWidth, hidden.baseAddress! + columns.lowerBound, ldb: hiddenWidth, beta: 1,
                       grad.baseAddress! + w2.offset, ldc: columns.count)
                for p in 0..<b { for j in 0..<o { grad[b2.offset + j] += dOut[p * outWidth + column + j] } }
                net.parameters.values.withUnsafeBufferPointer { params in
                dHidden.withUnsafeMutableBufferPointer { dH in
                    T.gemm(transA: false, transB: false, m: b, n: columns.count, k: o, alpha: 1,
                           dOut.baseAddress! + column, lda: outWidth, params.baseAddress! + w2.offset, ldb: columns.count,
                           beta: 0, dH.baseAddress! + columns.lowerBound, ldc: hiddenWidth)
                }}
            }}}
            column += o
        }
        for j in dHidden.indices { dHidden[j] = headHidden[j] > 0 ? dHidden[j] : 0 }
        let (dRepCompetition, dOCompetition) = competitionBackward(dHidden, into: &gradient)
        var dHeadFused = [T](repeating: 0, count: hiddenWidth * width)
        var dRep = [T](repeating: 0, count: b * width)
        T.gemm(transA: true, transB: false, m: hiddenWidth, n: width, k: b, alpha: 1, dHidden, lda: hiddenWidth,
               rep, ldb: width, beta: 0, &dHeadFused, ldc: width)
        net.headHidden.withUnsafeBufferPointer {
            T.gemm(transA: false, transB: false, m: b, n: width, k: hiddenWidth, alpha: 1, dHidden, lda: hiddenWidth,
                   $0.baseAddress!, ldb: width, beta: 0, &dRep, ldc: width)
        }
        var dAct = [T](repeating: 0, count: b * dims.actWidth)
        var dJaActivity: [T] = []
        if let ja = net.heads.first(where: { $0.head == .ja }) {
            dJaActivity = Array(repeating: 0, count: ja.columns.count * dims.actWidth)
            dHidden.withUnsafeBufferPointer { dH in
                T.gemm(transA: true, transB: false, m: ja.columns.count, n: dims.actWidth, k: b, alpha: 1,
                       dH.baseAddress! + ja.columns.lowerBound, lda: hiddenWidth, act, ldb: dims.actWidth, beta: 0,
                       &dJaActivity, ldc: dims.actWidth)
                net.jaActivityWeight.withUnsafeBufferPointer {
                    T.gemm(transA: false, transB: false, m: b, n: dims.actWidth, k: ja.columns.count, alpha: 1,
                           dH.baseAddress! + ja.columns.lowerBound, lda: hiddenWidth, $0.baseAddress!,
                           ldb: dims.actWidth, beta: 0, &dAct, ldc: dims.actWidth)
                }
            }
        }
        for (head, columns) in net.heads {
            let w1 = layout.require("head.\(head.rawValue).fc1.weight"), b1 = layout.require("head.\(head.rawValue).fc1.bias")
            let cols = w1.shape[1]
            for (i, fusedRow) in columns.enumerated() {
                for j in 0..<width { gradient.values[w1.offset + i * cols + j] += dHeadFused[fusedRow * width + j] }
                if head == .ja {
                    for j in 0..<dims.actWidth {
                        gradient.values[w1.offset + i * cols + width + j] += dJaActivity[i * dims.actWidth + j]
                    }
                }
                var bias: T = 0
                for p in 0..<b { bias += dHidden[p * hiddenWidth + fusedRow] }
                gradient.values[b1.offset + i] += bias
            }
        }
        for j in dRep.indices { dRep[j] *= dropMask[j] }
        for j in dRepExtra.indices { dRep[j] += dRepExtra[j] }
        for j in dRepCompetition.indices { dRep[j] += dRepCompetition[j] }

        // Static encoders.
        var dSii = [T](repeating: 0, count: b * dims.siiWidth)
        var dSis = [T](repeating: 0, count: b * dims.sisWidth)
        for p in 0..<b {
            for j in 0..<dims.siiWidth where sii[p * dims.siiWidth + j] > 0 {
                dSii[p * dims.siiWidth + j] = dRep[p * width + hd + j]
            }
            for j in 0..<dims.sisWidth where sis[p * dims.sisWidth + j] > 0 {
                dSis[p * dims.sisWidth + j] = dRep[p * width + hd + dims.siiWidth + j]
            }
        }
        let embWidth = dims.embeddingWidths.reduce(0, +)
        var dEmbedding = [T](repeating: 0, count: b * embWidth)
        denseBackward("sii.fc", rows: b, x: embeddingIn, dOut: dSii, dX: &dEmbedding, gradient: &gradient)
        if let domain {
            // o's gradient from competition, where o is computed (an item of no listed market has a constant 0).
            var dOAll = dO
            if !dOCompetition.isEmpty, !domain.o.isEmpty {
                if dOAll.isEmpty { dOAll = dOCompetition } else { for j in dOAll.indices { dOAll[j] += dOCompetition[j] } }
            }
            domain.backward(network: net, dGated: dEmbedding, dHeadHidden: dHidden, dO: dOAll, into: &gradient)
        } else {
            scatterEmbeddingGradient(dEmbedding, into: &gradient)
        }
        var unused: [T] = []
        denseBackward("sis.fc", rows: b, x: sisIn, dOut: dSis, dX: &unused, gradient: &gradient)
        if config.has(.ja) {
            for j in dAct.indices where act[j] <= 0 { dAct[j] = 0 }
            denseBackward("act.fc", rows: b, x: actIn, dOut: dAct, dX: &unused, gradient: &gradient)
        }

        // Attention pooling: d h_t += a_t g, d score_t = a_t (g·h_t − g·rep_d).
        var dH = [T](repeating: 0, count: rows * hd)
        var dScore = [T](repeating: 0, count: rows)
        for p in 0..<b where lengths[p] > 0 {
            var gDotPooled: T = 0
            for j in 0..<hd { gDotPooled += dRep[p * width + j] * pooled[p * hd + j] }
            for t in 0..<lengths[p] {
                let row = offsets[t] + p, weight = attentionWeights[row]
                var gDotH: T = 0
                for j in 0..<hd {
                    dH[row * hd + j] += weight * dRep[p * width + j]
                    gDotH += dRep[p * width + j] * h[row * hd + j]
                }
                dScore[row] = weight * (gDotH - gDotPooled)
            }
        }
        // score = v · tanh(pre): d pre = dScore v ⊙ (1 − e²).
        var dGates = [T](repeating: 0, count: rows * g)
        var dPre = [T](repeating: 0, count: rows * a)
        let v = Array(net.parameters["att.v"])
        let vSpec = layout.require("att.v")
        for row in 0..<rows {
            for j in 0..<a {
                let ej = e[row * a + j]
                gradient.values[vSpec.offset + j] += dScore[row] * ej
                dPre[row * a + j] = dScore[row] * v[j] * (1 - ej * ej)
                dGates[row * g + 3 * hd + j] = dPre[row * a + j]
            }
        }
        if rows > 0 {
            let wh = layout.require("att.w_h")
            gradient.values.withUnsafeMutableBufferPointer { grad in
                T.gemm(transA: true, transB: false, m: a, n: hd, k: rows, alpha: 1, dPre, lda: a, h, ldb: hd, beta: 1,
                       grad.baseAddress! + wh.offset, ldc: hd)
            }
            net.attentionH.withUnsafeBufferPointer {
                T.gemm(transA: false, transB: false, m: rows, n: hd, k: a, alpha: 1, dPre, lda: a, $0.baseAddress!,
                       ldb: hd, beta: 1, &dH, ldc: hd)
            }
        }

        // TUC-GRU, backwards through time.
        var dRecurrentZR = [T](repeating: 0, count: 2 * hd * hd)
        var dRecurrentN = [T](repeating: 0, count: hd * hd)
        let zeros = [T](repeating: 0, count: b * hd)
        for t in stride(from: active.count - 1, through: 0, by: -1) {
            let o = offsets[t], count = active[t]
            let hPrev: ArraySlice<T> = t == 0 ? zeros[0..<(count * hd)]
                : h[(offsets[t - 1] * hd)..<((offsets[t - 1] + count) * hd)]
            var dHPrev = [T](repeating: 0, count: count * hd)
            var dCandidate = [T](repeating: 0, count: count * hd)
            var dZR = [T](repeating: 0, count: count * 2 * hd)
            var resetHidden = [T](repeating: 0, count: count * hd)
            for i in 0..<(count * hd) {
                let row = o * hd + i, hp = hPrev[hPrev.startIndex + i]
                let dh = dH[row], zi = z[row], ni = n[row]
                dHPrev[i] = dh * (1 - zi)
                dCandidate[i] = dh * zi * (1 - ni * ni)
                dZR[(i / hd) * 2 * hd + i % hd] = dh * (ni - hp) * zi * (1 - zi)
                resetHidden[i] = r[row] * hp
            }
            // n = tanh(... + U_n (r ⊙ h_prev)).
            T.gemm(transA: true, transB: false, m: hd, n: hd, k: count, alpha: 1, dCandidate, lda: hd,
                   resetHidden, ldb: hd, beta: 1, &dRecurrentN, ldc: hd)
            var dReset = [T](repeating: 0, count: count * hd)
            net.recurrentN.withUnsafeBufferPointer {
                T.gemm(transA: false, transB: false, m: count, n: hd, k: hd, alpha: 1, dCandidate, lda: hd,
                       $0.baseAddress!, ldb: hd, beta: 0, &dReset, ldc: hd)
            }
            for i in 0..<(count * hd) {
                let row = o * hd + i, hp = hPrev[hPrev.startIndex + i], ri = r[row]
                dHPrev[i] += dReset[i] * ri
                dZR[(i / hd) * 2 * hd + hd + i % hd] = dReset[i] * hp * ri * (1 - ri)
            }
            for p in 0..<count {
                for j in 0..<hd {
                    dGates[(o + p) * g + j] = dZR[p * 2 * hd + j]
                    dGates[(o + p) * g + hd + j] = dZR[p * 2 * hd + hd + j]
                    dGates[(o + p) * g + 2 * hd + j] = dCandidate[p * hd + j]
                }
            }
            Array(hPrev).withUnsafeBufferPointer { hp in
                T.gemm(transA: true, transB: false, m: 2 * hd, n: hd, k: count, alpha: 1, dZR, lda: 2 * hd,
                       hp.baseAddress!, ldb: hd, beta: 1, &dRecurrentZR, ldc: hd)
            }
            net.recurrentZR.withUnsafeBufferPointer {
                T.gemm(transA: false, transB: false, m: count, n: hd, k: 2 * hd, alpha: 1, dZR, lda: 2 * hd,
                       $0.baseAddress!, ldb: hd, beta: 1, &dHPrev, ldc: hd)
            }
            if t > 0 {
                let previous = offsets[t - 1] * hd
                for i in 0..<(count * hd) { dH[previous + i] += dHPrev[i] }
            }
        }

        // Fused input weights and biases back to the weight file's tensors.
        if rows > 0 {
            var dInput = [T](repeating: 0, count: g * k)
            T.gemm(transA: true, transB: false, m: g, n: k, k: rows, alpha: 1, dGates, lda: g, x, ldb: k, beta: 0,
                   &dInput, ldc: k)
            dInput.withUnsafeBufferPointer { fused in
                for block in Network<T>.inputBlocks(layout) {
                    block.add(fused: fused.baseAddress!, width: k, toFlat: &gradient.values)
                }
            }
            let biasNames = [("gru.z.b", 0), ("gru.r.b", hd), ("gru.n.b", 2 * hd), ("att.b", 3 * hd)]
            for (name, start) in biasNames {
                let spec = layout.require(name)
                for row in 0..<rows {
                    for j in 0..<spec.count { gradient.values[spec.offset + j] += dGates[row * g + start + j] }
                }
            }
            // market-embedding: column m is a bias of market m's rows only.
            let marketCount = layout.config.markets.count
            for (name, start) in Network<T>.marketBlocks(layout) {
                let spec = layout.require(name)
                for t in active.indices {
                    for p in 0..<active[t] {
                        guard let m = items[order[p]].market else { continue }
                        let row = offsets[t] + p
                        for j in 0..<spec.shape[0] {
                            gradient.values[spec.offset + j * marketCount + m] += dGates[row * g + start + j]
                        }
                    }
                }
            }
        }
        let zu = layout.require("gru.z.u"), ru = layout.require("gru.r.u"), nu = layout.require("gru.n.u")
        for i in 0..<(hd * hd) {
            gradient.values[zu.offset + i] += dRecurrentZR[i]
            gradient.values[ru.offset + i] += dRecurrentZR[hd * hd + i]
            gradient.values[nu.offset + i] += dRecurrentN[i]
        }

        if options.l2 > 0 {
            let l2 = T(options.l2)
            for spec in layout.specs where spec.decays {
                for i in spec.range { gradient.values[i] += l2 * net.parameters.values[i] }
            }
        }
    }

    /// MARKETS.md `competition`'s part of the backward pass, given the gradient at the heads' first-layer
    /// pre-activations: the heads' `comp.weight` and `coop.weight`, then `comp.fc` and `comp.theta` through both
    /// attentions; returns the gradients it adds at `rep` (before dropout) and at `o` (both empty without it).
    private func competitionBackward(_ dHidden: [T], into gradient: inout Parameters<T>) -> (dRep: [T], dO: [T]) {
        guard let competition, let weights = network.competition else { return ([], []) }
        let b = batchSize, F = weights.width, hw = network.headHiddenWidth, layout = network.layout
        let r = network.representationWidth, inWidth = weights.inputWidth
        // Each head's `<suffix>.weight` takes dHiddenᵀ · vectors; the vectors take dHidden · the stacked weights.
        func throughHeads(_ vectors: [T], _ matrix: [T], _ suffix: String) -> [T] {
            var dVectors = [T](repeating: 0, count: b * F)
            guard !matrix.isEmpty else { return dVectors }
            for (head, columns) in network.heads {
                let spec = layout.require("head.\(head.rawValue).\(suffix).weight")
                gradient.values.withUnsafeMutableBufferPointer { grad in
                    dHidden.withUnsafeBufferPointer { dH in
                        T.gemm(transA: true, transB: false, m: columns.count, n: F, k: b, alpha: 1, dH.baseAddress! + columns.lowerBound,
                               lda: hw, vectors, ldb: F, beta: 1, grad.baseAddress! + spec.offset, ldc: F)
                    }
                }
            }
            T.gemm(transA: false, transB: false, m: b, n: F, k: hw, alpha: 1, dHidden, lda: hw, matrix, ldb: F, beta: 0,
                   &dVectors, ldc: F)
            return dVectors
        }
        let dc = throughHeads(competition.c, weights.comp, "comp"), dq = throughHeads(competition.q, weights.coop, "coop")
        let dInput = competition.backward(dc: dc, dq: dq, weights: weights, layout: layout, into: &gradient)
        var dRep = [T](repeating: 0, count: b * r), dO = [T](repeating: 0, count: b * (inWidth - r))
        for i in 0..<b {
            dRep.replaceSubrange((i * r)..<((i + 1) * r), with: dInput[(i * inWidth)..<(i * inWidth + r)])
            dO.replaceSubrange((i * (inWidth - r))..<((i + 1) * (inWidth - r)), with: dInput[(i * inWidth + r)..<((i + 1) * inWidth)])
        }
        return (dRep, inWidth > r ? dO : [])
    }

    /// Adds the gradient at the concatenated embeddings (`batch × Σ d_f`) to each item's row of every `sii.emb.<f>`.
    private func scatterEmbeddingGradient(_ dEmbedding: [T], into gradient: inout Parameters<T>) {
        let layout = network.layout, widths = layout.dims.embeddingWidths, total = widths.reduce(0, +)
        for p in 0..<batchSize {
            var column = 0
            for (f, field) in layout.config.siiFields.enumerated() {
                let table = layout.require("sii.emb.\(field)"), d = widths[f]
                let row = items[order[p]].rows[f]
                for j in 0..<d { gradient.values[table.offset + row * d + j] += dEmbedding[p * total + column + j] }
                column += d
            }
        }
    }

    /// Gradient of a `dense` layer given the gradient at its pre-activation.
    private func denseBackward(_ prefix: String, rows: Int, x: [T], dOut: [T], dX: inout [T],
                               gradient: inout Parameters<T>) {
        let w = network.layout.require("\(prefix).weight"), bias = network.layout.require("\(prefix).bias")
        let (outCount, inCount) = (w.shape[0], w.shape[1])
        gradient.values.withUnsafeMutableBufferPointer { grad in
            T.gemm(transA: true, transB: false, m: outCount, n: inCount, k: rows, alpha: 1, dOut, lda: outCount,
                   x, ldb: inCount, beta: 1, grad.baseAddress! + w.offset, ldc: inCount)
            for p in 0..<rows { for j in 0..<outCount { grad[bias.offset + j] += dOut[p * outCount + j] } }
        }
        if !dX.isEmpty {
            network.parameters.values.withUnsafeBufferPointer { params in
                T.gemm(transA: false, transB: false, m: rows, n: inCount, k: outCount, alpha: 1, dOut, lda: outCount,
                       params.baseAddress! + w.offset, ldb: inCount, beta: 0, &dX, ldc: inCount)
            }
        }
    }
}


import Foundation

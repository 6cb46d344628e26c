import Foundation

/// One item's prediction, decoded from the heads' outputs (MODEL.md, "Representation and heads").
public struct Prediction: Sendable, Equatable, Codable {
    public var gmv: Double?
    public var bsp: Double?
    public var slot: Int?
    public var slotProbabilities: [Double]?
    /// P(join activity); nil when no activity was given or the model has no JA head.
    public var ja: Double?
    public var daysSeen: Int
    /// MODEL.md's `rep` (`concat(rep_d, e_sii, e_sis)`), only when asked for: what a BOP model with
    /// `bop.rep.weight` adds to the item's candidate token.
    public var rep: [Double]?

    enum CodingKeys: String, CodingKey {
        case gmv, bsp, slot, ja, rep
        case slotProbabilities = "slot_probs"
        case daysSeen = "days_seen"
    }
}

/// The incremental state of many items, struct-of-arrays: `(T, h, m, s, acc)` of MODEL.md's online softmax,
/// plus each item's static encodings, which never change once its profile is known.
public struct ItemBatch<T: DINOPScalar>: Sendable {
    public let hidden: Int
    public private(set) var count = 0
    public var days: [Int] = []
    public var h: [T] = [], acc: [T] = [], maxScore: [T] = [], scoreSum: [T] = []
    /// Encoded static inputs: `e_sii`, `e_sis`, `e_act` (zeros without an activity). `x_su` rides in each day's row.
    public var sii: [T] = [], sis: [T] = [], act: [T] = []
    public var hasActivity: [Bool] = []
    /// Each item's market (MARKETS.md `m`, −1 for none).
    public var markets: [Int32] = []
    /// Each item's `o` term in the heads' first layer (MARKETS.md `domain-attention`), `count × headHiddenWidth`;
    /// empty without that extension. Static, like the encodings.
    public var headTerm: [T] = []
    /// Each item's `o` (`count × D_m`, zeros for m = none), kept only when `competition` reads it beside
    /// domain-attention; empty otherwise.
    public var o: [T] = []

    public init(network: Network<T>) { hidden = network.hidden }

    /// Appends an item with no day seen; encodes its static inputs.
    public mutating func append(_ item: EncodedItem<T>, network: Network<T>) { append(contentsOf: [item], network: network) }

    /// Appends items with no day seen; encodes their static inputs together (one GEMM per layer).
    @_specialize(exported: true, where T == Float)
    public mutating func append(contentsOf items: [EncodedItem<T>], network: Network<T>) {
        let n = items.count
        guard n > 0 else { return }
        let dims = network.layout.dims
        let dSii = dims.siiWidth, dSis = dims.sisWidth, dAct = dims.actWidth
        count += n
        days += repeatElement(0, count: n)
        h += repeatElement(0, count: n * hidden)
        acc += repeatElement(0, count: n * hidden)
        maxScore += repeatElement(-.infinity, count: n)
        scoreSum += repeatElement(0, count: n)
        markets += items.map { Int32($0.market ?? -1) }
        let embeddingWidth = dims.embeddingWidths.reduce(0, +)
        var embedding = [T](repeating: 0, count: n * embeddingWidth)
        var encoded = [T](repeating: 0, count: n * Swift.max(dSii, dSis, dAct))
        if let da = network.layout.domainAttention {
            let domain = DomainPass(network: network, dims: da, rows: items.map(\.rows), specRows: items.map(\.specRows),
                                    markets: items.map(\.market))
            embedding = domain.gatedEmbedding
            headTerm += domain.headTerm
            if network.competition != nil { o += domain.oOfEveryItem }
        } else {
            network.gatherEmbeddings(items.map(\.rows), into: &embedding)
        }
        network.dense("sii.fc", rows: n, x: embedding, ldx: embeddingWidth, relu: true, out: &encoded)
        sii += encoded[0..<(n * dSii)]
        let sisInputs = items.flatMap(\.sis)
        network.dense("sis.fc", rows: n, x: sisInputs, ldx: sisInputs.count / n, relu: true, out: &encoded)
        sis += encoded[0..<(n * dSis)]
        // Only the items with an activity go through its layer; the others keep zeros.
        let withActivity = network.layout.config.has(.ja) ? items.indices.filter { items[$0].act != nil } : []
        var actRows = [T](repeating: 0, count: n * dAct)
        if !withActivity.isEmpty {
            let actInputs = withActivity.flatMap { items[$0].act! }
            network.dense("act.fc", rows: withActivity.count, x: actInputs, ldx: actInputs.count / withActivity.count,
                          relu: true, out: &encoded)
            for (row, i) in withActivity.enumerated() {
                actRows.replaceSubrange((i * dAct)..<((i + 1) * dAct), with: encoded[(row * dAct)..<((row + 1) * dAct)])
            }
        }
        act += actRows
        var flags = [Bool](repeating: false, count: n)
        for i in withActivity { flags[i] = true }
        hasActivity += flags
    }
}

/// Serves a model: advances items' states a day at a time and reads predictions off them.
///
/// Holds scratch memory sized for `capacity` rows; use one per thread.
public struct Scorer<T: DINOPScalar> {
    public let network: Network<T>
    public let capacity: Int
    var workspace: StepWorkspace<T>
    var z: [T], r: [T], n: [T], hNew: [T], e: [T], scores: [T]
    var rep: [T], headHidden: [T], outputs: [T]

    public init(network: Network<T>, capacity: Int) {
        let h = network.hidden, a = network.attention
        self.network = network
        self.capacity = capacity
        workspace = StepWorkspace(capacity: capacity, hidden: h, attention: a)
        z = Array(repeating: 0, count: capacity * h)
        r = z
        n = z
        hNew = z
        e = Array(repeating: 0, count: capacity * a)
        scores = Array(repeating: 0, count: capacity)
        rep = Array(repeating: 0, count: capacity * network.representationWidth)
        headHidden = Array(repeating: 0, count: capacity * network.headHiddenWidth)
        outputs = Array(repeating: 0, count: capacity * network.outputWidth)
    }

    /// Applies one more day to items `first ..< first + rows` of `batch`; `x` holds their input rows
    /// (`rows × inputWidth`). Updates h and the online-softmax pooling state.
    @_specialize(exported: true, where T == Float)
    public mutating func advance(_ batch: inout ItemBatch<T>, first: Int = 0, rows: Int, x: UnsafePointer<T>) {
        precondition(rows <= capacity && first + rows <= batch.count)
        let hd = network.hidden, network = self.network
        batch.h.withUnsafeMutableBufferPointer { hBuffer in
        z.withUnsafeMutableBufferPointer { z in r.withUnsafeMutableBufferPointer { r in
        n.withUnsafeMutableBufferPointer { n in hNew.withUnsafeMutableBufferPointer { hNew in
        e.withUnsafeMutableBufferPointer { e in scores.withUnsafeMutableBufferPointer { scores in
            let out = StepOutputs(z: z.baseAddress!, r: r.baseAddress!, n: n.baseAddress!, h: hNew.baseAddress!,
                                  e: e.baseAddress!, score: scores.baseAddress!)
            let hPrev = hBuffer.baseAddress! + first * hd
            if network.marketBias.isEmpty {
                network.step(rows: rows, x: x, hPrev: hPrev, out: out, workspace: &workspace)
            } else {
                batch.markets.withUnsafeBufferPointer {
                    network.step(rows: rows, x: x, hPrev: hPrev, markets: $0.baseAddress! + first, out: out, workspace: &workspace)
                }
            }
            hPrev.update(from: out.h, count: rows * hd)
        }}}}}}}
        batch.acc.withUnsafeMutableBufferPointer { acc in
            for i in 0..<rows {
                let item = first + i
                let score = scores[i], m = batch.maxScore[item]
                let newMax = Swift.max(m, score)
                let decay = batch.days[item] == 0 ? 0 : T.exp(m - newMax)
                let weight = T.exp(score - newMax)
                batch.maxScore[item] = newMax
                batch.scoreSum[item] = batch.scoreSum[item] * decay + weight
                let a = acc.baseAddress! + item * hd
                hNew.withUnsafeBufferPointer { h in
                    let hi = h.baseAddress! + i * hd
                    for j in 0..<hd { a[j] = a[j] * decay + weight * hi[j] }
                }
                batch.days[item] += 1
            }
        }
    }

    /// `rep` of items `first ..< first + rows` into `self.rep` (`rows × R`).
    mutating func assembleRepresentations(_ batch: ItemBatch<T>, first: Int, rows: Int) {
        let hd = network.hidden, dSii = network.layout.dims.siiWidth, dSis = network.layout.dims.sisWidth
        // rep_d = acc / s (0 before the first day).
        var pooled = [T](repeating: 0, count: rows * hd)
        pooled.withUnsafeMutableBufferPointer { pooled in
            batch.acc.withUnsafeBufferPointer { acc in
                for i in 0..<rows where batch.days[first + i] > 0 {
                    let inverse = 1 / batch.scoreSum[first + i]
                    let source = acc.baseAddress! + (first + i) * hd, target = pooled.baseAddress! + i * hd
                    for j in 0..<hd { target[j] = source[j] * inverse }
                }
            }
        }
        let network = self.network
        rep.withUnsafeMutableBufferPointer { rep in
        batch.sii.withUnsafeBufferPointer { sii in batch.sis.withUnsafeBufferPointer { sis in
            network.assembleRepresentation(rows: rows, pooled: pooled, sii: sii.baseAddress! + first * dSii,
                                           sis: sis.baseAddress! + first * dSis, into: rep.baseAddress!)
        }}}
    }

    /// Raw head outputs of items `first ..< first + rows`, `rows × network.outputWidth`. `competitionTerm`
    /// (`rows × headHiddenWidth`), when given, adds MARKETS.md's c and q terms to the heads' pre-activations.
    @_specialize(exported: true, where T == Float)
    public mutating func outputs(_ batch: ItemBatch<T>, first: Int = 0, rows: Int, competitionTerm: [T]? = nil) -> ArraySlice<T> {
        precondition(rows <= capacity && first + rows <= batch.count)
        assembleRepresentations(batch, first: first, rows: rows)
        let dAct = network.layout.dims.actWidth, width = network.headHiddenWidth
        // The pre-activations' extra terms: domain-attention's (static per item) plus competition's (per day).
        var term = batch.headTerm.isEmpty ? [] : Array(batch.headTerm[(first * width)..<((first + rows) * width)])
        if let competitionTerm {
            if term.isEmpty { term = competitionTerm } else { for j in 0..<(rows * width) { term[j] += competitionTerm[j] } }
        }
        let network = self.network
        rep.withUnsafeBufferPointer { rep in
        headHidden.withUnsafeMutableBufferPointer { hidden in
        outputs.withUnsafeMutableBufferPointer { out in
        batch.act.withUnsafeBufferPointer { act in term.withUnsafeBufferPointer { term in
            network.heads(rows: rows, rep: rep.baseAddress!, activity: act.baseAddress! + first * dAct,
                          hiddenTerm: term.isEmpty ? nil : term.baseAddress!, hiddenOut: hidden.baseAddress!,
                          out: out.baseAddress!)
        }}}}}
        return outputs[0..<(rows * network.outputWidth)]
    }

    /// Predictions of items `first ..< first + rows`; with `representation`, each carries its `rep`.
    @_specialize(exported: true, where T == Float)
    public mutating func predictions(_ batch: ItemBatch<T>, first: Int = 0, rows: Int, representation: Bool = false,
                                     competitionTerm: [T]? = nil) -> [Prediction] {
        let raw = Array(outputs(batch, first: first, rows: rows, competitionTerm: competitionTerm))
        let width = network.outputWidth, r = network.representationWidth
        return (0..<rows).map { i in
            var p = network.decode(Array(raw[(i * width)..<((i + 1) * width)]), days: batch.days[first + i],
                                   hasActivity: batch.hasActivity[first + i])
            if representation { p.rep = rep[(i * r)..<((i + 1) * r)].map { Double($0) } }
            return p
        }
    }

    /// Predictions for whole items, days applied in order; items are stepped together as one batch per day.
    @_specialize(exported: true, where T == Float)
    public mutating func predict(_ items: [EncodedItem<T>], representation: Bool = false) -> [Prediction] {
        var predictions = [Prediction?](repeating: nil, count: items.count)
        for chunkStart in stride(from: 0, to: items.count, by: capacity) {
            let (batch, chunk) = applyEveryDay(items, chunkStart..<Swift.min(chunkStart + capacity, items.count))
            for (row, prediction) in self.predictions(batch, rows: chunk.count, representation: representation).enumerated() {
                predictions[chunk[row]] = prediction
            }
        }
        return predictions.map { $0! }
    }

    /// A batch of `items[indices]` (at most `capacity`) with every day of each applied; `order[row]` is the index
    /// in `items` of the batch's row.
    mutating func applyEveryDay(_ items: [EncodedItem<T>], _ indices: Range<Int>) -> (batch: ItemBatch<T>, order: [Int]) {
        // Longest first, so the items still running on day t are a prefix of the batch.
        let chunk = indices.sorted { items[$0].dayCount > items[$1].dayCount }
        var batch = ItemBatch(network: network)
        batch.append(contentsOf: chunk.map { items[$0] }, network: network)
        let k = network.inputWidth
        var x = [T](repeating: 0, count: chunk.count * k)
        for t in 0..<(chunk.first.map { items[$0].dayCount } ?? 0) {
            let active = chunk.prefix { items[$0].dayCount > t }.count
            for (row, index) in chunk.prefix(active).enumerated() {
                x.replaceSubrange((row * k)..<((row + 1) * k), with: items[index].dayInputs[(t * k)..<((t + 1) * k)])
            }
            advance(&batch, rows: active, x: x)
        }
        return (batch, chunk)
    }
}

extension Network {
    /// Turns one row of raw head outputs into a prediction.
    public func decode(_ raw: [T], days: Int, hasActivity: Bool) -> Prediction {
        var p = Prediction(daysSeen: days)
        if let c = outputColumn(.gmv) { p.gmv = Foundation.expm1(Swift.max(Double(raw[c]), 0)) }
        if let c = outputColumn(.bsp) { p.bsp = Double(1 / (1 + T.exp(-raw[c]))) }
        if let c = outputColumn(.ss) {
            let logits = raw[c..<(c + ModelConfig.slotCount)].map(Double.init)
            let best = logits.indices.max { logits[$0] < logits[$1] }!
            let exps = logits.map { Foundation.exp($0 - logits[best]) }
            let total = exps.reduce(0, +)
            p.slotProbabilities = exps.map { $0 / total }
            p.slot = best + 1
        }
        if hasActivity, let c = outputColumn(.ja) { p.ja = Double(1 / (1 + T.exp(-raw[c]))) }
        return p
    }
}

extension Prediction {
    init(daysSeen: Int) { self.daysSeen = daysSeen }
}

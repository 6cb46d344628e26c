/// The DINOP network in the fused form the math runs on.
///
/// The weight file's tensors are regrouped so that each step is a few large GEMMs:
/// - `inputWeight` `[(3H + A) × (n_dis + 2 n_u)]` maps a day's `[x_dis | x_du | x_su]` onto the z, r and n gates
///   and the attention's input part at once (the blocks the contract leaves out are zero);
/// - `recurrentZR` `[2H × H]` stacks `gru.z.u` and `gru.r.u`;
/// - `headHidden` stacks every head's first layer over `rep` so all heads' hidden units are one GEMM.
public struct Network<T: DINOPScalar>: Sendable {
    public let parameters: Parameters<T>
    public let normaliser: Normaliser<T>
    public var layout: ParameterLayout { parameters.layout }

    public let hidden: Int, attention: Int, nDis: Int, nU: Int
    /// Width of a day's fused input row `[x_dis | x_du | x_su]`.
    public let inputWidth: Int
    /// Width of the fused gate pre-activations `[z | r | n | att]`.
    public let gateWidth: Int
    public let representationWidth: Int

    var inputWeight: [T], inputBias: [T]
    /// Per market m, `inputBias` plus column m of `mkt.gru.{z,r,n}` and `mkt.att` (MARKETS.md `market-embedding`):
    /// a row of market m starts its pre-activations from it, so the market term costs nothing per step.
    var marketBias: [[T]]
    var recurrentZR: [T], recurrentN: [T]
    var attentionH: [T], attentionV: [T]
    /// Heads present, each with its column range in the fused hidden layer.
    let heads: [(head: Head, columns: Range<Int>)]
    var headHidden: [T], headHiddenBias: [T]
    /// The JA head's first-layer columns over `e_act`, `[H_ja × D_act]`.
    var jaActivityWeight: [T]
    /// MARKETS.md `competition`'s tensors; nil without that extension.
    let competition: CompetitionWeights<T>?

    @_specialize(exported: true, where T == Float)
    public init(_ parameters: Parameters<T>) {
        let layout = parameters.layout
        let config = layout.config
        self.parameters = parameters
        self.normaliser = Normaliser(parameters)
        hidden = config.hidden
        attention = config.attention
        nDis = config.count(.dis)
        nU = config.count(.du)
        inputWidth = nDis + 2 * nU
        gateWidth = 3 * hidden + attention
        representationWidth = layout.representationWidth

        var fused = [T](repeating: 0, count: gateWidth * inputWidth)
        for block in Self.inputBlocks(layout) {
            block.copy(from: parameters.values, toFused: &fused, width: inputWidth)
        }
        inputWeight = fused
        inputBias = Array(parameters["gru.z.b"] + parameters["gru.r.b"] + parameters["gru.n.b"] + parameters["att.b"])
        marketBias = []
        if config.has(extension: ModelExtension.marketEmbedding) {
            let markets = config.markets.count
            let columns = Self.marketBlocks(layout).map { ($0.start, layout.require($0.name)) }
            for m in 0..<markets {
                var bias = inputBias
                for (start, spec) in columns {
                    for j in 0..<spec.shape[0] { bias[start + j] += parameters.values[spec.offset + j * markets + m] }
                }
                marketBias.append(bias)
            }
        }
        recurrentZR = Array(parameters["gru.z.u"] + parameters["gru.r.u"])
        recurrentN = Array(parameters["gru.n.u"])
        attentionH = Array(parameters["att.w_h"])
        attentionV = Array(parameters["att.v"])

        var heads: [(Head, Range<Int>)] = []
        var headHidden: [T] = [], headHiddenBias: [T] = []
        var jaActivityWeight: [T] = []
        let r = layout.representationWidth
        for head in config.headSet {
            let spec = layout.require("head.\(head.rawValue).fc1.weight")
            let (hk, cols) = (spec.shape[0], spec.shape[1])
            let start = headHiddenBias.count
            heads.append((head, start..<(start + hk)))
            for i in 0..<hk {
                let row = spec.offset + i * cols
                headHidden += parameters.values[row..<(row + r)]
                if head == .ja { jaActivityWeight += parameters.values[(row + r)..<(row + cols)] }
            }
            headHiddenBias += parameters["head.\(head.rawValue).fc1.bias"]
        }
        self.heads = heads
        self.headHidden = headHidden
        self.headHiddenBias = headHiddenBias
        self.jaActivityWeight = jaActivityWeight
        competition = CompetitionWeights(parameters, heads: heads)
    }

    /// Where each weight-file tensor sits inside `inputWeight`.
    static func inputBlocks(_ layout: ParameterLayout) -> [FusedBlock] {
        let h = layout.config.hidden, nDis = layout.config.count(.dis), nU = layout.config.count(.du)
        var blocks: [FusedBlock] = []
        for (g, gate) in ["z", "r", "n"].enumerated() {
            blocks.append(FusedBlock(spec: layout.require("gru.\(gate).w_dis"), row: g * h, column: 0))
        }
        for (g, gate) in ["z", "r"].enumerated() {
            blocks.append(FusedBlock(spec: layout.require("gru.\(gate).w_du"), row: g * h, column: nDis))
        }
        blocks.append(FusedBlock(spec: layout.require("att.w_du"), row: 3 * h, column: nDis))
        blocks.append(FusedBlock(spec: layout.require("att.w_su"), row: 3 * h, column: nDis + nU))
        return blocks
    }

    /// Each `market-embedding` tensor and the first row of its block in the fused pre-activations `[z | r | n | att]`.
    static func marketBlocks(_ layout: ParameterLayout) -> [(name: String, start: Int)] {
        guard layout.config.has(extension: ModelExtension.marketEmbedding) else { return [] }
        let h = layout.config.hidden
        return [("mkt.gru.z", 0), ("mkt.gru.r", h), ("mkt.gru.n", 2 * h), ("mkt.att", 3 * h)]
    }

    /// Total hidden units of all heads.
    public var headHiddenWidth: Int { headHiddenBias.count }
    /// Outputs of all heads side by side, in `layout.config.headSet` order.
    public var outputWidth: Int { heads.reduce(0) { $0 + $1.head.outputs } }

    /// Column of each head's first output in a row of `outputWidth` outputs.
    public func outputColumn(_ head: Head) -> Int? {
        var column = 0
        for entry in heads {
            if entry.head == head { return column }
            column += entry.head.outputs
        }
        return nil
    }
}

/// A weight-file matrix placed at (`row`, `column`) of a fused matrix.
struct FusedBlock {
    let spec: TensorSpec
    let row: Int, column: Int

    func copy<T>(from flat: [T], toFused fused: inout [T], width: Int) {
        let cols = spec.shape[1]
        for i in 0..<spec.shape[0] {
            for j in 0..<cols { fused[(row + i) * width + column + j] = flat[spec.offset + i * cols + j] }
        }
    }

    func add<T: DINOPScalar>(fused: UnsafePointer<T>, width: Int, toFlat flat: inout [T]) {
        let cols = spec.shape[1]
        for i in 0..<spec.shape[0] {
            for j in 0..<cols { flat[spec.offset + i * cols + j] += fused[(row + i) * width + column + j] }
        }
    }
}

/// Scratch and per-step outputs of `Network.step` for up to `capacity` rows.
struct StepWorkspace<T: DINOPScalar> {
    var gates: [T], recurrent: [T], resetHidden: [T], candidateInput: [T], attentionInput: [T]
    init(capacity: Int, hidden h: Int, attention a: Int) {
        gates = Array(repeating: 0, count: capacity * (3 * h + a))
        recurrent = Array(repeating: 0, count: capacity * 2 * h)
        resetHidden = Array(repeating: 0, count: capacity * h)
        candidateInput = Array(repeating: 0, count: capacity * h)
        attentionInput = Array(repeating: 0, count: capacity * a)
    }
}

/// Where one step writes the activations that the backward pass needs (`rows × H`, `rows × A`, `rows`).
struct StepOutputs<T> {
    var z: UnsafeMutablePointer<T>, r: UnsafeMutablePointer<T>, n: UnsafeMutablePointer<T>
    var h: UnsafeMutablePointer<T>, e: UnsafeMutablePointer<T>, score: UnsafeMutablePointer<T>
}

extension Network {
    /// One TUC-GRU day for `rows` items at once, and their attention scores.
    ///
    /// `x` is `rows × inputWidth` (`[x_dis | x_du | x_su]`), `hPrev` `rows × H`. Writes z, r, n, h', tanh of the
    /// attention pre-activation and the score into `out`. Five GEMMs; the element-wise work is vectorised.
    ///
    /// `markets`: each row's market (MARKETS.md `m`, −1 for none), or nil when no row has one.
    func step(rows: Int, x: UnsafePointer<T>, hPrev: UnsafePointer<T>, markets: UnsafePointer<Int32>? = nil,
              out: StepOutputs<T>, workspace: inout StepWorkspace<T>) {
        let h = hidden, a = attention, g = gateWidth
        workspace.gates.withUnsafeMutableBufferPointer { gatesBuffer in
        workspace.recurrent.withUnsafeMutableBufferPointer { recurrentBuffer in
        workspace.resetHidden.withUnsafeMutableBufferPointer { resetBuffer in
        workspace.candidateInput.withUnsafeMutableBufferPointer { candidateBuffer in
        workspace.attentionInput.withUnsafeMutableBufferPointer { attentionBuffer in
            let gates = gatesBuffer.baseAddress!, recurrent = recurrentBuffer.baseAddress!
            let reset = resetBuffer.baseAddress!, candidate = candidateBuffer.baseAddress!
            let attentionIn = attentionBuffer.baseAddress!
            // Input projections of all gates and the attention, bias included.
            for i in 0..<rows {
                let m = markets.map { Int($0[i]) } ?? -1
                (gates + i * g).update(from: m >= 0 ? marketBias[m] : inputBias, count: g)
            }
            inputWeight.withUnsafeBufferPointer {
                T.linear(rows: rows, out: g, in: inputWidth, x, ldx: inputWidth, weight: $0.baseAddress!,
                         ldw: inputWidth, accumulate: true, gates, ldy: g)
            }
            recurrentZR.withUnsafeBufferPointer {
                T.linear(rows: rows, out: 2 * h, in: h, hPrev, ldx: h, weight: $0.baseAddress!, ldw: h,
                         accumulate: false, recurrent, ldy: 2 * h)
            }
            for i in 0..<rows {
                let gi = gates + i * g, ri = recurrent + i * 2 * h
                let zi = out.z + i * h, rr = out.r + i * h
                for j in 0..<h {
                    zi[j] = gi[j] + ri[j]
                    rr[j] = gi[h + j] + ri[h + j]
                }
            }
            T.sigmoid(out.z, count: rows * h)
            T.sigmoid(out.r, count: rows * h)
            for j in 0..<(rows * h) { reset[j] = out.r[j] * hPrev[j] }
            recurrentN.withUnsafeBufferPointer {
                T.linear(rows: rows, out: h, in: h, reset, ldx: h, weight: $0.baseAddress!, ldw: h,
                         accumulate: false, candidate, ldy: h)
            }
            for i in 0..<rows {
                let gi = gates + i * g + 2 * h, ci = candidate + i * h, ni = out.n + i * h
                for j in 0..<h { ni[j] = gi[j] + ci[j] }
            }
            T.tanh(out.n, count: rows * h)
            for j in 0..<(rows * h) { out.h[j] = hPrev[j] + out.z[j] * (out.n[j] - hPrev[j]) }
            // Attention: score = v · tanh(w_h h' + [w_du x_du + w_su x_su + b]).
            attentionH.withUnsafeBufferPointer {
                T.linear(rows: rows, out: a, in: h, out.h, ldx: h, weight: $0.baseAddress!, ldw: h,
                         accumulate: false, attentionIn, ldy: a)
            }
            for i in 0..<rows {
                let gi = gates + i * g + 3 * h, pi = attentionIn + i * a, ei = out.e + i * a
                for j in 0..<a { ei[j] = gi[j] + pi[j] }
            }
            T.tanh(out.e, count: rows * a)
            attentionV.withUnsafeBufferPointer { v in
                for i in 0..<rows {
                    let ei = out.e + i * a
                    var s: T = 0
                    for j in 0..<a { s += v[j] * ei[j] }
                    out.score[i] = s
                }
            }
        }}}}}
    }
}

import CKernels
import DINOP
import Foundation

/// One scoring of BOP.md: a user's recent purchases (item rows, oldest first, at most `n_max − 1`), the candidate's
/// row, the market it is offered in, and the candidate's DINOP `rep` when the model reads one.
public struct BOPSequence: Sendable, Equatable {
    public var history: [Int]
    public var candidate: Int
    public var market: Int?
    public var rep: [Float]?

    public init(history: [Int], candidate: Int, market: Int?, rep: [Float]? = nil) {
        (self.history, self.candidate, self.market, self.rep) = (history, candidate, market, rep)
    }

    /// Tokens of the pass: the history, then the candidate.
    public var length: Int { history.count + 1 }
}

extension BOPModel {
    /// A scoring from ids: the `n_max − 1` most recent of `purchases` (oldest first, as given), the candidate, the
    /// market id (none when empty or unlisted), and `rep` only when the model has `bop.rep.weight` of its width.
    public func sequence(purchases: [String?], candidate: String?, market: String?, rep: [Float]? = nil) -> BOPSequence {
        let kept = purchases.suffix(Swift.max(config.maxHistory - 1, 0))
        return BOPSequence(history: kept.map { itemRow($0) }, candidate: itemRow(candidate), market: marketIndex(market),
                           rep: rep.flatMap { $0.count == repWidth ? $0 : nil })
    }
}

/// BOP.md's transformer in one precision, with each layer's tensors located once.
public struct BOPNetwork<T: DINOPScalar>: Sendable {
    public let config: BOPConfig
    public let repWidth: Int?
    let values: [T]
    let item: Int, market: Int, rep: Int?, out: Int, outBias: Int
    let layers: [LayerOffsets]

    struct LayerOffsets: Sendable {
        let inProj: Int, inBias: Int, outProj: Int, outBias: Int, linear1: Int, bias1: Int, linear2: Int, bias2: Int
        let norm1: Int, norm1Bias: Int, norm2: Int, norm2Bias: Int
    }

    public init(_ model: BOPModel, values: [T]? = nil) {
        config = model.config
        repWidth = model.repWidth
        // Float shares the model's buffer (no copy of a 200,003-row table per batch; `as? [T]` would cast each
        // element at run time).
        self.values = values ?? (T.self == Float.self ? unsafeBitCast(model.values, to: [T].self) : model.values.map { T($0) })
        let layout = model.layout
        item = layout.offset("bop.item.emb")
        market = layout.offset("bop.mkt.emb")
        rep = layout.spec("bop.rep.weight")?.offset
        out = layout.offset("bop.out.weight")
        outBias = layout.offset("bop.out.bias")
        layers = (0..<model.config.layers).map { l in
            let p = "bop.layers.\(l)."
            return LayerOffsets(
                inProj: layout.offset(p + "self_attn.in_proj_weight"), inBias: layout.offset(p + "self_attn.in_proj_bias"),
                outProj: layout.offset(p + "self_attn.out_proj.weight"), outBias: layout.offset(p + "self_attn.out_proj.bias"),
                linear1: layout.offset(p + "linear1.weight"), bias1: layout.offset(p + "linear1.bias"),
                linear2: layout.offset(p + "linear2.weight"), bias2: layout.offset(p + "linear2.bias"),
                norm1: layout.offset(p + "norm1.weight"), norm1Bias: layout.offset(p + "norm1.bias"),
                norm2: layout.offset(p + "norm2.weight"), norm2Bias: layout.offset(p + "norm2.bias"))
        }
    }

    /// P(buy) of each sequence, in order. Sequences of one length run together (each its own pass over its tokens),
    /// so no padding is ever computed.
    // (Callers in other modules reach the Float copy through the generic entry: not `exported`, see encode.)
    @_specialize(where T == Float)
    public func probabilities(_ sequences: [BOPSequence]) -> [Double] {
        var result = [Double](repeating: 0, count: sequences.count)
        // Chunks of up to 32 sequences keep a layer's activations in cache (with n = 50 its attention weights are
        // 2.5 MB); fewer when the sequences are long.
        for bucket in Dictionary(grouping: sequences.indices, by: { sequences[$0].length }).values {
            let n = sequences[bucket[0]].length
            let (square, overflow) = n.multipliedReportingOverflow(by: n * config.heads)
            let size = overflow ? 1 : Swift.max(1, Swift.min(32, (1 << 22) / Swift.max(square, 1)))
            for start in stride(from: 0, to: bucket.count, by: size) {
                let chunk = bucket[start..<Swift.min(start + size, bucket.count)]
                let pass = BOPPass(network: self, sequences: chunk.map { sequences[$0] }, keepsActivations: false)
                for (i, p) in zip(chunk, pass.probabilities) { result[i] = Double(p) }
            }
        }
        return result
    }
}

/// The forward pass of S sequences of one length n (`S·n` token rows), with what the backward pass needs.
struct BOPPass<T: DINOPScalar> {
    let network: BOPNetwork<T>
    let sequences: [BOPSequence]
    let n: Int, rows: Int
    /// Per layer: its input, Q|K|V, the attention probabilities (`S × g × n × n`), the heads' outputs, the first
    /// norm's normalised input and 1/σ, its output C, the feed-forward hidden (after relu), the second norm's.
    var inputs: [[T]] = [], qkv: [[T]] = [], attention: [[T]] = [], heads: [[T]] = []
    var norm1: [[T]] = [], rstd1: [[T]] = [], c: [[T]] = [], hidden: [[T]] = [], norm2: [[T]] = [], rstd2: [[T]] = []
    /// The last layer's output, `t_user`, the logits and P(buy).
    var output: [T] = [], user: [T] = [], logits: [T] = [], probabilities: [T] = []
    /// Training only, PyTorch's dropout sites of `nn.TransformerEncoderLayer` at rate `dropout`: the attention
    /// weights, the attention block's output, the feed-forward hidden and its output. Each mask is 0 or 1/(1 − p),
    /// per layer; empty without dropout. `hidden` keeps the relu output, `droppedHidden` what linear2 read.
    let dropout: T
    private var rng: SeededGenerator
    var attentionMask: [[T]] = [], blockMask: [[T]] = [], hiddenMask: [[T]] = [], outputMask: [[T]] = []
    var droppedHidden: [[T]] = []

    /// Whether the pass keeps what the backward pass needs (scoring does not: it would allocate and fault in every
    /// layer's activations, the S·g·n² attention weights among them, for nothing).
    let keepsActivations: Bool

    init(network: BOPNetwork<T>, sequences: [BOPSequence], dropout: Double = 0, seed: UInt64 = 0, keepsActivations: Bool = true) {
        self.keepsActivations = keepsActivations
        self.network = network
        self.sequences = sequences
        self.dropout = T(Swift.min(Swift.max(dropout, 0), 0.99))
        rng = SeededGenerator(seed: seed)
        n = sequences.first?.length ?? 1
        rows = sequences.count * n
        let d = network.config.width, values = network.values
        var x = [T](repeating: 0, count: rows * d)
        for (s, sequence) in sequences.enumerated() {
            for (j, row) in (sequence.history + [sequence.candidate]).enumerated() {
                let at = (s * n + j) * d
                for c in 0..<d {
                    x[at + c] = values[network.item + row * d + c] + (sequence.market.map { values[network.market + $0 * d + c] } ?? 0)
                }
            }
            // The candidate's DINOP representation, through bop.rep.weight [d, R] (no bias).
            if let rep = sequence.rep, let w = network.rep, let r = network.repWidth, rep.count == r {
                let at = (s * n + n - 1) * d
                for c in 0..<d {
                    var sum: T = 0
                    for k in 0..<r { sum += values[w + c * r + k] * T(rep[k]) }
                    x[at + c] += sum
                }
            }
        }
        for layer in network.layers { x = forward(layer, x) }
        output = x
        // t_user = mean of the history tokens' outputs (0 without history); the candidate's output is the last row.
        let count = sequences.count
        user = [T](repeating: 0, count: count * d)
        logits = [T](repeating: 0, count: count)
        probabilities = [T](repeating: 0, count: count)
        for s in 0..<count {
            let k = n - 1
            if k > 0 {
                for j in 0..<k { for c in 0..<d { user[s * d + c] += x[(s * n + j) * d + c] } }
                for c in 0..<d { user[s * d + c] /= T(k) }
            }
            var z = values[network.outBias]
            for c in 0..<d {
                z += values[network.out + c] * user[s * d + c] + values[network.out + d + c] * x[(s * n + n - 1) * d + c]
            }
            logits[s] = z
            probabilities[s] = 1 / (1 + T.exp(-z))
        }
    }

    /// One post-norm encoder layer (PyTorch's `nn.TransformerEncoderLayer`, relu, no dropout).
    private mutating func forward(_ layer: BOPNetwork<T>.LayerOffsets, _ x: [T]) -> [T] {
        let d = network.config.width, g = network.config.heads, dh = d / g, ff = network.config.ffn
        if keepsActivations { inputs.append(x) }
        // Q | K | V.
        var qkv = [T](repeating: 0, count: rows * 3 * d)
        dense(x, inCount: d, weight: layer.inProj, bias: layer.inBias, outCount: 3 * d, into: &qkv)
        // Each sequence, each head: softmax(Q_h K_hᵀ / √dh) V_h, every token seeing every token.
        // A scoring pass keeps no weights: one sequence's at a time, written over (the kernel writes every row in
        // full), instead of zeroing sequences × g × n² floats per layer.
        let reuse = !keepsActivations && dropout == 0, perSequence = g * n * n
        var probabilities = [T](repeating: 0, count: (reuse ? 1 : sequences.count) * perSequence)
        let attentionMask = mask(probabilities.count)
        var heads = [T](repeating: 0, count: rows * d)
        let scale = 1 / T(dh).squareRoot()
        let n = self.n, count = sequences.count
        qkv.withUnsafeBufferPointer { qkvBuffer in
        probabilities.withUnsafeMutableBufferPointer { pBuffer in
        heads.withUnsafeMutableBufferPointer { headsBuffer in
        attentionMask.withUnsafeBufferPointer { maskBuffer in
            let qkv = qkvBuffer.baseAddress!, probabilities = pBuffer.baseAddress!, heads = headsBuffer.baseAddress!
            // (An empty array's buffer may still have a base address.)
            let dropped = maskBuffer.isEmpty ? nil : maskBuffer.baseAddress
            if T.self == Float.self {
                // The vectorised kernel (C); the generic loops below are the float64 path of the gradient checks.
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * dh * n)
                defer { scratch.deallocate() }
                for s in 0..<count {
                    dinop_attention(asFloat(qkv + s * n * 3 * d), n, d, g, Float(scale), asFloat(probabilities + (reuse ? 0 : s * perSequence)),
                                    dropped.map { asFloat($0 + s * g * n * n) }, asFloat(heads + s * n * d), scratch)
                }
                return
            }
            for s in 0..<count {
                for h in 0..<g {
                    for i in 0..<n {
                        let q = qkv + (s * n + i) * 3 * d + h * dh
                        let row = probabilities + (reuse ? 0 : s * perSequence) + (h * n + i) * n
                        var top = -T.infinity
                        for j in 0..<n {
                            let key = qkv + (s * n + j) * 3 * d + d + h * dh
                            var dot: T = 0
                            for c in 0..<dh { dot += q[c] * key[c] }
                            row[j] = dot * scale
                            top = Swift.max(top, row[j])
                        }
                        var total: T = 0
                        for j in 0..<n {
                            row[j] = T.exp(row[j] - top)
                            total += row[j]
                        }
                        let inverse = 1 / total, out = heads + (s * n + i) * d + h * dh
                        let rowMask = dropped.map { $0 + ((s * g + h) * n + i) * n }
                        for j in 0..<n {
                            row[j] *= inverse
                            let weight = row[j] * (rowMask?[j] ?? 1)
                            let v = qkv + (s * n + j) * 3 * d + 2 * d + h * dh
                            for c in 0..<dh { out[c] += weight * v[c] }
                        }
                    }
                }
            }
        }}}}
        var x1 = [T](repeating: 0, count: rows * d)
        dense(heads, inCount: d, weight: layer.outProj, bias: layer.outBias, outCount: d, into: &x1)
        let blockMask = mask(x1.count)
        x1.applyDropout(blockMask)
        for i in x1.indices { x1[i] += x[i] }
        let (c, normalised1, rstd1) = layerNorm(x1, weight: layer.norm1, bias: layer.norm1Bias)
        var hidden = [T](repeating: 0, count: rows * ff)
        dense(c, inCount: d, weight: layer.linear1, bias: layer.bias1, outCount: ff, into: &hidden)
        for i in hidden.indices { hidden[i] = Swift.max(hidden[i], 0) }
        let hiddenMask = mask(hidden.count)
        var droppedHidden = hidden
        droppedHidden.applyDropout(hiddenMask)
        var x2 = [T](repeating: 0, count: rows * d)
        dense(droppedHidden, inCount: ff, weight: layer.linear2, bias: layer.bias2, outCount: d, into: &x2)
        let outputMask = mask(x2.count)
        x2.applyDropout(outputMask)
        for i in x2.indices { x2[i] += c[i] }
        let (y, normalised2, rstd2) = layerNorm(x2, weight: layer.norm2, bias: layer.norm2Bias)
        if keepsActivations {
            self.attentionMask.append(attentionMask)
            self.blockMask.append(blockMask)
            self.hiddenMask.append(hiddenMask)
            self.outputMask.append(outputMask)
            self.droppedHidden.append(droppedHidden)
            self.qkv.append(qkv)
            attention.append(probabilities)
            self.heads.append(heads)
            norm1.append(normalised1)
            self.rstd1.append(rstd1)
            self.c.append(c)
            self.hidden.append(hidden)
            norm2.append(normalised2)
            self.rstd2.append(rstd2)
        }
        return y
    }

    /// A dropout mask of `count` entries (0 with probability p, else 1/(1 − p)); empty without dropout. Each draw
    /// is 16 bits (p to 1/65,536), four to a random word: drawing masks was a fifth of a training step.
    private mutating func mask(_ count: Int) -> [T] {
        guard dropout > 0 else { return [] }
        let keep = 1 / (1 - dropout), threshold = UInt64((Double(dropout) * 65536).rounded())
        var mask = [T](repeating: keep, count: count)
        mask.withUnsafeMutableBufferPointer { out in
            var i = 0
            while i < count {
                var bits = rng.next()
                for _ in 0..<4 where i < count {
                    if bits & 0xffff < threshold { out[i] = 0 }
                    bits >>= 16
                    i += 1
                }
            }
        }
        return mask
    }

    /// `y = x Wᵀ + b` over the pass's rows.
    private func dense(_ x: [T], inCount: Int, weight: Int, bias: Int, outCount: Int, into y: inout [T]) {
        let values = network.values
        for r in 0..<rows { for j in 0..<outCount { y[r * outCount + j] = values[bias + j] } }
        values.withUnsafeBufferPointer { p in
            T.gemm(transA: false, transB: true, m: rows, n: outCount, k: inCount, alpha: 1, x, lda: inCount,
                   p.baseAddress! + weight, ldb: inCount, beta: 1, &y, ldc: outCount)
        }
    }

    /// Per token: `(x − mean) / sqrt(var + 1e-5) · weight + bias` (biased variance); also x̂ and 1/σ.
    private func layerNorm(_ x: [T], weight: Int, bias: Int) -> (y: [T], normalised: [T], rstd: [T]) {
        let d = network.config.width, values = network.values
        var y = x, normalised = x, rstd = [T](repeating: 0, count: rows)
        for r in 0..<rows {
            var mean: T = 0
            for c in 0..<d { mean += x[r * d + c] }
            mean /= T(d)
            var variance: T = 0
            for c in 0..<d { variance += (x[r * d + c] - mean) * (x[r * d + c] - mean) }
            variance /= T(d)
            let inverse = 1 / (variance + T(1e-5)).squareRoot()
            rstd[r] = inverse
            for c in 0..<d {
                let hat = (x[r * d + c] - mean) * inverse
                normalised[r * d + c] = hat
                y[r * d + c] = hat * values[weight + c] + values[bias + c]
            }
        }
        return (y, normalised, rstd)
    }
}

extension BOPNetwork {
    /// The mean binary cross-entropy of `sequences` against `labels` (bought or not); its gradient is added to
    /// `gradient` (the model's flat layout).
    @_specialize(where T == Float)
    ///
    /// `dropout` (training): PyTorch's four dropout sites per layer at that rate, masks drawn from `seed`.
    public func loss(_ sequences: [BOPSequence], labels: [Bool], gradient: inout [T], dropout: Double = 0,
                     seed: UInt64 = 0) -> Double {
        guard !sequences.isEmpty else { return 0 }
        let scale = 1 / T(sequences.count)
        var total = 0.0
        for bucket in Dictionary(grouping: sequences.indices, by: { sequences[$0].length }).values.sorted(by: { $0[0] < $1[0] }) {
            let pass = BOPPass(network: self, sequences: bucket.map { sequences[$0] }, dropout: dropout,
                               seed: seed ^ UInt64(bucket[0]) &* 0x9e37_79b9_7f4a_7c15)
            var dLogits = [T](repeating: 0, count: bucket.count)
            for (b, i) in bucket.enumerated() {
                let z = pass.logits[b], y: T = labels[i] ? 1 : 0
                // softplus(z) − y·z, computed stably.
                total += Double(Swift.max(z, 0) - z * y + T.log1p(T.exp(-Swift.abs(z))))
                dLogits[b] = (pass.probabilities[b] - y) * scale
            }
            pass.backward(dLogits: dLogits, into: &gradient)
        }
        return total / Double(sequences.count)
    }
}

extension Array where Element: DINOPScalar {
    /// Applies a dropout mask (0 or 1/(1 − p) per entry; empty: none) in place: forward to the values, backward to
    /// their gradient.
    mutating func applyDropout(_ mask: [Element]) {
        for i in mask.indices { self[i] *= mask[i] }
    }
}

/// The same memory as float32, for the C kernels (callers check `T.self == Float.self` first).
func asFloat<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
func asFloat<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
}

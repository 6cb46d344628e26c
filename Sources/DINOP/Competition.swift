import Foundation

/// MARKETS.md's `competition` object: the width `F` of each item's competition vector `f`, and whether items also
/// attend to their industry's items of the other markets (cooperation). Each key defaults on its own; an unknown
/// key is refused.
public struct CompetitionSizes: Codable, Equatable, Sendable, CustomStringConvertible {
    public var width = 32
    public var cooperation = true
    /// The widest `F` a file may ask for: products with the other sizes stay far from overflow.
    public static let largest = 1 << 16

    enum CodingKeys: String, CodingKey, CaseIterable {
        case width, cooperation
    }

    public init(width: Int = 32, cooperation: Bool = true) {
        self.width = width
        self.cooperation = cooperation
    }

    public init(from decoder: any Decoder) throws {
        if let problem = try unknownKey(decoder, CodingKeys.self, in: "competition") { throw ModelError.invalidConfig(problem) }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        width = try c.decodeIfPresent(Int.self, forKey: .width) ?? width
        cooperation = try c.decodeIfPresent(Bool.self, forKey: .cooperation) ?? cooperation
    }

    public var description: String { "width \(width), cooperation \(cooperation)" }
}

/// Where an item competes (MARKETS.md `competition`): its promotion, raw market and raw industry ids, compared
/// byte for byte (a missing id is the empty string and groups like any other).
public struct CompetitionKey: Hashable, Sendable {
    public let promotion: [UInt8], market: [UInt8], industry: [UInt8]

    public init(promotion: String, market: String?, industry: String?) {
        self.promotion = Array(promotion.utf8)
        self.market = Array((market ?? "").utf8)
        self.industry = Array((industry ?? "").utf8)
    }

    /// The key of items given none: they all compete in one group.
    static let unkeyed = CompetitionKey(promotion: "", market: nil, industry: nil)

    /// The industry across markets: the neighbours' scope.
    var industryScope: CompetitionKey { CompetitionKey(promotion: promotion, market: [], industry: industry) }

    private init(promotion: [UInt8], market: [UInt8], industry: [UInt8]) {
        (self.promotion, self.market, self.industry) = (promotion, market, industry)
    }
}

/// The `competition` tensors of a network, regrouped: each head's `comp.weight` (and `coop.weight`) stacked in the
/// fused heads' row order, so every head's term is one GEMM.
struct CompetitionWeights<T: DINOPScalar>: Sendable {
    let width: Int, cooperation: Bool
    /// `comp.fc.weight` `[F, R + D_m]` and its bias.
    let fcWeight: [T], fcBias: [T], inputWidth: Int
    /// θ = σ(comp.theta).
    let theta: T
    /// `[headHiddenWidth × F]` each; `coop` empty without cooperation.
    let comp: [T], coop: [T]

    init?(_ parameters: Parameters<T>, heads: [(head: Head, columns: Range<Int>)]) {
        let layout = parameters.layout, config = layout.config
        guard config.has(extension: ModelExtension.competition) else { return nil }
        width = config.competition.width
        cooperation = config.competition.cooperation
        fcWeight = Array(parameters["comp.fc.weight"])
        fcBias = Array(parameters["comp.fc.bias"])
        inputWidth = layout.require("comp.fc.weight").shape[1]
        let raw = parameters["comp.theta"].first ?? 0
        theta = 1 / (1 + T.exp(-raw))
        comp = heads.flatMap { Array(parameters["head.\($0.head.rawValue).comp.weight"]) }
        coop = cooperation ? heads.flatMap { Array(parameters["head.\($0.head.rawValue).coop.weight"]) } : []
    }
}

extension CompetitionWeights {
    /// Each item's `f = leaky_relu(comp.fc.weight · concat(rep, o) + comp.fc.bias)` (slope 0.01), `rows × F`, and the
    /// `concat(rep, o)` it read (`rows × (R + D_m)`). `rep`: `rows × R`; `o`: `rows × D_m`, or empty (zeros).
    func vectors(rep: [T], o: [T], rows n: Int, representationWidth r: Int) -> (input: [T], f: [T]) {
        let inWidth = inputWidth, dm = inWidth - r
        var input = [T](repeating: 0, count: n * inWidth)
        for i in 0..<n {
            input.replaceSubrange((i * inWidth)..<(i * inWidth + r), with: rep[(i * r)..<((i + 1) * r)])
            if dm > 0, !o.isEmpty {
                input.replaceSubrange((i * inWidth + r)..<((i + 1) * inWidth), with: o[(i * dm)..<((i + 1) * dm)])
            }
        }
        var f = [T](repeating: 0, count: n * width)
        for i in 0..<n { for j in 0..<width { f[i * width + j] = fcBias[j] } }
        input.withUnsafeBufferPointer { x in
            fcWeight.withUnsafeBufferPointer { w in
                f.withUnsafeMutableBufferPointer { y in
                    T.linear(rows: n, out: width, in: inWidth, x.baseAddress!, ldx: inWidth,
                             weight: w.baseAddress!, ldw: inWidth, accumulate: true, y.baseAddress!, ldy: width)
                }
            }
        }
        for j in f.indices where f[j] < 0 { f[j] *= 0.01 }
        return (input, f)
    }

    /// `c = θ f + (1 − θ) a`, elementwise.
    func competitive(f: [T], attended a: [T]) -> [T] {
        var c = a
        for j in c.indices { c[j] = theta * f[j] + (1 - theta) * c[j] }
        return c
    }

    /// Every head's `comp.weight · c_i` (plus `coop.weight · q_i` with cooperation) on the heads' first-layer
    /// pre-activations, `rows × headHiddenWidth` in the fused heads' column order.
    func headTerm(c: [T], q: [T], rows: Int, headHiddenWidth hw: Int) -> [T] {
        var term = [T](repeating: 0, count: rows * hw)
        term.withUnsafeMutableBufferPointer { out in
            for (vectors, matrix) in [(c, comp), (q, coop)] where !matrix.isEmpty && !vectors.isEmpty {
                vectors.withUnsafeBufferPointer { x in
                    matrix.withUnsafeBufferPointer { w in
                        T.linear(rows: rows, out: hw, in: width, x.baseAddress!, ldx: width,
                                 weight: w.baseAddress!, ldw: width, accumulate: true, out.baseAddress!, ldy: hw)
                    }
                }
            }
        }
        return term
    }
}

/// MARKETS.md `competition` over a set of items as of one day: each item's `f`, the competitive `c` over its group
/// and the cooperative `q` over its neighbours, computed in blocks (an online softmax over key blocks), so a group
/// of M items needs O(M·F) memory, never an M × M matrix. Keeps what its backward pass needs.
public struct CompetitionPass<T: DINOPScalar> {
    public let count: Int, width: Int
    /// `count × F` each; `q` is all zeros without cooperation.
    public private(set) var f: [T], c: [T], q: [T]
    /// `concat(rep, o)` of every item, `count × (R + D_m)`.
    let input: [T]
    let theta: T
    /// The competitive attentions (one per group) and the cooperative ones (one per market group with neighbours),
    /// each with its queries' attended vectors.
    private(set) var competitive: [(attention: OnlineAttention<T>, attended: [T])] = []
    private(set) var cooperative: [(attention: OnlineAttention<T>, attended: [T])] = []

    /// Queries per block and keys per block: a block's scores fit in a few hundred KB.
    static var queryBlock: Int { 128 }
    static var keyBlock: Int { 512 }

    /// `rep` (`count × R`) and `o` (`count × D_m`, or empty without domain-attention) of every item; `keys` where each
    /// competes; `seen`: whether it has a day by the as-of day (an unseen item is no other item's competitor or
    /// neighbour, but is itself predicted with its own).
    init(network: Network<T>, weights: CompetitionWeights<T>, rep: [T], o: [T], keys: [CompetitionKey], seen: [Bool]) {
        let n = keys.count, width = weights.width, r = network.representationWidth
        count = n
        self.width = width
        theta = weights.theta
        let (input, f) = weights.vectors(rep: rep, o: o, rows: n, representationWidth: r)
        self.input = input
        self.f = f

        let attended = CompetitionAttention(f: f, width: width, keys: keys, seen: seen, cooperation: weights.cooperation)
        competitive = attended.competitive
        cooperative = attended.cooperative
        q = attended.q
        // c_i = θ f_i + (1 − θ) Σ_{j ∈ C_t(i)} β_ij f_j.
        c = weights.competitive(f: f, attended: attended.a)
    }

    /// The gradient at every item's `concat(rep, o)` (`count × (R + D_m)`), given the gradient at `c` and `q`;
    /// `comp.fc`'s and `comp.theta`'s into `gradient`. Through the attentions it reaches every item whose `f` another
    /// item read: its group mates' and neighbours' losses move it too.
    func backward(dc: [T], dq: [T], weights: CompetitionWeights<T>, layout: ParameterLayout, into gradient: inout Parameters<T>) -> [T] {
        let F = width, inWidth = weights.inputWidth
        var df = [T](repeating: 0, count: count * F)
        // c = θ f + (1 − θ) a: df += θ dc, da = (1 − θ) dc, dθ = Σ dc · (f − a), θ = σ(logit).
        var dTheta: T = 0
        for (attention, attended) in competitive {
            var dAttended = [T](repeating: 0, count: attended.count)
            for (row, i) in attention.queries.enumerated() {
                for j in 0..<F {
                    let g = dc[i * F + j]
                    df[i * F + j] += theta * g
                    dAttended[row * F + j] = (1 - theta) * g
                    dTheta += g * (f[i * F + j] - attended[row * F + j])
                }
            }
            attention.backward(f, attended: attended, dAttended: dAttended, into: &df)
        }
        for (attention, attended) in cooperative {
            var dAttended = [T](repeating: 0, count: attended.count)
            for (row, i) in attention.queries.enumerated() {
                dAttended.replaceSubrange((row * F)..<((row + 1) * F), with: dq[(i * F)..<((i + 1) * F)])
            }
            attention.backward(f, attended: attended, dAttended: dAttended, into: &df)
        }
        gradient.values[layout.require("comp.theta").offset] += dTheta * theta * (1 - theta)
        // Through the leaky relu (its slope read off f's sign, which the pre-activation's is), then comp.fc.
        for j in df.indices where f[j] <= 0 { df[j] *= 0.01 }
        let w = layout.require("comp.fc.weight"), b = layout.require("comp.fc.bias")
        var dInput = [T](repeating: 0, count: count * inWidth)
        gradient.values.withUnsafeMutableBufferPointer { grad in
            T.gemm(transA: true, transB: false, m: F, n: inWidth, k: count, alpha: 1, df, lda: F, input, ldb: inWidth,
                   beta: 1, grad.baseAddress! + w.offset, ldc: inWidth)
            for i in 0..<count { for j in 0..<F { grad[b.offset + j] += df[i * F + j] } }
        }
        T.gemm(transA: false, transB: false, m: count, n: inWidth, k: F, alpha: 1, df, lda: F, weights.fcWeight,
               ldb: inWidth, beta: 0, &dInput, ldc: inWidth)
        return dInput
    }
}

/// MARKETS.md `competition`'s two attentions over items' `f` as of one day, without the model's weights (what an
/// industry stage computes at a day's close): per item `a_i = Σ_{j ∈ C_t(i)} β_ij f_j` over its group (the group's
/// seen items, and the item itself), so that `c_i = θ f_i + (1 − θ) a_i`; and `q_i` over its neighbours (the
/// industry's seen items of the other markets; zeros with none, or without cooperation). Blocked: a group of M
/// items holds O(M·F) memory.
public struct CompetitionAttention<T: DINOPScalar> {
    /// `count × F` each.
    public let a: [T], q: [T]
    /// The attentions and each one's attended vectors, for the backward pass.
    let competitive: [(attention: OnlineAttention<T>, attended: [T])]
    let cooperative: [(attention: OnlineAttention<T>, attended: [T])]

    /// `f`: `keys.count × width`; `keys`: where each item competes; `seen`: whether it has a day by the as-of day.
    @_specialize(exported: true, where T == Float)
    public init(f: [T], width: Int, keys: [CompetitionKey], seen: [Bool], cooperation: Bool) {
        let n = keys.count
        var groups: [CompetitionKey: [Int]] = [:], order: [CompetitionKey] = []
        for (i, key) in keys.enumerated() {
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(i)
        }
        var a = [T](repeating: 0, count: n * width), competitive: [(attention: OnlineAttention<T>, attended: [T])] = []
        for key in order {
            let members = groups[key] ?? []
            var attention = OnlineAttention<T>(queries: members, keys: members.filter { seen[$0] },
                                               selfKey: members.map { !seen[$0] }, width: width)
            let attended = attention.run(f)
            for (row, i) in members.enumerated() {
                a.replaceSubrange((i * width)..<((i + 1) * width), with: attended[(row * width)..<((row + 1) * width)])
            }
            competitive.append((attention, attended))
        }
        var q = [T](repeating: 0, count: n * width), cooperative: [(attention: OnlineAttention<T>, attended: [T])] = []
        if cooperation {
            var industries: [CompetitionKey: [[Int]]] = [:], industryOrder: [CompetitionKey] = []
            for key in order {
                if industries[key.industryScope] == nil { industryOrder.append(key.industryScope) }
                industries[key.industryScope, default: []].append(groups[key] ?? [])
            }
            for industry in industryOrder {
                let marketGroups = industries[industry] ?? []
                guard marketGroups.count > 1 else { continue }
                for (m, members) in marketGroups.enumerated() {
                    let neighbours = marketGroups.enumerated().filter { $0.offset != m }.flatMap { $0.element.filter { seen[$0] } }
                    guard !neighbours.isEmpty else { continue }
                    var attention = OnlineAttention<T>(queries: members, keys: neighbours, selfKey: [], width: width)
                    let attended = attention.run(f)
                    for (row, i) in members.enumerated() {
                        q.replaceSubrange((i * width)..<((i + 1) * width), with: attended[(row * width)..<((row + 1) * width)])
                    }
                    cooperative.append((attention, attended))
                }
            }
        }
        (self.a, self.q, self.competitive, self.cooperative) = (a, q, competitive, cooperative)
    }
}

/// Softmax attention of query rows over key rows of the same `f`, one key block at a time: per query the running
/// maximum score, the sum of exponentials and the weighted sum of keys (as the day pooling keeps them). A query
/// may also attend to itself (an unseen item in its own group). Its backward pass recomputes the scores block by
/// block from the kept maximum and sum, as FlashAttention does.
struct OnlineAttention<T: DINOPScalar> {
    let queries: [Int], keys: [Int]
    /// Per query, whether it also attends to itself; empty for none.
    let selfKey: [Bool]
    let width: Int
    let scale: T
    var maximum: [T], total: [T]

    init(queries: [Int], keys: [Int], selfKey: [Bool], width: Int) {
        self.queries = queries
        self.keys = keys
        self.selfKey = selfKey
        self.width = width
        scale = 1 / T(width).squareRoot()
        maximum = Array(repeating: -.infinity, count: queries.count)
        total = Array(repeating: 0, count: queries.count)
    }

    /// Each query's attended vector, `queries.count × F` (zeros for a query that attends to nothing).
    mutating func run(_ f: [T]) -> [T] {
        let F = width
        var sum = [T](repeating: 0, count: queries.count * F)
        var decay = [T](repeating: 0, count: Swift.min(Self.queryBlock, queries.count))
        forEachBlock(f) { queryStart, qn, keyIndices, kn, scores, _, keyRows in
            // Rescale each query's running state to the block's new maximum; scores become weights.
            maximum.withUnsafeMutableBufferPointer { m in
                total.withUnsafeMutableBufferPointer { t in
                    T.onlineSoftmax(scores, rows: qn, columns: kn, maximum: m.baseAddress! + queryStart,
                                    total: t.baseAddress! + queryStart, decay: &decay)
                }
            }
            for r in 0..<qn where decay[r] != 1 {
                for j in 0..<F { sum[(queryStart + r) * F + j] *= decay[r] }
            }
            // sum += weights · K
            sum.withUnsafeMutableBufferPointer { out in
                T.gemm(transA: false, transB: false, m: qn, n: F, k: kn, alpha: 1, scores, lda: kn, keyRows, ldb: F,
                       beta: 1, out.baseAddress! + queryStart * F, ldc: F)
            }
        }
        for (row, i) in queries.enumerated() where selfKey.indices.contains(row) && selfKey[row] {
            let score = dot(f, i, i) * scale
            let newMax = Swift.max(maximum[row], score)
            let decay = maximum[row] == -.infinity ? 0 : T.exp(maximum[row] - newMax)
            let weight = T.exp(score - newMax)
            maximum[row] = newMax
            total[row] = total[row] * decay + weight
            for j in 0..<F { sum[row * F + j] = sum[row * F + j] * decay + weight * f[i * F + j] }
        }
        for r in queries.indices where total[r] > 0 {
            let inverse = 1 / total[r]
            for j in 0..<F { sum[r * F + j] *= inverse }
        }
        return sum
    }

    /// Adds to `df` the gradient through this attention (its queries', keys' and values' parts), given the gradient
    /// at each query's attended vector. With P the weights and dP = dA · Kᵀ: dS = P ⊙ (dP − rowsum(dA ⊙ A)).
    func backward(_ f: [T], attended: [T], dAttended: [T], into df: inout [T]) {
        let F = width
        var d = [T](repeating: 0, count: queries.count)
        for r in queries.indices { for j in 0..<F { d[r] += dAttended[r * F + j] * attended[r * F + j] } }
        var dKeys = [T](repeating: 0, count: keys.count * F)
        var dQueries = [T](repeating: 0, count: queries.count * F)
        var queryGradient = [T](repeating: 0, count: Swift.min(Self.queryBlock, queries.count) * F)
        var dScores = [T](repeating: 0, count: Swift.min(Self.queryBlock, queries.count) * Swift.min(Self.keyBlock, keys.count))
        forEachBlock(f) { queryStart, qn, keyStart, kn, scores, queryRows, keyRows in
            for r in 0..<qn {
                for j in 0..<F { queryGradient[r * F + j] = dAttended[(queryStart + r) * F + j] }
            }
            dScores.withUnsafeMutableBufferPointer { ds in
                // dP = dA · Kᵀ
                T.gemm(transA: false, transB: true, m: qn, n: kn, k: F, alpha: 1, queryGradient, lda: F, keyRows, ldb: F,
                       beta: 0, ds.baseAddress!, ldc: kn)
                for r in 0..<qn {
                    let q = queryStart + r
                    for j in 0..<kn {
                        let p = total[q] > 0 ? T.exp(scores[r * kn + j] - maximum[q]) / total[q] : 0
                        scores[r * kn + j] = p
                        ds[r * kn + j] = p * (ds[r * kn + j] - d[q])
                    }
                }
                dQueries.withUnsafeMutableBufferPointer { dq in
                    // Queries: scale · dS · K
                    T.gemm(transA: false, transB: false, m: qn, n: F, k: kn, alpha: scale, ds.baseAddress!, lda: kn,
                           keyRows, ldb: F, beta: 1, dq.baseAddress! + queryStart * F, ldc: F)
                }
                dKeys.withUnsafeMutableBufferPointer { dk in
                    // Keys: scale · dSᵀ · Q; values: Pᵀ · dA.
                    T.gemm(transA: true, transB: false, m: kn, n: F, k: qn, alpha: scale, ds.baseAddress!, lda: kn,
                           queryRows, ldb: F, beta: 1, dk.baseAddress! + keyStart * F, ldc: F)
                    queryGradient.withUnsafeBufferPointer { dA in
                        T.gemm(transA: true, transB: false, m: kn, n: F, k: qn, alpha: 1, scores, lda: kn, dA.baseAddress!,
                               ldb: F, beta: 1, dk.baseAddress! + keyStart * F, ldc: F)
                    }
                }
            }
        }
        for (row, i) in queries.enumerated() {
            var p: T = 0, dp: T = 0
            if selfKey.indices.contains(row), selfKey[row], total[row] > 0 {
                p = T.exp(dot(f, i, i) * scale - maximum[row]) / total[row]
                for j in 0..<F { dp += dAttended[row * F + j] * f[i * F + j] }
            }
            let ds = p * (dp - d[row])
            for j in 0..<F {
                // As a query (and, for its own key, as key and value too).
                df[i * F + j] += dQueries[row * F + j] + 2 * scale * ds * f[i * F + j] + p * dAttended[row * F + j]
            }
        }
        for (r, k) in keys.enumerated() { for j in 0..<F { df[k * F + j] += dKeys[r * F + j] } }
    }

    private func dot(_ f: [T], _ i: Int, _ j: Int) -> T {
        var sum: T = 0
        for d in 0..<width { sum += f[i * width + d] * f[j * width + d] }
        return sum
    }

    static var queryBlock: Int { CompetitionPass<T>.queryBlock }
    static var keyBlock: Int { CompetitionPass<T>.keyBlock }

    /// Calls `body` for every (query block, key block) with the block's scaled scores `Q Kᵀ / √F` (`qn × kn`,
    /// writable), its query rows and key rows (`qn × F`, `kn × F`).
    private func forEachBlock(_ f: [T], _ body: (_ queryStart: Int, _ qn: Int, _ keyStart: Int, _ kn: Int,
                                                 _ scores: UnsafeMutablePointer<T>, _ queryRows: UnsafePointer<T>,
                                                 _ keyRows: UnsafePointer<T>) -> Void) {
        guard !keys.isEmpty, !queries.isEmpty else { return }
        let F = width, qb = Self.queryBlock, kb = Self.keyBlock
        // Every query's and key's row gathered once (O(M·F)): gathering per block pair would copy M²·F / block floats.
        var queryRows = [T](repeating: 0, count: queries.count * F), keyRows = [T](repeating: 0, count: keys.count * F)
        for (r, i) in queries.enumerated() { queryRows.replaceSubrange((r * F)..<((r + 1) * F), with: f[(i * F)..<((i + 1) * F)]) }
        for (r, k) in keys.enumerated() { keyRows.replaceSubrange((r * F)..<((r + 1) * F), with: f[(k * F)..<((k + 1) * F)]) }
        var scores = [T](repeating: 0, count: Swift.min(qb, queries.count) * Swift.min(kb, keys.count))
        queryRows.withUnsafeBufferPointer { qp in keyRows.withUnsafeBufferPointer { kp in
            scores.withUnsafeMutableBufferPointer { sp in
                for keyStart in stride(from: 0, to: keys.count, by: kb) {
                    let kn = Swift.min(kb, keys.count - keyStart), block = kp.baseAddress! + keyStart * F
                    for queryStart in stride(from: 0, to: queries.count, by: qb) {
                        let qn = Swift.min(qb, queries.count - queryStart), rows = qp.baseAddress! + queryStart * F
                        T.gemm(transA: false, transB: true, m: qn, n: kn, k: F, alpha: scale, rows, lda: F, block, ldb: F,
                               beta: 0, sp.baseAddress!, ldc: kn)
                        body(queryStart, qn, keyStart, kn, sp.baseAddress!, rows, block)
                    }
                }
            }
        }}
    }
}

extension CompetitionPass {
    /// Every head's competition term on the heads' first-layer pre-activations (`CompetitionWeights.headTerm`).
    func headTerm(_ weights: CompetitionWeights<T>, headHiddenWidth width: Int) -> [T] {
        weights.headTerm(c: c, q: q, rows: count, headHiddenWidth: width)
    }
}

extension Scorer {
    /// Predictions as of one day with MARKETS.md `competition` (the plain ones without it): each item holds its
    /// days up to that day (an item without one is not yet seen) and where it competes. Every item's `f` is
    /// computed first; then its group's and neighbours' attention; then the heads.
    @_specialize(exported: true, where T == Float)
    public mutating func predict(competing items: [(item: EncodedItem<T>, key: CompetitionKey)],
                                 representation: Bool = false) -> [Prediction] {
        let encoded = items.map(\.item)
        guard let weights = network.competition else { return predict(encoded, representation: representation) }
        guard !items.isEmpty else { return [] }
        let n = items.count, r = network.representationWidth, dm = weights.inputWidth - r
        let hw = network.headHiddenWidth
        var batches: [(batch: ItemBatch<T>, order: [Int])] = []
        var rep = [T](repeating: 0, count: n * r), o = [T](repeating: 0, count: n * dm)
        for chunkStart in stride(from: 0, to: n, by: capacity) {
            let (batch, order) = applyEveryDay(encoded, chunkStart..<Swift.min(chunkStart + capacity, n))
            assembleRepresentations(batch, first: 0, rows: order.count)
            for (row, i) in order.enumerated() {
                rep.replaceSubrange((i * r)..<((i + 1) * r), with: self.rep[(row * r)..<((row + 1) * r)])
                if dm > 0, !batch.o.isEmpty {
                    o.replaceSubrange((i * dm)..<((i + 1) * dm), with: batch.o[(row * dm)..<((row + 1) * dm)])
                }
            }
            batches.append((batch, order))
        }
        let pass = CompetitionPass(network: network, weights: weights, rep: rep, o: o, keys: items.map(\.key),
                                   seen: encoded.map { $0.dayCount > 0 })
        let term = pass.headTerm(weights, headHiddenWidth: hw)
        var predictions = [Prediction?](repeating: nil, count: n)
        for (batch, order) in batches {
            var chunkTerm = [T](repeating: 0, count: order.count * hw)
            for (row, i) in order.enumerated() {
                chunkTerm.replaceSubrange((row * hw)..<((row + 1) * hw), with: term[(i * hw)..<((i + 1) * hw)])
            }
            let chunk = self.predictions(batch, rows: order.count, representation: representation, competitionTerm: chunkTerm)
            for (row, prediction) in chunk.enumerated() { predictions[order[row]] = prediction }
        }
        return predictions.map { $0! }
    }
}

extension Scorer {
    /// MARKETS.md's `F`, nil for a model without `competition`.
    public var competitionWidth: Int? { network.competition?.width }

    /// Items `first ..< first + rows`' `f` as of the days applied to them, `rows × F`; nil without `competition`.
    /// What an item member sends the industry stage.
    @_specialize(exported: true, where T == Float)
    public mutating func competitionVectors(_ batch: ItemBatch<T>, first: Int = 0, rows: Int) -> [T]? {
        guard let weights = network.competition else { return nil }
        assembleRepresentations(batch, first: first, rows: rows)
        let r = network.representationWidth, dm = weights.inputWidth - r
        let o = dm > 0 && !batch.o.isEmpty ? Array(batch.o[(first * dm)..<((first + rows) * dm)]) : []
        return weights.vectors(rep: Array(rep[0..<(rows * r)]), o: o, rows: rows, representationWidth: r).f
    }

    /// Predictions of items `first ..< first + rows` with what the industry stage attended for them over their
    /// groups as of the same day (`CompetitionAttention`'s `a` and `q`, `rows × F` each): `c = θ f + (1 − θ) a` with
    /// each item's own `f`. Without `competition`, the plain predictions.
    @_specialize(exported: true, where T == Float)
    public mutating func predictions(_ batch: ItemBatch<T>, first: Int = 0, rows: Int, attended a: [T], neighbours q: [T],
                                     representation: Bool = false) -> [Prediction] {
        guard let weights = network.competition, let f = competitionVectors(batch, first: first, rows: rows),
              a.count == f.count, q.count == f.count else {
            return predictions(batch, first: first, rows: rows, representation: representation)
        }
        let term = weights.headTerm(c: weights.competitive(f: f, attended: a), q: q, rows: rows,
                                    headHiddenWidth: network.headHiddenWidth)
        return predictions(batch, first: first, rows: rows, representation: representation, competitionTerm: term)
    }
}

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

/// MARKETS.md `competition` over a set of items as of one day: each item's `f`, the competitive `c` over its group
/// and the cooperative `q` over its neighbours, computed in blocks (an online softmax over key blocks), so a group
/// of M items needs O(M·F) memory, never an M × M matrix.
public struct CompetitionPass<T: DINOPScalar> {
    public let count: Int, width: Int
    /// `count × F` each; `q` is all zeros without cooperation.
    public private(set) var f: [T], c: [T], q: [T]

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
        let dm = weights.inputWidth - r
        // f = leaky_relu(comp.fc.weight · concat(rep, o) + comp.fc.bias), slope 0.01.
        var input = [T](repeating: 0, count: n * weights.inputWidth)
        for i in 0..<n {
            input.replaceSubrange((i * weights.inputWidth)..<(i * weights.inputWidth + r), with: rep[(i * r)..<((i + 1) * r)])
            if dm > 0, !o.isEmpty {
                input.replaceSubrange((i * weights.inputWidth + r)..<((i + 1) * weights.inputWidth), with: o[(i * dm)..<((i + 1) * dm)])
            }
        }
        var f = [T](repeating: 0, count: n * width)
        for i in 0..<n { for j in 0..<width { f[i * width + j] = weights.fcBias[j] } }
        input.withUnsafeBufferPointer { x in
            weights.fcWeight.withUnsafeBufferPointer { w in
                f.withUnsafeMutableBufferPointer { y in
                    T.linear(rows: n, out: width, in: weights.inputWidth, x.baseAddress!, ldx: weights.inputWidth,
                             weight: w.baseAddress!, ldw: weights.inputWidth, accumulate: true, y.baseAddress!, ldy: width)
                }
            }
        }
        for j in f.indices where f[j] < 0 { f[j] *= 0.01 }
        self.f = f

        var groups: [CompetitionKey: [Int]] = [:]
        for (i, key) in keys.enumerated() { groups[key, default: []].append(i) }
        // c_i = θ f_i + (1 − θ) Σ_{j ∈ C_t(i)} β_ij f_j; C_t(i) = the group's seen items and i itself.
        var c = [T](repeating: 0, count: n * width)
        for members in groups.values {
            let competitors = members.filter { seen[$0] }
            var state = OnlineAttention<T>(queries: members, width: width)
            state.attend(f, keys: competitors)
            for (row, i) in members.enumerated() where !seen[i] { state.attend(f, row: row, key: i) }
            let attended = state.finish()
            for (row, i) in members.enumerated() {
                for j in 0..<width {
                    c[i * width + j] = weights.theta * f[i * width + j] + (1 - weights.theta) * attended[row * width + j]
                }
            }
        }
        self.c = c

        // q_i = Σ_{k ∈ K_t(i)} softmax_k(f_i · f_k / √F) f_k over the industry's seen items of the other markets.
        var q = [T](repeating: 0, count: n * width)
        if weights.cooperation {
            var industries: [CompetitionKey: [[Int]]] = [:]
            for (key, members) in groups { industries[key.industryScope, default: []].append(members) }
            for marketGroups in industries.values where marketGroups.count > 1 {
                for (a, members) in marketGroups.enumerated() {
                    var state = OnlineAttention<T>(queries: members, width: width)
                    for (b, others) in marketGroups.enumerated() where b != a { state.attend(f, keys: others.filter { seen[$0] }) }
                    let attended = state.finish()
                    for (row, i) in members.enumerated() {
                        q.replaceSubrange((i * width)..<((i + 1) * width), with: attended[(row * width)..<((row + 1) * width)])
                    }
                }
            }
        }
        self.q = q
    }
}

/// Softmax attention of some query rows over key rows of the same `f`, one key block at a time: per query the
/// running maximum score, the sum of exponentials and the weighted sum of keys (as the day pooling keeps them).
struct OnlineAttention<T: DINOPScalar> {
    let queries: [Int], width: Int
    let scale: T
    var maximum: [T], total: [T], sum: [T]

    init(queries: [Int], width: Int) {
        self.queries = queries
        self.width = width
        scale = 1 / T(width).squareRoot()
        maximum = Array(repeating: -.infinity, count: queries.count)
        total = Array(repeating: 0, count: queries.count)
        sum = Array(repeating: 0, count: queries.count * width)
    }

    /// Every query attends to every key of `keys` (indices into `f`'s rows).
    mutating func attend(_ f: [T], keys: [Int]) {
        guard !keys.isEmpty, !queries.isEmpty else { return }
        let F = width, qb = CompetitionPass<T>.queryBlock, kb = CompetitionPass<T>.keyBlock
        var keyRows = [T](repeating: 0, count: Swift.min(kb, keys.count) * F)
        var queryRows = [T](repeating: 0, count: Swift.min(qb, queries.count) * F)
        var scores = [T](repeating: 0, count: queryRows.count / F * (keyRows.count / F))
        for keyStart in stride(from: 0, to: keys.count, by: kb) {
            let kn = Swift.min(kb, keys.count - keyStart)
            for (r, k) in keys[keyStart..<(keyStart + kn)].enumerated() {
                keyRows.replaceSubrange((r * F)..<((r + 1) * F), with: f[(k * F)..<((k + 1) * F)])
            }
            for queryStart in stride(from: 0, to: queries.count, by: qb) {
                let qn = Swift.min(qb, queries.count - queryStart)
                for r in 0..<qn {
                    let i = queries[queryStart + r]
                    queryRows.replaceSubrange((r * F)..<((r + 1) * F), with: f[(i * F)..<((i + 1) * F)])
                }
                queryRows.withUnsafeBufferPointer { qp in keyRows.withUnsafeBufferPointer { kp in
                    scores.withUnsafeMutableBufferPointer { sp in
                        // scores = Q Kᵀ / √F
                        T.gemm(transA: false, transB: true, m: qn, n: kn, k: F, alpha: scale, qp.baseAddress!, lda: F,
                               kp.baseAddress!, ldb: F, beta: 0, sp.baseAddress!, ldc: kn)
                        // Rescale each query's running state to the block's new maximum; scores become weights.
                        for r in 0..<qn {
                            let row = sp.baseAddress! + r * kn, q = queryStart + r
                            var blockMax = maximum[q]
                            for j in 0..<kn { blockMax = Swift.max(blockMax, row[j]) }
                            let decay = maximum[q] == -.infinity ? 0 : T.exp(maximum[q] - blockMax)
                            var blockTotal: T = 0
                            for j in 0..<kn {
                                row[j] = T.exp(row[j] - blockMax)
                                blockTotal += row[j]
                            }
                            maximum[q] = blockMax
                            total[q] = total[q] * decay + blockTotal
                            for j in 0..<F { sum[q * F + j] *= decay }
                        }
                        // sum += weights · K
                        sum.withUnsafeMutableBufferPointer { out in
                            T.gemm(transA: false, transB: false, m: qn, n: F, k: kn, alpha: 1, sp.baseAddress!, lda: kn,
                                   kp.baseAddress!, ldb: F, beta: 1, out.baseAddress! + queryStart * F, ldc: F)
                        }
                    }
                }}
            }
        }
    }

    /// Query `row` also attends to the single key `key` (an unseen item's own vector in its group).
    mutating func attend(_ f: [T], row: Int, key: Int) {
        let F = width, i = queries[row]
        var score: T = 0
        for j in 0..<F { score += f[i * F + j] * f[key * F + j] }
        score *= scale
        let newMax = Swift.max(maximum[row], score)
        let decay = maximum[row] == -.infinity ? 0 : T.exp(maximum[row] - newMax)
        let weight = T.exp(score - newMax)
        maximum[row] = newMax
        total[row] = total[row] * decay + weight
        for j in 0..<F { sum[row * F + j] = sum[row * F + j] * decay + weight * f[key * F + j] }
    }

    /// Each query's attended vector, `queries.count × F` (zeros for a query that attended to nothing).
    func finish() -> [T] {
        var out = sum
        for r in queries.indices where total[r] > 0 {
            let inverse = 1 / total[r]
            for j in 0..<width { out[r * width + j] *= inverse }
        }
        return out
    }
}

extension CompetitionPass {
    /// Every head's `comp.weight · c_i` (plus `coop.weight · q_i` with cooperation) on the heads' first-layer
    /// pre-activations, `count × headHiddenWidth` in the fused heads' column order.
    func headTerm(_ weights: CompetitionWeights<T>, headHiddenWidth width: Int) -> [T] {
        var term = [T](repeating: 0, count: count * width)
        term.withUnsafeMutableBufferPointer { out in
            for (vectors, matrix) in [(c, weights.comp), (q, weights.coop)] where !matrix.isEmpty {
                vectors.withUnsafeBufferPointer { x in
                    matrix.withUnsafeBufferPointer { w in
                        T.linear(rows: count, out: width, in: self.width, x.baseAddress!, ldx: self.width,
                                 weight: w.baseAddress!, ldw: self.width, accumulate: true, out.baseAddress!, ldy: width)
                    }
                }
            }
        }
        return term
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

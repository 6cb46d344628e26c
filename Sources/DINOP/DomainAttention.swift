/// MARKETS.md `domain-attention` (CNAN-AT) over a batch of items: every field's gate from the shared unit
/// (`a_f`, read by `e_sii`), market m's gates (`a_f^m`) and representation `o`, and `o`'s term in the heads' first
/// layer; the activations the backward pass needs. Serving and training run this same code.
struct DomainPass<T: DINOPScalar> {
    let dims: DomainAttentionDims
    let count: Int
    /// Each item's `sii.emb` row and (with a listed market) `sii.spec` row per field.
    let rows: [[Int]], specRows: [[Int]]
    /// The items of each market present, by batch position; items without a listed market are in none.
    let groups: [(market: Int, items: [Int])]
    /// Shared unit over every (item, field) row, `count·n_f` rows: its input `s_f` and its activations.
    var shared: GateActivations<T>
    /// `concat_f(a_f · s_f)`, `count × n_f·d`: the input of `sii.fc`.
    var gatedEmbedding: [T]
    /// Per group, market m's unit over its items' (item, field) rows (input `e_f = concat(s_f, p_f)`).
    var market: [GateActivations<T>]
    /// Per group, `concat_f(a_f^m · e_f)` of its items, `items × n_f·(d+d')`.
    var specInput: [[T]]
    /// `o` of every item, `count × D_m` (zeros for an item without a listed market); empty when no item has one.
    var o: [T]
    /// `o` of every item, zeros when no item has a listed market (what competition reads).
    var oOfEveryItem: [T] { o.isEmpty ? Array(repeating: 0, count: count * dims.width) : o }
    /// `head.<k>.spec.weight[m] · o` of every item in the fused heads' column order, `count × headHiddenWidth`.
    var headTerm: [T]

    /// `rows[i]`: item i's `sii.emb` row per field; `specRows[i]`: its `sii.spec` rows (market-offset), used only
    /// when `markets[i]` is set.
    init(network: Network<T>, dims: DomainAttentionDims, rows: [[Int]], specRows: [[Int]], markets: [Int?]) {
        let b = rows.count, nf = dims.fields, d = dims.shared, dp = dims.specWidth, fw = dims.fieldWidth
        let tables = FieldTables(network.layout)
        self.dims = dims
        self.rows = rows
        self.specRows = specRows
        count = b
        var byMarket = [[Int]](repeating: [], count: dims.markets)
        for (i, m) in markets.enumerated() { if let m, m < dims.markets { byMarket[m].append(i) } }
        groups = byMarket.enumerated().filter { !$0.element.isEmpty }.map { ($0.offset, $0.element) }

        let values = network.parameters.values
        var sharedIn = [T](repeating: 0, count: b * nf * d)
        for i in 0..<b {
            for f in 0..<nf {
                let start = tables.shared[f] + rows[i][f] * d
                sharedIn.replaceSubrange(((i * nf + f) * d)..<((i * nf + f + 1) * d), with: values[start..<(start + d)])
            }
        }
        shared = GateActivations(network: network, dims: dims, unit: .shared, input: sharedIn, width: d)
        gatedEmbedding = sharedIn
        for r in 0..<(b * nf) { for j in 0..<d { gatedEmbedding[r * d + j] *= shared.gate[r] } }

        market = []
        specInput = []
        let hw = network.headHiddenWidth
        o = groups.isEmpty ? [] : Array(repeating: 0, count: b * dims.width)
        headTerm = Array(repeating: 0, count: b * hw)
        let (w, bias) = (network.layout.require("spec.fc.weight"), network.layout.require("spec.fc.bias"))
        for (m, items) in groups {
            var input = [T](repeating: 0, count: items.count * nf * fw)
            for (g, i) in items.enumerated() {
                for f in 0..<nf {
                    let start = (g * nf + f) * fw, specStart = tables.spec[f] + specRows[i][f] * dp
                    input.replaceSubrange(start..<(start + d), with: sharedIn[((i * nf + f) * d)..<((i * nf + f + 1) * d)])
                    input.replaceSubrange((start + d)..<(start + fw), with: values[specStart..<(specStart + dp)])
                }
            }
            let unit = GateActivations(network: network, dims: dims, unit: .market(m), input: input, width: fw)
            var gated = input
            for r in 0..<(items.count * nf) { for j in 0..<fw { gated[r * fw + j] *= unit.gate[r] } }
            // o = relu(spec.fc.weight[m] · gated + spec.fc.bias[m]), then its term in every head's first layer.
            var groupO = [T](repeating: 0, count: items.count * dims.width)
            for g in items.indices {
                for j in 0..<dims.width { groupO[g * dims.width + j] = values[bias.offset + m * dims.width + j] }
            }
            var groupTerm = [T](repeating: 0, count: items.count * hw)
            values.withUnsafeBufferPointer { p in
                T.linear(rows: items.count, out: dims.width, in: dims.specInput, gated, ldx: dims.specInput,
                         weight: p.baseAddress! + w.offset + m * dims.width * dims.specInput, ldw: dims.specInput,
                         accumulate: true, &groupO, ldy: dims.width)
                for j in groupO.indices { groupO[j] = Swift.max(groupO[j], 0) }
                groupTerm.withUnsafeMutableBufferPointer { term in
                    for (head, columns) in network.heads {
                        T.linear(rows: items.count, out: columns.count, in: dims.width, groupO, ldx: dims.width,
                                 weight: p.baseAddress! + network.headSpecOffset(head, market: m), ldw: dims.width,
                                 accumulate: false, term.baseAddress! + columns.lowerBound, ldy: hw)
                    }
                }
            }
            for (g, i) in items.enumerated() {
                o.replaceSubrange((i * dims.width)..<((i + 1) * dims.width), with: groupO[(g * dims.width)..<((g + 1) * dims.width)])
                headTerm.replaceSubrange((i * hw)..<((i + 1) * hw), with: groupTerm[(g * hw)..<((g + 1) * hw)])
            }
            market.append(unit)
            specInput.append(gated)
        }
    }

    /// Adds the gradient of the loss to `gradient`, given its gradient at `concat_f(a_f · s_f)` (`dGated`,
    /// `count × n_f·d`), at the heads' first-layer pre-activations (`dHeadHidden`, `count × headHiddenWidth`, after
    /// relu) and any more at `o` (`dO`, `count × D_m`, or empty): into `sii.emb`, `sii.spec`, both gate units,
    /// `spec.fc` and `head.<k>.spec.weight`.
    func backward(network: Network<T>, dGated: [T], dHeadHidden: [T], dO: [T], into gradient: inout Parameters<T>) {
        let nf = dims.fields, d = dims.shared, dp = dims.specWidth, fw = dims.fieldWidth, dm = dims.width
        let layout = network.layout, hw = network.headHiddenWidth, tables = FieldTables(layout)
        // d s_f, by (item, field) row; both units' inputs feed it.
        var dShared = shared.backwardThroughGating(dGated, network: network, gradient: &gradient)

        let specWeight = layout.require("spec.fc.weight"), specBias = layout.require("spec.fc.bias")
        for (group, (m, items)) in groups.enumerated() {
            let n = items.count
            var dHidden = [T](repeating: 0, count: n * hw), groupO = [T](repeating: 0, count: n * dm)
            for (g, i) in items.enumerated() {
                dHidden.replaceSubrange((g * hw)..<((g + 1) * hw), with: dHeadHidden[(i * hw)..<((i + 1) * hw)])
                groupO.replaceSubrange((g * dm)..<((g + 1) * dm), with: o[(i * dm)..<((i + 1) * dm)])
            }
            // Heads: d spec.weight[m] = dHiddenᵀ · o; d o = dHidden · spec.weight[m], plus dO; relu.
            var dPre = [T](repeating: 0, count: n * dm)
            gradient.values.withUnsafeMutableBufferPointer { grad in
            network.parameters.values.withUnsafeBufferPointer { params in
            dHidden.withUnsafeBufferPointer { dH in
                for (head, columns) in network.heads {
                    let at = network.headSpecOffset(head, market: m)
                    T.gemm(transA: true, transB: false, m: columns.count, n: dm, k: n, alpha: 1,
                           dH.baseAddress! + columns.lowerBound, lda: hw, groupO, ldb: dm, beta: 1, grad.baseAddress! + at, ldc: dm)
                    T.gemm(transA: false, transB: false, m: n, n: dm, k: columns.count, alpha: 1,
                           dH.baseAddress! + columns.lowerBound, lda: hw, params.baseAddress! + at, ldb: dm, beta: 1,
                           &dPre, ldc: dm)
                }
            }}}
            for (g, i) in items.enumerated() where !dO.isEmpty {
                for j in 0..<dm { dPre[g * dm + j] += dO[i * dm + j] }
            }
            for j in dPre.indices where groupO[j] <= 0 { dPre[j] = 0 }
            // spec.fc[m]: d weight = dPreᵀ · gated input, d bias = Σ dPre, d gated input = dPre · weight.
            let gated = specInput[group], unit = market[group]
            var dGatedSpec = [T](repeating: 0, count: n * dims.specInput)
            gradient.values.withUnsafeMutableBufferPointer { grad in
                T.gemm(transA: true, transB: false, m: dm, n: dims.specInput, k: n, alpha: 1, dPre, lda: dm,
                       gated, ldb: dims.specInput, beta: 1,
                       grad.baseAddress! + specWeight.offset + m * dm * dims.specInput, ldc: dims.specInput)
                for g in 0..<n { for j in 0..<dm { grad[specBias.offset + m * dm + j] += dPre[g * dm + j] } }
            }
            network.parameters.values.withUnsafeBufferPointer { p in
                T.gemm(transA: false, transB: false, m: n, n: dims.specInput, k: dm, alpha: 1, dPre, lda: dm,
                       p.baseAddress! + specWeight.offset + m * dm * dims.specInput, ldb: dims.specInput, beta: 0,
                       &dGatedSpec, ldc: dims.specInput)
            }
            // a_f^m · e_f, then market m's unit.
            let dInput = unit.backwardThroughGating(dGatedSpec, network: network, gradient: &gradient)
            // e_f = concat(s_f, p_f): the shared part joins d s_f, the specific part lands in sii.spec.
            for (g, i) in items.enumerated() {
                for f in 0..<nf {
                    let r = g * nf + f
                    for j in 0..<d { dShared[(i * nf + f) * d + j] += dInput[r * fw + j] }
                    let row = tables.spec[f] + specRows[i][f] * dp
                    for j in 0..<dp { gradient.values[row + j] += dInput[r * fw + d + j] }
                }
            }
        }
        for i in 0..<count {
            for f in 0..<nf {
                let row = tables.shared[f] + rows[i][f] * d
                for j in 0..<d { gradient.values[row + j] += dShared[(i * nf + f) * d + j] }
            }
        }
    }
}

/// Where each field's `sii.emb.<f>` and `sii.spec.<f>` start in the flat parameters, in `sii_fields` order.
private struct FieldTables {
    let shared: [Int], spec: [Int]

    init(_ layout: ParameterLayout) {
        shared = layout.config.siiFields.map { layout.require("sii.emb.\($0)").offset }
        spec = layout.config.siiFields.map { layout.require("sii.spec.\($0)").offset }
    }
}

extension Network {
    /// Where `head.<k>.spec.weight[m]` (`[H_k × D_m]`) starts in the flat parameters.
    func headSpecOffset(_ head: Head, market m: Int) -> Int {
        let spec = layout.require("head.\(head.rawValue).spec.weight")
        return spec.offset + m * (spec.count / Swift.max(spec.shape[0], 1))
    }
}

/// Which gate unit: the shared `gate.c`, or market m's slice of `gate.m`.
enum GateUnit: Equatable {
    case shared
    case market(Int)
}

/// One gate unit over `rows` inputs: `σ(l2 · σ(l1 · σ(l0 · x + b0) + b1) + b2)`, with its activations.
struct GateActivations<T: DINOPScalar> {
    let unit: GateUnit
    let dims: DomainAttentionDims
    let rows: Int, width: Int
    let input: [T]
    var hidden0: [T], hidden1: [T], gate: [T]

    /// The six tensors' offsets in the flat parameters, for this unit (market m's slice of `gate.m.*`).
    static func offsets(_ layout: ParameterLayout, _ dims: DomainAttentionDims, _ unit: GateUnit) -> [Int] {
        let names = ["l0.weight", "l0.bias", "l1.weight", "l1.bias", "l2.weight", "l2.bias"]
        return names.map { name in
            switch unit {
            case .shared: return layout.require("gate.c.\(name)").offset
            case .market(let m):
                let spec = layout.require("gate.m.\(name)")
                return spec.offset + m * (spec.count / Swift.max(dims.markets, 1))
            }
        }
    }

    init(network: Network<T>, dims: DomainAttentionDims, unit: GateUnit, input: [T], width: Int) {
        let g0 = dims.gate0, g1 = dims.gate1
        self.unit = unit
        self.dims = dims
        self.width = width
        self.input = input
        rows = input.count / width
        let at = Self.offsets(network.layout, dims, unit)
        hidden0 = Array(repeating: 0, count: rows * g0)
        hidden1 = Array(repeating: 0, count: rows * g1)
        gate = Array(repeating: 0, count: rows)
        let n = rows
        network.parameters.values.withUnsafeBufferPointer { p in
            let base = p.baseAddress!
            func layer(_ x: [T], _ inCount: Int, _ w: Int, _ b: Int, _ outCount: Int, _ y: inout [T]) {
                for r in 0..<n { for j in 0..<outCount { y[r * outCount + j] = base[b + j] } }
                T.linear(rows: n, out: outCount, in: inCount, x, ldx: inCount, weight: base + w, ldw: inCount,
                         accumulate: true, &y, ldy: outCount)
                y.withUnsafeMutableBufferPointer { T.sigmoid($0.baseAddress!, count: n * outCount) }
            }
            layer(input, width, at[0], at[1], g0, &hidden0)
            layer(hidden0, g0, at[2], at[3], g1, &hidden1)
            layer(hidden1, g1, at[4], at[5], 1, &gate)
        }
    }

    /// Backward through `gate · input` (each row's input scaled by its gate) and the unit itself: adds the unit's
    /// parameter gradients and returns the gradient at its input (both paths), given the gradient at the product.
    func backwardThroughGating(_ dProduct: [T], network: Network<T>, gradient: inout Parameters<T>) -> [T] {
        var dInput = [T](repeating: 0, count: rows * width), dGate = [T](repeating: 0, count: rows)
        for r in 0..<rows {
            var dot: T = 0
            for j in 0..<width {
                dot += dProduct[r * width + j] * input[r * width + j]
                dInput[r * width + j] = dProduct[r * width + j] * gate[r]
            }
            dGate[r] = dot
        }
        backward(network: network, dGate: dGate, addingInputGradientTo: &dInput, gradient: &gradient)
        return dInput
    }

    /// Adds the unit's parameter gradients, given the loss's gradient at each row's gate, and its input gradient
    /// to `dInput`.
    func backward(network: Network<T>, dGate: [T], addingInputGradientTo dInput: inout [T],
                  gradient: inout Parameters<T>) {
        let g0 = dims.gate0, g1 = dims.gate1
        let at = Self.offsets(network.layout, dims, unit), n = rows
        guard n > 0 else { return }
        // Through each sigmoid: d pre = d out · out (1 − out).
        let dPre2 = (0..<n).map { dGate[$0] * gate[$0] * (1 - gate[$0]) }
        var dHidden1 = [T](repeating: 0, count: n * g1), dHidden0 = [T](repeating: 0, count: n * g0)
        gradient.values.withUnsafeMutableBufferPointer { grad in
        network.parameters.values.withUnsafeBufferPointer { params in
            let g = grad.baseAddress!, p = params.baseAddress!
            func layer(dPre: [T], x: [T], inCount: Int, outCount: Int, w: Int, b: Int, dX: inout [T]) {
                T.gemm(transA: true, transB: false, m: outCount, n: inCount, k: n, alpha: 1, dPre, lda: outCount,
                       x, ldb: inCount, beta: 1, g + w, ldc: inCount)
                for r in 0..<n { for j in 0..<outCount { g[b + j] += dPre[r * outCount + j] } }
                T.gemm(transA: false, transB: false, m: n, n: inCount, k: outCount, alpha: 1, dPre, lda: outCount,
                       p + w, ldb: inCount, beta: 1, &dX, ldc: inCount)
            }
            layer(dPre: dPre2, x: hidden1, inCount: g1, outCount: 1, w: at[4], b: at[5], dX: &dHidden1)
            let dPre1 = (0..<(n * g1)).map { dHidden1[$0] * hidden1[$0] * (1 - hidden1[$0]) }
            layer(dPre: dPre1, x: hidden0, inCount: g0, outCount: g1, w: at[2], b: at[3], dX: &dHidden0)
            let dPre0 = (0..<(n * g0)).map { dHidden0[$0] * hidden0[$0] * (1 - hidden0[$0]) }
            layer(dPre: dPre0, x: input, inCount: width, outCount: g0, w: at[0], b: at[1], dX: &dInput)
        }}
    }
}

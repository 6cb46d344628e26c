/// The product of `values`, or nil when it overflows.
func checkedProduct(_ values: [Int]) -> Int? {
    var product = 1
    for value in values {
        let (result, overflow) = product.multipliedReportingOverflow(by: value)
        guard !overflow else { return nil }
        product = result
    }
    return product
}

/// One named tensor of the weight file and where it lives in the flat parameter buffer.
public struct TensorSpec: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    /// Normalisation statistics are fitted from data, not learned: they take no gradient step.
    public let trainable: Bool
    /// Weight matrices take the L2 penalty; biases, embeddings' and norms do not.
    public let decays: Bool
    /// Used in training only (MARKETS.md's domain discriminators `dom.*`): optional in a file, ignored when serving.
    public var trainingOnly = false

    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }

    /// How a MARKETS.md tensor is indexed by market: `mkt.*` has one column per market; domain-attention's
    /// `sii.spec.<f>`, `gate.m.*`, `spec.fc.*`, `head.<k>.spec.weight` one leading block per market. Nil for a shared
    /// tensor, and for the training-only discriminators (which no prediction reads).
    public var marketIndexing: MarketIndexing? {
        if name.hasPrefix("mkt."), shape.count == 2 { return .columns }
        if name.hasPrefix("sii.spec.") || name.hasPrefix("gate.m.") || name.hasPrefix("spec.fc.")
            || (name.hasPrefix("head.") && name.hasSuffix(".spec.weight")) {
            return .leadingBlocks
        }
        return nil
    }

    /// The market of element `i` (a flat index inside `range`) of a market-indexed tensor over `markets` markets.
    public func market(ofElement i: Int, markets: Int) -> Int? {
        guard let indexing = marketIndexing, markets > 0 else { return nil }
        switch indexing {
        case .columns: return (i - offset) % markets
        case .leadingBlocks: return (i - offset) / (count / markets)
        }
    }

    /// The elements of market m, as flat ranges.
    public func elements(ofMarket m: Int, markets: Int) -> [Range<Int>] {
        guard let indexing = marketIndexing, m < markets else { return [] }
        switch indexing {
        case .columns:
            return (0..<shape[0]).map { row in (offset + row * markets + m)..<(offset + row * markets + m + 1) }
        case .leadingBlocks:
            let size = count / markets
            return [(offset + m * size)..<(offset + (m + 1) * size)]
        }
    }
}

public enum MarketIndexing: Sendable {
    case columns, leadingBlocks
}

/// The names, shapes and order of every tensor of a model, per MODEL.md's table.
public struct ParameterLayout: Equatable, Sendable {
    public let config: ModelConfig
    public let dims: ModelDimensions
    public let specs: [TensorSpec]
    public let count: Int
    private let index: [String: Int]
    /// The `domain-attention` sizes, nil without that extension.
    public let domainAttention: DomainAttentionDims?

    public init(config: ModelConfig, dims: ModelDimensions) throws {
        try config.validate()
        guard dims.embeddingRows.count == config.siiFields.count,
              dims.embeddingWidths.count == config.siiFields.count,
              dims.embeddingRows.allSatisfy({ $0 > 0 }), dims.embeddingWidths.allSatisfy({ $0 > 0 }),
              dims.siiWidth > 0, dims.sisWidth > 0, dims.actWidth > 0
        else { throw ModelError.invalidConfig("every layer size must be positive, one embedding per sii field") }
        for head in config.headSet where (dims.headHidden[head] ?? 0) <= 0 {
            throw ModelError.invalidConfig("head \(head.rawValue) needs a positive hidden width")
        }
        self.config = config
        self.dims = dims

        var specs: [TensorSpec] = []
        var offset = 0
        // Sizes come from files: refuse a tensor that could not exist (2³¹ floats at most) before it overflows.
        func add(_ name: String, _ shape: [Int], trainable: Bool = true, decays: Bool = false,
                 trainingOnly: Bool = false) throws {
            guard let count = checkedProduct(shape), count < 1 << 31 else {
                throw ModelError.invalidConfig("tensor \(name) of shape \(shape) is too large for a weight file")
            }
            specs.append(TensorSpec(name: name, shape: shape, offset: offset, trainable: trainable, decays: decays,
                                    trainingOnly: trainingOnly))
            offset += count
        }
        let h = config.hidden, a = config.attention
        let nDis = config.count(.dis), nU = config.count(.du)
        for (i, field) in config.siiFields.enumerated() {
            try add("sii.emb.\(field)", [dims.embeddingRows[i], dims.embeddingWidths[i]])
        }
        try add("sii.fc.weight", [dims.siiWidth, dims.embeddingWidths.reduce(0, +)], decays: true)
        try add("sii.fc.bias", [dims.siiWidth])
        try add("sis.fc.weight", [dims.sisWidth, config.count(.sis)], decays: true)
        try add("sis.fc.bias", [dims.sisWidth])
        if config.has(.ja) {
            try add("act.fc.weight", [dims.actWidth, config.count(.act)], decays: true)
            try add("act.fc.bias", [dims.actWidth])
        }
        for group in FeatureGroup.allCases where group != .act || config.has(.ja) {
            try add("\(group.rawValue).norm.mean", [config.count(group)], trainable: false)
            try add("\(group.rawValue).norm.std", [config.count(group)], trainable: false)
        }
        for gate in ["z", "r", "n"] { try add("gru.\(gate).w_dis", [h, nDis], decays: true) }
        for gate in ["z", "r"] { try add("gru.\(gate).w_du", [h, nU], decays: true) }
        for gate in ["z", "r", "n"] { try add("gru.\(gate).u", [h, h], decays: true) }
        for gate in ["z", "r", "n"] { try add("gru.\(gate).b", [h]) }
        try add("att.w_h", [a, h], decays: true)
        try add("att.w_du", [a, nU], decays: true)
        try add("att.w_su", [a, nU], decays: true)
        try add("att.b", [a])
        try add("att.v", [a], decays: true)
        let rep = h + dims.siiWidth + dims.sisWidth
        for head in config.headSet {
            let hk = dims.headHidden[head]!
            try add("head.\(head.rawValue).fc1.weight", [hk, head == .ja ? rep + dims.actWidth : rep], decays: true)
            try add("head.\(head.rawValue).fc1.bias", [hk])
            try add("head.\(head.rawValue).fc2.weight", [head.outputs, hk], decays: true)
            try add("head.\(head.rawValue).fc2.bias", [head.outputs])
        }
        // MARKETS.md `market-embedding`: column m joins the pre-activations of z, r, n and the attention score.
        if config.has(extension: ModelExtension.marketEmbedding) {
            for gate in ["z", "r", "n"] { try add("mkt.gru.\(gate)", [h, config.markets.count]) }
            try add("mkt.att", [a, config.markets.count])
        }
        // MARKETS.md `domain-attention`: market-specific embeddings, the gate units, the market representation `o`
        // and its head weights; then the training-only discriminators.
        domainAttention = try DomainAttentionDims(config: config, dims: dims)
        if let da = domainAttention {
            let nM = da.markets
            for field in config.siiFields { try add("sii.spec.\(field)", [nM * da.specRows, da.specWidth]) }
            for (unit, prefix, input) in [("c", [Int](), da.shared), ("m", [nM], da.fieldWidth)] {
                try add("gate.\(unit).l0.weight", prefix + [da.gate0, input], decays: true)
                try add("gate.\(unit).l0.bias", prefix + [da.gate0])
                try add("gate.\(unit).l1.weight", prefix + [da.gate1, da.gate0], decays: true)
                try add("gate.\(unit).l1.bias", prefix + [da.gate1])
                try add("gate.\(unit).l2.weight", prefix + [1, da.gate1], decays: true)
                try add("gate.\(unit).l2.bias", prefix + [1])
            }
            try add("spec.fc.weight", [nM, da.width, da.specInput], decays: true)
            try add("spec.fc.bias", [nM, da.width])
            for head in config.headSet {
                try add("head.\(head.rawValue).spec.weight", [nM, dims.headHidden[head]!, da.width], decays: true)
            }
            // The discriminators minimise their own cross-entropy only (no L2 term).
            try add("dom.c.weight", [nM, h + dims.siiWidth + dims.sisWidth], trainingOnly: true)
            try add("dom.c.bias", [nM], trainingOnly: true)
            try add("dom.m.weight", [nM, da.width], trainingOnly: true)
            try add("dom.m.bias", [nM], trainingOnly: true)
        }
        // MARKETS.md `competition`: each item's f from concat(rep, o), θ, and the heads' weights on c (and q).
        if config.has(extension: ModelExtension.competition) {
            let sizes = config.competition
            try add("comp.fc.weight", [sizes.width, rep + (domainAttention?.width ?? 0)], decays: true)
            try add("comp.fc.bias", [sizes.width])
            try add("comp.theta", [1])
            for head in config.headSet {
                try add("head.\(head.rawValue).comp.weight", [dims.headHidden[head]!, sizes.width], decays: true)
                if sizes.cooperation {
                    try add("head.\(head.rawValue).coop.weight", [dims.headHidden[head]!, sizes.width], decays: true)
                }
            }
        }
        self.specs = specs
        self.count = offset
        self.index = Dictionary(uniqueKeysWithValues: specs.enumerated().map { ($1.name, $0) })
    }

    public func spec(_ name: String) -> TensorSpec? { index[name].map { specs[$0] } }

    /// The spec of a tensor the layout is known to hold.
    func require(_ name: String) -> TensorSpec {
        guard let spec = spec(name) else { preconditionFailure("layout lacks \(name)") }
        return spec
    }

    /// Width of `rep = concat(rep_d, e_sii, e_sis)`.
    public var representationWidth: Int { config.hidden + dims.siiWidth + dims.sisWidth }
}

/// The sizes of MARKETS.md's `domain-attention` parts of one model.
public struct DomainAttentionDims: Equatable, Sendable {
    public let markets: Int, fields: Int
    /// `d` (every shared embedding's width), `d'`, `V'`.
    public let shared: Int, specWidth: Int, specRows: Int
    public let gate0: Int, gate1: Int
    /// `D_m`, the width of the market representation `o`.
    public let width: Int

    /// `d + d'`: one field's `e_f`.
    public var fieldWidth: Int { shared + specWidth }
    /// `n_f · (d + d')`: the input of `spec.fc`.
    public var specInput: Int { fields * fieldWidth }

    /// An item's row of each `sii.spec.<f>`: market m's block of V' rows, and in it the id's hash (the block's
    /// first row for a missing or empty id).
    public func specRows(market m: Int, ids: [String?]) -> [Int] {
        ids.map { id in
            guard let id, !id.isEmpty else { return m * specRows }
            return m * specRows + Int(fnv1a64(id) % UInt64(specRows))
        }
    }

    /// Nil without the extension; throws when the embeddings differ in width.
    init?(config: ModelConfig, dims: ModelDimensions) throws {
        guard config.has(extension: ModelExtension.domainAttention) else { return nil }
        guard let d = dims.embeddingWidths.first, dims.embeddingWidths.allSatisfy({ $0 == d }) else {
            throw ModelError.invalidConfig("domain-attention needs every sii.emb.<f> of one width d, got \(dims.embeddingWidths)")
        }
        let sizes = config.domainAttention
        markets = config.markets.count
        fields = config.siiFields.count
        shared = d
        specWidth = sizes.specWidth
        specRows = sizes.specRows
        gate0 = sizes.gate[0]
        gate1 = sizes.gate[1]
        width = sizes.width
    }
}

/// All tensors of a model in one flat buffer, addressed by name through the layout.
public struct Parameters<T: DINOPScalar>: Sendable {
    public let layout: ParameterLayout
    public var values: [T]

    public init(layout: ParameterLayout, values: [T]) {
        precondition(values.count == layout.count)
        self.layout = layout
        self.values = values
    }

    public static func zeros(_ layout: ParameterLayout) -> Parameters {
        Parameters(layout: layout, values: Array(repeating: 0, count: layout.count))
    }

    public subscript(name: String) -> ArraySlice<T> {
        get { values[layout.require(name).range] }
        set { values[layout.require(name).range] = newValue }
    }

    /// The same parameters in another precision.
    public func converted<U: DINOPScalar>(to: U.Type = U.self) -> Parameters<U> {
        Parameters<U>(layout: layout, values: values.map { U($0) })
    }
}

/// The numeric input groups of MODEL.md.
public enum FeatureGroup: String, CaseIterable, Sendable, Codable {
    case sis, su, dis, du, act

    /// Position in `allCases`, for tables indexed by group.
    public var ordinal: Int {
        switch self {
        case .sis: 0
        case .su: 1
        case .dis: 2
        case .du: 3
        case .act: 4
        }
    }
}

/// The prediction heads of MODEL.md.
public enum Head: String, CaseIterable, Sendable, Codable {
    case gmv, bsp, ss, ja

    /// Number of outputs of the head's second layer.
    public var outputs: Int { self == .ss ? ModelConfig.slotCount : 1 }
}

/// The `config` object of a weight file's metadata (MODEL.md, "The weight file").
public struct ModelConfig: Codable, Equatable, Sendable {
    public static let slotCount = 10

    public var hidden: Int
    public var attention: Int
    public var siiFields: [String]
    /// Per numeric group, the ordered feature names.
    public var features: [String: [String]]
    /// Per numeric group, the names that take `log1p`.
    public var log1p: [String: [String]]
    public var heads: [String]
    /// MARKETS.md's extensions present (`market-embedding`, …); empty for MODEL.md's model (`dinop/1`).
    public var extensions: [String] = []
    /// The market ids an extension's market-indexed tensors have a column or row for, in order.
    public var markets: [String] = []
    /// MARKETS.md `domain_attention` sizes; read and written only when that extension is listed.
    public var domainAttention = DomainAttentionSizes()
    /// BOP.md's `bop` sizes, in a file that carries a BOP model beside the item model; nil without that extension.
    /// The item model runs none of it: it keeps the object and the `bop.*` tensors for the BOP reader.
    public var bop: BOPConfig?
    /// MARKETS.md `competition` sizes; read and written only when that extension is listed.
    public var competition = CompetitionSizes()

    enum CodingKeys: String, CodingKey {
        case hidden, attention, features, log1p, heads, extensions, markets, bop, competition
        case siiFields = "sii_fields"
        case domainAttention = "domain_attention"
    }

    public init(hidden: Int, attention: Int, siiFields: [String], features: [String: [String]],
                log1p: [String: [String]], heads: [String]) {
        self.hidden = hidden
        self.attention = attention
        self.siiFields = siiFields
        self.features = features
        self.log1p = log1p
        self.heads = heads
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hidden = try c.decode(Int.self, forKey: .hidden)
        attention = try c.decode(Int.self, forKey: .attention)
        siiFields = try c.decode([String].self, forKey: .siiFields)
        features = try c.decode([String: [String]].self, forKey: .features)
        log1p = try c.decodeIfPresent([String: [String]].self, forKey: .log1p) ?? [:]
        heads = try c.decodeIfPresent([String].self, forKey: .heads) ?? Head.allCases.map(\.rawValue)
        extensions = try c.decodeIfPresent([String].self, forKey: .extensions) ?? []
        markets = try c.decodeIfPresent([String].self, forKey: .markets) ?? []
        domainAttention = try c.decodeIfPresent(DomainAttentionSizes.self, forKey: .domainAttention) ?? DomainAttentionSizes()
        // Read only with the extension listed, so that a file without it reads as it always did.
        bop = extensions.contains(ModelExtension.bop) ? try c.decodeIfPresent(BOPConfig.self, forKey: .bop) : nil
        if extensions.contains(ModelExtension.competition) {
            competition = try c.decodeIfPresent(CompetitionSizes.self, forKey: .competition) ?? CompetitionSizes()
        }
    }

    /// MODEL.md's keys always; the extension keys only when there is an extension, so that a `dinop/1` file's
    /// config text stays what it was.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hidden, forKey: .hidden)
        try c.encode(attention, forKey: .attention)
        try c.encode(siiFields, forKey: .siiFields)
        try c.encode(features, forKey: .features)
        try c.encode(log1p, forKey: .log1p)
        try c.encode(heads, forKey: .heads)
        if !extensions.isEmpty {
            try c.encode(extensions, forKey: .extensions)
            try c.encode(markets, forKey: .markets)
        }
        if has(extension: ModelExtension.domainAttention) { try c.encode(domainAttention, forKey: .domainAttention) }
        if has(extension: ModelExtension.bop) { try c.encodeIfPresent(bop, forKey: .bop) }
        if has(extension: ModelExtension.competition) { try c.encode(competition, forKey: .competition) }
    }

    /// The extensions this reader implements (MARKETS.md); a file naming another is refused, by name.
    public static let implementedExtensions: Set<String> = [ModelExtension.marketEmbedding, ModelExtension.domainAttention,
                                                            ModelExtension.competition, ModelExtension.bop]
    /// Every extension MARKETS.md and BOP.md name.
    public static let knownExtensions: Set<String> = [ModelExtension.marketEmbedding, ModelExtension.domainAttention,
                                                      ModelExtension.competition, ModelExtension.bop]

    public func has(extension name: String) -> Bool { extensions.contains(name) }

    /// Whether an extension reads each item's market (MARKETS.md's); `bop` alone does not.
    public var readsMarkets: Bool { extensions.contains { $0 != ModelExtension.bop } }

    /// Position of an item's market id in `markets` (exact, case-sensitive); nil for a missing, empty or unlisted
    /// id, whose market-indexed terms are left out.
    public func marketIndex(_ id: String?) -> Int? {
        guard let id, !id.isEmpty else { return nil }
        // Exact: byte for byte (Swift's == would match canonically equivalent Unicode).
        return markets.firstIndex { $0.utf8.elementsEqual(id.utf8) }
    }

    /// The `market` field's position in `sii_fields`, which every market extension reads.
    public var marketField: Int? { siiFields.firstIndex(of: "market") }

    /// An item's market id among its `sii` ids (in `sii_fields` order); nil when missing or empty.
    public func marketID(_ sii: [String?]) -> String? {
        guard let field = marketField, field < sii.count, let id = sii[field], !id.isEmpty else { return nil }
        return id
    }

    /// The paper's sizes and the feature names the project's events carry.
    public static let `default` = ModelConfig(
        hidden: 128, attention: 64,
        siiFields: ["market", "industry", "seller", "brand"],
        features: [
            "sis": ["gmv_90d", "units_90d", "price", "orders_90d", "favourites_90d"],
            "su": buyerBuckets,
            "dis": ["gmv", "units", "orders", "deposits", "cart_adds", "favourites", "views", "price", "discount"],
            "du": buyerBuckets,
            "act": ["discount_depth", "min_price", "duration_days", "fee"],
        ],
        log1p: [
            "sis": ["gmv_90d", "units_90d", "orders_90d", "favourites_90d"],
            "dis": ["gmv", "units", "orders", "deposits", "cart_adds", "favourites", "views"],
            "su": [], "du": [], "act": [],
        ],
        heads: Head.allCases.map(\.rawValue))

    /// Demographic buckets of a buyer profile: shares within each dimension (age, gender, power, city) sum to 1.
    public static let buyerBuckets = [
        "age_18_24", "age_25_34", "age_35_49", "age_50_plus", "gender_f", "gender_m",
        "power_low", "power_mid", "power_high", "city_tier1", "city_tier2", "city_tier3",
    ]

    public func names(_ group: FeatureGroup) -> [String] { features[group.rawValue] ?? [] }
    public func count(_ group: FeatureGroup) -> Int { names(group).count }
    public func log1pNames(_ group: FeatureGroup) -> Set<String> { Set(log1p[group.rawValue] ?? []) }
    public var headSet: [Head] { Head.allCases.filter { heads.contains($0.rawValue) } }
    public func has(_ head: Head) -> Bool { heads.contains(head.rawValue) }

    /// Checks what the math relies on; throws `ModelError.invalidConfig` naming the first problem.
    public func validate() throws {
        func fail(_ why: String) -> ModelError { .invalidConfig(why) }
        guard hidden > 0 else { throw fail("hidden must be positive, got \(hidden)") }
        guard attention > 0 else { throw fail("attention must be positive, got \(attention)") }
        guard !siiFields.isEmpty else { throw fail("sii_fields must not be empty") }
        guard Set(siiFields).count == siiFields.count else { throw fail("sii_fields has duplicates") }
        for group in FeatureGroup.allCases {
            guard let names = features[group.rawValue] else {
                throw fail("features.\(group.rawValue) is missing")
            }
            guard Set(names).count == names.count else { throw fail("features.\(group.rawValue) has duplicates") }
            guard !names.isEmpty || (group == .act && !has(.ja)) else {
                throw fail("features.\(group.rawValue) must name at least one feature")
            }
            for name in log1p[group.rawValue] ?? [] where !names.contains(name) {
                throw fail("log1p.\(group.rawValue) names \"\(name)\", which is not a feature of the group")
            }
        }
        guard count(.su) == count(.du) else {
            throw fail("features.su and features.du must have the same length (n_u), got \(count(.su)) and \(count(.du))")
        }
        for name in heads where Head(rawValue: name) == nil {
            throw fail("unknown head \"\(name)\" (known: gmv, bsp, ss, ja)")
        }
        guard !heads.isEmpty else { throw fail("heads must not be empty") }
        guard Set(extensions).count == extensions.count else { throw fail("extensions has duplicates") }
        for name in extensions where !Self.knownExtensions.contains(name) {
            throw fail("unknown extension \"\(name)\" (known: \(Self.knownExtensions.sorted().joined(separator: ", ")))")
        }
        for name in extensions where !Self.implementedExtensions.contains(name) {
            throw fail("extension \"\(name)\" is not implemented by this reader (it implements \(Self.implementedExtensions.sorted().joined(separator: ", ")))")
        }
        guard Set(markets.map { Array($0.utf8) }).count == markets.count else { throw fail("markets has duplicates") }
        guard !markets.contains("") else { throw fail("markets has an empty id") }
        if has(extension: ModelExtension.domainAttention) {
            // Sizes come from files: bounded, so that no product of them overflows, whatever the number of markets.
            let sizes = domainAttention, limit = DomainAttentionSizes.largest
            guard (1...limit).contains(sizes.specRows), (1...limit).contains(sizes.specWidth), (1...limit).contains(sizes.width),
                  sizes.gate.count == 2, sizes.gate.allSatisfy({ (1...limit).contains($0) })
            else { throw fail("domain_attention needs spec_rows, spec_width, width and two gate sizes in 1...\(limit), got \(sizes)") }
            guard markets.count <= limit else { throw fail("domain-attention takes at most \(limit) markets, got \(markets.count)") }
        }
        if has(extension: ModelExtension.competition) {
            guard (1...CompetitionSizes.largest).contains(competition.width) else {
                throw fail("competition.width must be in 1...\(CompetitionSizes.largest), got \(competition.width)")
            }
            guard siiFields.contains("industry") else {
                throw fail("extension competition groups items by industry: sii_fields must list \"industry\"")
            }
        }
        if has(extension: ModelExtension.bop) {
            guard let bop else { throw fail("extension bop needs a \"bop\" object (BOP.md)") }
            do { try bop.validate() } catch { throw fail("\(error)") }
        }
        if readsMarkets {
            guard marketField != nil else { throw fail("extensions \(extensions) read each item's market: sii_fields must list \"market\"") }
        }
    }
}

/// The extension names of MARKETS.md.
public enum ModelExtension {
    public static let marketEmbedding = "market-embedding"
    public static let domainAttention = "domain-attention"
    public static let competition = "competition"
    public static let bop = "bop"
}

/// MARKETS.md's `domain_attention` object: the market-specific embedding tables' rows `V'` and width `d'`, the
/// gate unit's two hidden sizes `[G0, G1]` and the market representation's width `D_m`. Each key defaults on its
/// own; an unknown key is refused.
public struct DomainAttentionSizes: Codable, Equatable, Sendable, CustomStringConvertible {
    public var specRows = 4099
    public var specWidth = 8
    public var gate = [32, 16]
    public var width = 32
    /// The most any size (and the number of markets) may be: products of a few of them stay far from overflow.
    public static let largest = 1 << 24

    enum CodingKeys: String, CodingKey, CaseIterable {
        case specRows = "spec_rows", specWidth = "spec_width", gate, width
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        if let problem = try unknownKey(decoder, CodingKeys.self, in: "domain_attention") { throw ModelError.invalidConfig(problem) }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        specRows = try c.decodeIfPresent(Int.self, forKey: .specRows) ?? specRows
        specWidth = try c.decodeIfPresent(Int.self, forKey: .specWidth) ?? specWidth
        gate = try c.decodeIfPresent([Int].self, forKey: .gate) ?? gate
        width = try c.decodeIfPresent(Int.self, forKey: .width) ?? width
    }

    public var description: String { "spec_rows \(specRows), spec_width \(specWidth), gate \(gate), width \(width)" }
}

/// Any key of a JSON object, to list the keys a strict decoder does not know.
public struct AnyCodingKey: CodingKey {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

/// What is wrong with a strict config object (`object`, its name in messages): its first key that `Keys` does not
/// list, named beside the known ones; nil when every key is known.
func unknownKey<Keys: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: Keys.Type, in object: String) throws -> String? {
    let known = Set(Keys.allCases.map(\.stringValue))
    let any = try decoder.container(keyedBy: AnyCodingKey.self)
    guard let unknown = any.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) else { return nil }
    return "\(object) has an unknown key \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))"
}

/// Layer sizes that the weight file's tensor shapes carry rather than its config.
public struct ModelDimensions: Equatable, Sendable {
    /// Rows `V_f` and width `d_f` of each `sii_fields` embedding table, in field order.
    public var embeddingRows: [Int]
    public var embeddingWidths: [Int]
    public var siiWidth: Int
    public var sisWidth: Int
    public var actWidth: Int
    /// Hidden width `H_k` of each head present, by head.
    public var headHidden: [Head: Int]

    public init(embeddingRows: [Int], embeddingWidths: [Int], siiWidth: Int = 64, sisWidth: Int = 64,
                actWidth: Int = 64, headHidden: [Head: Int]) {
        self.embeddingRows = embeddingRows
        self.embeddingWidths = embeddingWidths
        self.siiWidth = siiWidth
        self.sisWidth = sisWidth
        self.actWidth = actWidth
        self.headHidden = headHidden
    }

    /// The same sizes for every field, encoder and head; by default the paper's (D = 64, H_k = 128).
    public static func defaults(for config: ModelConfig, rows: Int = 100_003, width: Int = 16, encoderWidth: Int = 64,
                                headHidden: Int = 128) -> ModelDimensions {
        ModelDimensions(
            embeddingRows: Array(repeating: rows, count: config.siiFields.count),
            embeddingWidths: Array(repeating: width, count: config.siiFields.count),
            siiWidth: encoderWidth, sisWidth: encoderWidth, actWidth: encoderWidth,
            headHidden: Dictionary(uniqueKeysWithValues: config.headSet.map { ($0, headHidden) }))
    }
}

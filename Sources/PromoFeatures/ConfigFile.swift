import DINOP
import PromoEvents

/// A feature config file (`promo train|evaluate --config FILE`): the weight file's `config` object, every key optional.
///
/// `{"hidden": H, "attention": A, "sii_fields": [...], "features": {"sis": [...], ...}, "log1p": {"sis": [...]},
///   "heads": [...], "extensions": [...], "markets": [...], "domain_attention": {...}, "competition": {...}}` (MARKETS.md's
///   extensions). A key that is present replaces the base's value; a group named under `features` replaces that
/// group's names, and its `log1p` list, when not given, keeps the base's log1p names that are still features of the
/// group. Unknown keys and groups are refused by name, so a typo never trains a model on the defaults.
public struct ConfigFile: Sendable, Equatable {
    public var hidden: Int?
    public var attention: Int?
    public var siiFields: [String]?
    public var features: [String: [String]] = [:]
    public var log1p: [String: [String]] = [:]
    public var heads: [String]?
    public var extensions: [String]?
    public var markets: [String]?
    /// `domain_attention`'s keys present in the file (`spec_rows`, `spec_width`, `gate`, `width`); the others keep
    /// the base's sizes.
    public var domainAttention: [String: [Int]] = [:]
    /// `competition`'s `width` and `cooperation` when present; the others keep the base's.
    public var competitionWidth: Int?, cooperation: Bool?

    static let keys: Set<String> = ["hidden", "attention", "sii_fields", "features", "log1p", "heads", "extensions", "markets",
                                    "domain_attention", "competition"]

    public init(bytes: [UInt8]) throws(ModelError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw .invalidConfig("the config file is not JSON: \(error.description)")
        }
        guard let map = value.object else { throw .invalidConfig("the config file must hold a JSON object") }
        for key in map.keys.sorted() where !Self.keys.contains(key) {
            throw .invalidConfig("unknown key \"\(key)\" (known: \(Self.keys.sorted().joined(separator: ", ")))")
        }
        func integer(_ value: JSONValue?, _ key: String) throws(ModelError) -> Int? {
            guard let value else { return nil }
            guard let n = value.number, n == n.rounded(), abs(n) < 1e9 else {
                throw .invalidConfig("\(key) must be an integer, got \(value.kind)")
            }
            return Int(n)
        }
        func integer(_ key: String) throws(ModelError) -> Int? { try integer(map[key], key) }
        func strings(_ value: JSONValue, _ path: String) throws(ModelError) -> [String] {
            guard let list = value.array else { throw .invalidConfig("\(path) must be a list of strings, got \(value.kind)") }
            var names: [String] = []
            for element in list {
                guard let name = element.string, !name.isEmpty else {
                    throw .invalidConfig("\(path) must hold non-empty strings, got \(element.kind)")
                }
                names.append(name)
            }
            return names
        }
        func groups(_ key: String) throws(ModelError) -> [String: [String]] {
            guard let value = map[key] else { return [:] }
            guard let object = value.object else { throw .invalidConfig("\(key) must be an object of groups, got \(value.kind)") }
            var out: [String: [String]] = [:]
            for (group, names) in object {
                guard FeatureGroup(rawValue: group) != nil else {
                    throw .invalidConfig("\(key).\(group): unknown group (known: sis, su, dis, du, act)")
                }
                out[group] = try strings(names, "\(key).\(group)")
            }
            return out
        }
        hidden = try integer("hidden")
        attention = try integer("attention")
        siiFields = try map["sii_fields"].map { v throws(ModelError) in try strings(v, "sii_fields") }
        features = try groups("features")
        log1p = try groups("log1p")
        heads = try map["heads"].map { v throws(ModelError) in try strings(v, "heads") }
        extensions = try map["extensions"].map { v throws(ModelError) in try strings(v, "extensions") }
        markets = try map["markets"].map { v throws(ModelError) in try strings(v, "markets") }
        if let value = map["domain_attention"] {
            guard let object = value.object else { throw .invalidConfig("domain_attention must be an object, got \(value.kind)") }
            let known: Set<String> = ["spec_rows", "spec_width", "gate", "width"]
            for key in object.keys.sorted() where !known.contains(key) {
                throw .invalidConfig("domain_attention has an unknown key \"\(key)\" (known: \(known.sorted().joined(separator: ", ")))")
            }
            for (key, value) in object {
                if key == "gate" {
                    guard let list = value.array else { throw .invalidConfig("domain_attention.gate must be a list of two integers, got \(value.kind)") }
                    var sizes: [Int] = []
                    for element in list { if let n = try integer(element, "domain_attention.gate") { sizes.append(n) } }
                    domainAttention[key] = sizes
                } else if let n = try integer(value, "domain_attention.\(key)") {
                    domainAttention[key] = [n]
                }
            }
        }
        if let value = map["competition"] {
            guard let object = value.object else { throw .invalidConfig("competition must be an object, got \(value.kind)") }
            for key in object.keys.sorted() where !["width", "cooperation"].contains(key) {
                throw .invalidConfig("competition has an unknown key \"\(key)\" (known: cooperation, width)")
            }
            competitionWidth = try integer(object["width"], "competition.width")
            if let flag = object["cooperation"] {
                guard let bool = flag.bool else { throw .invalidConfig("competition.cooperation must be true or false, got \(flag.kind)") }
                cooperation = bool
            }
        }
    }

    /// `base` with this file's keys applied; validated.
    public func applied(to base: ModelConfig) throws(ModelError) -> ModelConfig {
        var config = base
        if let hidden { config.hidden = hidden }
        if let attention { config.attention = attention }
        if let siiFields { config.siiFields = siiFields }
        if let heads { config.heads = heads }
        if let extensions { config.extensions = extensions }
        if let markets { config.markets = markets }
        for (key, sizes) in domainAttention {
            switch key {
            case "spec_rows": config.domainAttention.specRows = sizes[0]
            case "spec_width": config.domainAttention.specWidth = sizes[0]
            case "width": config.domainAttention.width = sizes[0]
            default: config.domainAttention.gate = sizes
            }
        }
        if let competitionWidth { config.competition.width = competitionWidth }
        if let cooperation { config.competition.cooperation = cooperation }
        for (group, names) in features {
            config.features[group] = names
            if log1p[group] == nil { config.log1p[group] = (base.log1p[group] ?? []).filter(names.contains) }
        }
        for (group, names) in log1p { config.log1p[group] = names }
        do {
            try config.validate()
        } catch let error as ModelError {
            throw error
        } catch {
            throw .invalidConfig("\(error)")
        }
        return config
    }
}

import DINOP
import Foundation

/// A BOP model (BOP.md): its float32 tensors in one flat buffer, addressed by name, and its weight file.
public struct BOPModel: Sendable {
    public let config: BOPConfig
    /// MARKETS.md's market ids: row m of `bop.mkt.emb` belongs to `markets[m]`.
    public let markets: [String]
    /// `R` of the optional `bop.rep.weight` `[d, R]` (the item model's `rep` width); nil without it.
    public let repWidth: Int?
    public let layout: BOPLayout
    public var values: [Float]
    public var version: Int
    public var parent: Int?

    public init(config: BOPConfig, markets: [String], repWidth: Int? = nil, values: [Float]? = nil, version: Int = 1,
                parent: Int? = nil) throws {
        try config.validate()
        guard Set(markets.map { Array($0.utf8) }).count == markets.count, !markets.contains("") else {
            throw BOPError.invalidConfig("markets must be unique and non-empty, got \(markets)")
        }
        self.config = config
        self.markets = markets
        self.repWidth = repWidth
        layout = try BOPLayout(config: config, markets: markets.count, repWidth: repWidth)
        self.values = values ?? [Float](repeating: 0, count: layout.count)
        guard self.values.count == layout.count else {
            throw BOPError.wrongFile("\(self.values.count) values for a layout of \(layout.count)")
        }
        self.version = version
        self.parent = parent
    }

    public subscript(name: String) -> ArraySlice<Float> {
        get { layout.spec(name).map { values[$0.range] } ?? [] }
        set { if let spec = layout.spec(name) { values[spec.range] = newValue } }
    }

    /// The position of a market id in `markets` (exact bytes); nil for none, empty or unlisted.
    public func marketIndex(_ id: String?) -> Int? {
        guard let id, !id.isEmpty else { return nil }
        return markets.firstIndex { $0.utf8.elementsEqual(id.utf8) }
    }

    /// BOP.md: `row(id) = fnv1a64(utf8(id)) mod V_b`, row 0 for an empty or missing id.
    public func itemRow(_ id: String?) -> Int {
        guard let id, !id.isEmpty else { return 0 }
        return Int(fnv1a64(id) % UInt64(config.itemRows))
    }

    // MARK: Weight files

    /// Reads the `bop` part of a `dinop/2` file. A BOP-only file (no `sii.fc.weight`) lists `bop` alone, has
    /// `heads: []` and no `bop.rep.weight`; any other `bop.*` name is refused.
    public init(safetensors data: Data) throws {
        let (tensors, metadata) = try Safetensors.read(data)
        guard metadata["format"] == "dinop/2" else {
            throw BOPError.wrongFile("format is \"\(metadata["format"] ?? "")\", expected \"dinop/2\"")
        }
        let text = metadata["config"] ?? ""
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw BOPError.wrongFile("metadata \"config\" is not a JSON object")
        }
        let extensions = object["extensions"] as? [String] ?? []
        guard extensions.contains("bop") else { throw BOPError.wrongFile("extensions \(extensions) do not list bop") }
        guard let markets = object["markets"] as? [String] else { throw BOPError.wrongFile("the config has no \"markets\" list") }
        guard let bopObject = object["bop"] as? [String: Any] else { throw BOPError.wrongFile("the config has no \"bop\" object") }
        let config: BOPConfig
        do {
            config = try JSONDecoder().decode(BOPConfig.self, from: JSONSerialization.data(withJSONObject: bopObject))
        } catch let error as BOPError {
            throw error
        } catch {
            throw BOPError.invalidConfig("\"bop\" does not decode: \(error)")
        }
        let itemModel = tensors["sii.fc.weight"] != nil
        if !itemModel {
            guard extensions == ["bop"] else { throw BOPError.wrongFile("a BOP-only file lists no other extension, got \(extensions)") }
            guard (object["heads"] as? [Any])?.isEmpty == true else { throw BOPError.wrongFile("a BOP-only file has \"heads\": []") }
            guard tensors["bop.rep.weight"] == nil else { throw BOPError.wrongFile("a BOP-only file holds no bop.rep.weight") }
        }
        let repWidth = tensors["bop.rep.weight"].map { $0.shape.count == 2 ? $0.shape[1] : -1 }
        guard let version = Int(metadata["version"] ?? ""), version >= 1 else {
            throw BOPError.wrongFile("metadata \"version\" is not a positive integer")
        }
        let parentText = metadata["parent"] ?? ""
        // Sizes come from the config: refuse one the file cannot hold before anything is allocated for it.
        try config.validate()
        let needed = try BOPLayout(config: config, markets: markets.count, repWidth: repWidth).count
        guard needed <= data.count / 4 else {
            throw BOPError.wrongFile("the config needs \(needed) values, the file holds fewer")
        }
        try self.init(config: config, markets: markets, repWidth: repWidth, version: version,
                      parent: parentText.isEmpty ? nil : Int(parentText))
        for name in tensors.keys.sorted() where name.hasPrefix("bop.") && layout.spec(name) == nil {
            throw BOPError.wrongFile("tensor \"\(name)\" is not a BOP.md tensor at these sizes")
        }
        for spec in layout.specs {
            guard let tensor = tensors[spec.name] else { throw BOPError.wrongFile("missing tensor \"\(spec.name)\"") }
            guard tensor.shape == spec.shape else {
                throw BOPError.wrongFile("tensor \"\(spec.name)\" has shape \(tensor.shape), the config says \(spec.shape)")
            }
            if let bad = tensor.values.firstIndex(where: { !$0.isFinite }) {
                throw BOPError.wrongFile("tensor \"\(spec.name)\" holds \(tensor.values[bad]) at index \(bad)")
            }
            values.replaceSubrange(spec.range, with: tensor.values)
        }
    }

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw BOPError.wrongFile("cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(safetensors: data)
    }

    /// A BOP-only weight file.
    public func safetensors() -> Data {
        var tensors: [String: StoredTensor] = [:]
        for spec in layout.specs { tensors[spec.name] = StoredTensor(shape: spec.shape, values: Array(values[spec.range])) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        struct FileConfig: Encodable { let bop: BOPConfig, extensions: [String], heads: [String], markets: [String] }
        let config = (try? encoder.encode(FileConfig(bop: config, extensions: ["bop"], heads: [], markets: markets))) ?? Data()
        return Safetensors.write(tensors: tensors, metadata: [
            "format": "dinop/2", "config": String(decoding: config, as: UTF8.self),
            "version": String(version), "parent": parent.map(String.init) ?? "",
        ])
    }
}

/// One named tensor of a BOP model and where it lives in the flat buffer.
public struct BOPTensor: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// The names, shapes and order of every tensor of BOP.md's table.
public struct BOPLayout: Equatable, Sendable {
    public let specs: [BOPTensor]
    public let count: Int
    private let index: [String: Int]

    init(config c: BOPConfig, markets: Int, repWidth: Int?) throws {
        var specs: [BOPTensor] = [], offset = 0
        func add(_ name: String, _ shape: [Int]) throws {
            var count = 1
            for size in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: size)
                guard !overflow, size >= 0, product < 1 << 31 else {
                    throw BOPError.invalidConfig("tensor \(name) of shape \(shape) is too large for a weight file")
                }
                count = product
            }
            specs.append(BOPTensor(name: name, shape: shape, offset: offset))
            offset += count
        }
        let d = c.width
        try add("bop.item.emb", [c.itemRows, d])
        try add("bop.mkt.emb", [markets, d])
        if let repWidth {
            guard (1...BOPConfig.largest).contains(repWidth) else { throw BOPError.wrongFile("bop.rep.weight must be [d, R] with R ≥ 1") }
            try add("bop.rep.weight", [d, repWidth])
        }
        for l in 0..<c.layers {
            let p = "bop.layers.\(l)."
            try add(p + "self_attn.in_proj_weight", [3 * d, d])
            try add(p + "self_attn.in_proj_bias", [3 * d])
            try add(p + "self_attn.out_proj.weight", [d, d])
            try add(p + "self_attn.out_proj.bias", [d])
            try add(p + "linear1.weight", [c.ffn, d])
            try add(p + "linear1.bias", [c.ffn])
            try add(p + "linear2.weight", [d, c.ffn])
            try add(p + "linear2.bias", [d])
            for norm in ["norm1", "norm2"] {
                try add(p + norm + ".weight", [d])
                try add(p + norm + ".bias", [d])
            }
        }
        try add("bop.out.weight", [1, 2 * d])
        try add("bop.out.bias", [1])
        self.specs = specs
        count = offset
        index = Dictionary(uniqueKeysWithValues: specs.enumerated().map { ($1.name, $0) })
    }

    public func spec(_ name: String) -> BOPTensor? { index[name].map { specs[$0] } }

    /// Offset of a tensor the layout holds (every caller names one of BOP.md's).
    func offset(_ name: String) -> Int { spec(name)?.offset ?? 0 }
}

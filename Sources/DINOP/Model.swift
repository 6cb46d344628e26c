import Foundation

/// A DINOP model: its float32 parameters and the version metadata of its weight file.
public struct DINOPModel: Sendable {
    /// MODEL.md's format; a file with any MARKETS.md extension is `formatWithExtensions`.
    public static let format = "dinop/1"
    public static let formatWithExtensions = "dinop/2"

    public var parameters: Parameters<Float>
    public var version: Int
    /// The version this one was fine-tuned from, if any.
    public var parent: Int?
    /// Tensors under names this reader does not run (extensions); kept so that a round trip loses nothing.
    public var extraTensors: [String: StoredTensor]

    public var layout: ParameterLayout { parameters.layout }
    public var config: ModelConfig { layout.config }

    public init(parameters: Parameters<Float>, version: Int = 1, parent: Int? = nil,
                extraTensors: [String: StoredTensor] = [:]) {
        self.parameters = parameters
        self.version = version
        self.parent = parent
        self.extraTensors = extraTensors
    }

    // MARK: Weight files

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.notSafetensors("cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(safetensors: data)
    }

    public init(safetensors data: Data) throws {
        let (tensors, metadata) = try Safetensors.read(data)
        guard let format = metadata["format"] else { throw ModelError.wrongFormat("metadata has no \"format\"") }
        guard format == Self.format || format == Self.formatWithExtensions else {
            throw ModelError.wrongFormat("format is \"\(format)\", expected \"\(Self.format)\" or \"\(Self.formatWithExtensions)\"")
        }
        guard let configText = metadata["config"] else { throw ModelError.wrongFormat("metadata has no \"config\"") }
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(ModelConfig.self, from: Data(configText.utf8))
        } catch {
            throw ModelError.wrongFormat("metadata \"config\" does not decode: \(error)")
        }
        try config.validate()
        if format == Self.format {
            guard config.extensions.isEmpty else {
                throw ModelError.wrongFormat("a \(Self.format) file lists extensions \(config.extensions); a file with extensions is \(Self.formatWithExtensions)")
            }
        } else {
            guard !config.extensions.isEmpty else {
                throw ModelError.wrongFormat("a \(Self.formatWithExtensions) file lists no extension (without one a file is \(Self.format))")
            }
            let keys = (try? JSONSerialization.jsonObject(with: Data(configText.utf8))) as? [String: Any]
            guard keys?["markets"] != nil else { throw ModelError.wrongFormat("a \(Self.formatWithExtensions) config has no \"markets\"") }
        }
        // Versions name what predictions were made by (`model_version` ≥ 1 in prediction/1).
        guard let version = Int(metadata["version"] ?? ""), version >= 1 else {
            throw ModelError.wrongFormat("metadata \"version\" is not a positive integer: \"\(metadata["version"] ?? "")\"")
        }
        let parentText = metadata["parent"] ?? ""
        guard parentText.isEmpty || (Int(parentText).map { $0 >= 1 } ?? false) else {
            throw ModelError.wrongFormat("metadata \"parent\" is neither empty nor a positive integer: \"\(parentText)\"")
        }

        func shape(_ name: String, rank: Int) throws -> [Int] {
            guard let tensor = tensors[name] else { throw ModelError.missingTensor(name) }
            guard tensor.shape.count == rank else {
                throw ModelError.wrongFormat("tensor \"\(name)\" has rank \(tensor.shape.count), expected \(rank)")
            }
            return tensor.shape
        }
        let embeddings = try config.siiFields.map { try shape("sii.emb.\($0)", rank: 2) }
        var headHidden: [Head: Int] = [:]
        for head in config.headSet { headHidden[head] = try shape("head.\(head.rawValue).fc1.weight", rank: 2)[0] }
        let dims = ModelDimensions(
            embeddingRows: embeddings.map { $0[0] }, embeddingWidths: embeddings.map { $0[1] },
            siiWidth: try shape("sii.fc.weight", rank: 2)[0], sisWidth: try shape("sis.fc.weight", rank: 2)[0],
            actWidth: config.has(.ja) ? try shape("act.fc.weight", rank: 2)[0] : 64,
            headHidden: headHidden)
        let layout = try ParameterLayout(config: config, dims: dims)
        // Names and shapes first, so that a config that disagrees with its tensors says which.
        for spec in layout.specs {
            guard let tensor = tensors[spec.name] else {
                if spec.trainingOnly { continue }  // a file without its discriminators trains fresh ones, from zero
                throw ModelError.missingTensor(spec.name)
            }
            guard tensor.shape == spec.shape else {
                throw ModelError.shapeMismatch(name: spec.name, expected: spec.shape, found: tensor.shape)
            }
        }
        // (Training-only tensors may be absent: only what the file holds must fit in it.)
        let stored = layout.specs.reduce(0) { $0 + (tensors[$1.name] == nil ? 0 : $1.count) }
        guard stored <= data.count / 4 else {
            throw ModelError.wrongFormat("the config needs \(layout.count) parameters, the file holds fewer")
        }

        var parameters = Parameters<Float>.zeros(layout)
        for spec in layout.specs {
            guard let tensor = tensors[spec.name] else { continue }
            if let bad = tensor.values.firstIndex(where: { !$0.isFinite }) {
                throw ModelError.wrongFormat("tensor \"\(spec.name)\" holds \(tensor.values[bad]) at index \(bad)")
            }
            if spec.name.hasSuffix(".norm.std"), let bad = tensor.values.firstIndex(where: { $0 <= 0 }) {
                throw ModelError.wrongFormat("tensor \"\(spec.name)\" holds \(tensor.values[bad]) at index \(bad); std must be positive")
            }
            parameters.values.replaceSubrange(spec.range, with: tensor.values)
        }
        let extra = tensors.filter { layout.spec($0.key) == nil }
        // MARKETS.md: a dinop/2 reader refuses tensors it does not implement (a dinop/1 file's are kept as they are).
        // The `bop.*` tensors of a combined file are the BOP reader's to check; the item model keeps them and
        // reads one fact: the width `bop.rep.weight` expects of the `rep` it publishes.
        let carried = config.has(extension: ModelExtension.bop) ? extra.keys.filter { $0.hasPrefix("bop.") } : []
        if format == Self.formatWithExtensions, let unknown = extra.keys.sorted().first(where: { !carried.contains($0) }) {
            throw ModelError.wrongFormat("tensor \"\(unknown)\" is not part of extensions \(config.extensions) as this reader implements them")
        }
        if let weight = extra["bop.rep.weight"], let bop = config.bop {
            let expected = [bop.width, layout.representationWidth]
            guard weight.shape == expected else {
                throw ModelError.shapeMismatch(name: "bop.rep.weight", expected: expected, found: weight.shape)
            }
            guard layout.representationWidth <= Self.largestPublishedRepresentation else {
                throw ModelError.wrongFormat("bop.rep.weight reads a rep of \(layout.representationWidth) values; a prediction carries at most \(Self.largestPublishedRepresentation)")
            }
        }
        self.init(parameters: parameters, version: version, parent: parentText.isEmpty ? nil : Int(parentText),
                  extraTensors: extra)
        // Every reader of a weight file (the CLI, a member adopting a version, publishing) refuses weights that
        // cannot serve, instead of failing later on every item.
        try checkOrdinaryPredictions()
    }

    public func safetensors() -> Data {
        var tensors = extraTensors
        for spec in layout.specs {
            tensors[spec.name] = StoredTensor(shape: spec.shape, values: Array(parameters.values[spec.range]))
        }
        return Safetensors.write(tensors: tensors, metadata: [
            "format": config.extensions.isEmpty ? Self.format : Self.formatWithExtensions,
            "config": config.jsonString,
            "version": String(version),
            "parent": parent.map(String.init) ?? "",
        ])
    }

    /// Whether the file carries BOP.md's `bop.rep.weight`: then the BOP model reads each item's `rep`, and the
    /// item role publishes it with the item's prediction.
    public var publishesRepresentation: Bool { config.has(extension: ModelExtension.bop) && extraTensors["bop.rep.weight"] != nil }

    /// The widest `rep` a prediction carries (prediction/1's `rep`, `PredictionEvent.largestRepresentation`).
    public static let largestPublishedRepresentation = 16_384

    public func write(to url: URL) throws {
        try safetensors().write(to: url, options: .atomic)
    }
}

extension ModelConfig {
    /// Canonical JSON text (sorted keys), as stored in the weight file's metadata.
    public var jsonString: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}

extension DINOPModel {
    /// The markets whose items this model predicts differently from `other`, when the two differ only in
    /// market-indexed parts (a fine-tune of scope `market`; the discriminators, which no prediction reads, aside);
    /// nil when anything else differs (then every item may).
    public func marketsChanged(from other: DINOPModel) -> Set<String>? {
        guard layout == other.layout else { return nil }
        let markets = config.markets
        var changed = Set<String>()
        for spec in layout.specs where !spec.trainingOnly {
            for i in spec.range where parameters.values[i].bitPattern != other.parameters.values[i].bitPattern {
                guard let m = spec.market(ofElement: i, markets: markets.count) else { return nil }
                changed.insert(markets[m])
            }
        }
        return changed
    }
}

@testable import BOP
import DINOP
import Foundation
import Testing

@Suite("BOP weight files")
struct BOPWeightFileTests {
    func model() throws -> BOPModel {
        try BOPModel.random(config: BOPConfig(width: 8, layers: 2, heads: 2, ffn: 6, maxHistory: 5, itemRows: 31),
                            markets: ["de", "jp"], seed: 4)
    }

    @Test("a BOP-only file reads back bit-identically, with its config and version")
    func roundTrip() throws {
        var original = try model()
        original.version = 3
        original.parent = 2
        let bytes = original.safetensors()
        let (tensors, metadata) = try Safetensors.read(bytes)
        #expect(metadata["format"] == "dinop/2")
        #expect(metadata["config"] == #"{"bop":{"ffn":6,"heads":2,"item_rows":31,"layers":2,"max_history":5,"width":8},"extensions":["bop"],"heads":[],"markets":["de","jp"]}"#)
        #expect(tensors["bop.layers.1.self_attn.in_proj_weight"]?.shape == [24, 8] && tensors["bop.mkt.emb"]?.shape == [2, 8])
        let loaded = try BOPModel(safetensors: bytes)
        #expect(loaded.values.map(\.bitPattern) == original.values.map(\.bitPattern))
        #expect(loaded.config == original.config && loaded.markets == ["de", "jp"] && loaded.version == 3 && loaded.parent == 2)
        #expect(loaded.safetensors() == bytes)
    }

    @Test("files that break BOP.md are refused, naming what is wrong")
    func refusals() throws {
        let bytes = try model().safetensors()
        func refusal(_ transform: (inout [String: StoredTensor], inout [String: String]) throws -> Void) throws -> String {
            var (tensors, metadata) = try Safetensors.read(bytes)
            try transform(&tensors, &metadata)
            do {
                _ = try BOPModel(safetensors: Safetensors.write(tensors: tensors, metadata: metadata))
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        func config(_ m: [String: String], _ change: (inout [String: Any]) -> Void) throws -> String {
            var object = try #require(JSONSerialization.jsonObject(with: Data((m["config"] ?? "").utf8)) as? [String: Any])
            change(&object)
            return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        #expect(try refusal { _, m in m["format"] = "dinop/1" }.contains("expected \"dinop/2\""))
        #expect(try refusal { t, _ in t["bop.layers.9.linear1.weight"] = StoredTensor(shape: [1], values: [0]) }
            .contains("bop.layers.9.linear1.weight"))
        #expect(try refusal { t, _ in t["bop.out.bias"] = nil }.contains("missing tensor \"bop.out.bias\""))
        // A "bop" that is not an object is refused, not handed to a serialiser that stops the process on it.
        for value: Any in [NSNull(), 5, "x", [1, 2]] {
            #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = value } }.contains("no \"bop\" object"))
        }
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 2, "heads": 2, "ffn": 6, "max_history": 5] } }
            .contains("needs \"item_rows\""))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 2, "heads": 3, "ffn": 6, "max_history": 5, "item_rows": 31] } }
            .contains("not divisible"))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 2, "heads": 2, "ffn": 6, "max_history": 5, "item_rows": 31, "dropout": 0.3] } }
            .contains("unknown key \"dropout\""))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 2, "heads": 2, "ffn": 6, "max_history": 5, "item_rows": Int.max] } }
            .contains("item_rows must be in"))
        // Sizes the file cannot hold are refused before anything is allocated for them.
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 1000, "heads": 2, "ffn": 6, "max_history": 5, "item_rows": 31] } }
            .contains("the file holds fewer"))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 1 << 24, "heads": 2, "ffn": 6, "max_history": 5, "item_rows": 31] } }
            .contains("layers must be in 1...1024"))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["extensions"] = ["bop", "market-embedding"] } }
            .contains("lists no other extension"))
        #expect(try refusal { t, _ in t["bop.rep.weight"] = StoredTensor(shape: [8, 4], values: Array(repeating: 0, count: 32)) }
            .contains("holds no bop.rep.weight"))
        #expect(try refusal { t, _ in t["bop.mkt.emb"] = StoredTensor(shape: [3, 8], values: Array(repeating: 0, count: 24)) }
            .contains("bop.mkt.emb"))
        #expect(try refusal { t, _ in
            var emb = t["bop.out.weight"]!
            emb.values[0] = .nan
            t["bop.out.weight"] = emb
        }.contains("holds nan"))
    }

    /// A small item model: market-embedding over `markets` when given, MODEL.md's model otherwise.
    func itemModel(markets: [String]? = nil) throws -> DINOPModel {
        var config = ModelConfig.default
        (config.hidden, config.attention) = (6, 4)
        if let markets { (config.extensions, config.markets) = ([ModelExtension.marketEmbedding], markets) }
        return try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 13, width: 3, encoderWidth: 5, headHidden: 4),
                                     seed: 2)
    }

    @Test("a combined file: both readers take their part, the item model publishes rep, the BOP part reads it",
          arguments: [false, true])
    func combinedFile(marketModel: Bool) throws {
        let item = try itemModel(markets: marketModel ? ["de", "jp"] : nil)
        let r = item.layout.representationWidth
        var bop = try BOPModel.random(config: BOPConfig(width: 8, layers: 1, heads: 2, ffn: 6, maxHistory: 5, itemRows: 31),
                                      markets: ["de", "jp"], repWidth: r, seed: 4)
        bop.version = 9
        let bytes = try bop.combined(with: item).safetensors()
        let readItem = try DINOPModel(safetensors: bytes)
        #expect(readItem.parameters.values.map(\.bitPattern) == item.parameters.values.map(\.bitPattern))
        #expect(readItem.config.extensions.last == "bop" && readItem.config.bop == bop.config && readItem.publishesRepresentation)
        #expect(readItem.version == item.version, "an item-model version")
        // A fine-tune changes the item model's values and version in a copy (FineTuning's `start`): the BOP part and
        // its config go along.
        var tuned = readItem
        tuned.parameters.values[0] += 1
        (tuned.version, tuned.parent) = (readItem.version + 1, readItem.version)
        let tunedBOP = try BOPModel(safetensors: tuned.safetensors())
        #expect(tunedBOP.values.map(\.bitPattern) == bop.values.map(\.bitPattern) && tunedBOP.version == readItem.version + 1)
        #expect(try DINOPModel(safetensors: tuned.safetensors()).parameters.values[0] == tuned.parameters.values[0])
        let readBOP = try BOPModel(safetensors: bytes)
        #expect(readBOP.values.map(\.bitPattern) == bop.values.map(\.bitPattern) && readBOP.repWidth == r)

        // The item model's predictions carry rep only from such a file, and are otherwise the same.
        let network = Network(item.parameters)
        var scorer = Scorer(network: network, capacity: 4)
        var rng = SeededGenerator(seed: 1)
        func values(_ group: FeatureGroup) -> [Float] { item.config.names(group).map { _ in Float(rng.normal()) } }
        let items = (0..<3).map { _ in
            network.encode(RawItem(sii: item.config.siiFields.map { _ in "id-\(rng.next() % 20)" }, sis: values(.sis), su: values(.su),
                                   days: (0..<4).map { _ in RawDay(dis: values(.dis), du: values(.du)) }, act: values(.act)))
        }
        let plain = scorer.predict(items), withRep = scorer.predict(items, representation: true)
        #expect(plain.allSatisfy { $0.rep == nil } && withRep.allSatisfy { $0.rep?.count == r })
        #expect(zip(plain, withRep).allSatisfy { a, b in var b = b; b.rep = nil; return a == b })
        // rep's last D_sii + D_sis entries are the static encodings; before any day rep_d is zero.
        let fresh = scorer.predict(items.map { var e = $0; e.dayCount = 0; return e }, representation: true)
        #expect(fresh.allSatisfy { $0.rep.map { $0.prefix(item.config.hidden).allSatisfy { $0 == 0 } } ?? false })
        #expect(zip(fresh, withRep).allSatisfy { a, b in a.rep?.suffix(r - item.config.hidden) == b.rep?.suffix(r - item.config.hidden) })
    }

    @Test("combined files that cannot serve are refused: another market list, a rep of another width, a stray tensor")
    func combinedRefusals() throws {
        let bop = try BOPModel.random(config: BOPConfig(width: 8, layers: 1, heads: 2, ffn: 6, maxHistory: 5, itemRows: 31),
                                      markets: ["de", "jp"], seed: 4)
        #expect(throws: BOPError.self) { try bop.combined(with: try itemModel(markets: ["jp", "de"])) }
        let item = try itemModel()
        let wide = try BOPModel.random(config: bop.config, markets: bop.markets, repWidth: item.layout.representationWidth + 1, seed: 4)
        #expect(throws: BOPError.self) { try wide.combined(with: item) }
        // A rep wider than a prediction carries: refused when combined, and by the item reader.
        var config = ModelConfig.default
        (config.hidden, config.attention) = (6, 4)
        let huge = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 13, width: 3, encoderWidth: 8_200, headHidden: 4),
                                         seed: 2)
        #expect(huge.layout.representationWidth > DINOPModel.largestPublishedRepresentation)
        let hugeBOP = try BOPModel.random(config: bop.config, markets: bop.markets, repWidth: huge.layout.representationWidth, seed: 4)
        #expect(throws: BOPError.self) { try hugeBOP.combined(with: huge) }
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: try BOPModel.random(config: bop.config, markets: bop.markets, seed: 4)
            .combined(with: huge).safetensors().replacingRepWeight(rows: 8, columns: huge.layout.representationWidth)) }
        // The item reader checks bop.rep.weight's width itself, and still refuses names no extension has.
        var (tensors, metadata) = try Safetensors.read(try bop.combined(with: item).safetensors())
        tensors["bop.rep.weight"] = StoredTensor(shape: [8, item.layout.representationWidth + 1],
                                                 values: Array(repeating: 0, count: 8 * (item.layout.representationWidth + 1)))
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: Safetensors.write(tensors: tensors, metadata: metadata)) }
        tensors["bop.rep.weight"] = nil
        tensors["competition.weight"] = StoredTensor(shape: [1], values: [0])
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: Safetensors.write(tensors: tensors, metadata: metadata)) }
        // Without the extension listed, bop.* tensors are strays.
        (tensors, metadata) = try Safetensors.read(try bop.combined(with: try itemModel(markets: ["de", "jp"])).safetensors())
        metadata["config"] = metadata["config"]?.replacingOccurrences(of: #","bop"]"#, with: "]")
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: Safetensors.write(tensors: tensors, metadata: metadata)) }
    }
}

private extension Data {
    /// The same weight file with a `bop.rep.weight` of zeros of this shape added.
    func replacingRepWeight(rows: Int, columns: Int) throws -> Data {
        var (tensors, metadata) = try Safetensors.read(self)
        tensors["bop.rep.weight"] = StoredTensor(shape: [rows, columns], values: Array(repeating: 0, count: rows * columns))
        return Safetensors.write(tensors: tensors, metadata: metadata)
    }
}


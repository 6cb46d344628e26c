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
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 2, "heads": 2, "ffn": 6, "max_history": 5] } }
            .contains("needs \"item_rows\""))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 2, "heads": 3, "ffn": 6, "max_history": 5, "item_rows": 31] } }
            .contains("not divisible"))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 2, "heads": 2, "ffn": 6, "max_history": 5, "item_rows": 31, "dropout": 0.3] } }
            .contains("unknown key \"dropout\""))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["bop"] = ["width": 8, "layers": 2, "heads": 2, "ffn": 6, "max_history": 5, "item_rows": Int.max] } }
            .contains("item_rows must be in"))
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
}

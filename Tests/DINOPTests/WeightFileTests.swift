import DINOP
import Foundation
import Testing

@Suite("Weight files")
struct WeightFileTests {
    func model() throws -> DINOPModel {
        let config = smallConfig()
        var model = try DINOPModel.random(config: config, dims: smallDims(config), seed: 4)
        model.version = 7
        model.parent = 6
        return model
    }

    @Test("a written file reads back bit-identically, metadata included")
    func roundTrip() throws {
        let original = try model()
        let bytes = original.safetensors()
        let loaded = try DINOPModel(safetensors: bytes)
        #expect(loaded.parameters.values.map(\.bitPattern) == original.parameters.values.map(\.bitPattern))
        #expect(loaded.config == original.config && loaded.version == 7 && loaded.parent == 6)
        #expect(loaded.safetensors() == bytes)
        let (tensors, metadata) = try Safetensors.read(bytes)
        #expect(metadata["format"] == "dinop/1" && metadata["version"] == "7" && metadata["parent"] == "6")
        #expect(tensors["gru.z.u"]?.shape == [6, 6])
    }

    @Test("the seed decides the initial weights")
    func seeded() throws {
        let config = smallConfig()
        let a = try DINOPModel.random(config: config, dims: smallDims(config), seed: 1)
        let b = try DINOPModel.random(config: config, dims: smallDims(config), seed: 1)
        let c = try DINOPModel.random(config: config, dims: smallDims(config), seed: 2)
        #expect(a.parameters.values == b.parameters.values && a.parameters.values != c.parameters.values)
    }

    @Test("extension tensors survive a round trip")
    func extensions() throws {
        var original = try model()
        original.extraTensors["market.emb.cn"] = StoredTensor(shape: [2], values: [1, 2])
        let loaded = try DINOPModel(safetensors: original.safetensors())
        #expect(loaded.extraTensors["market.emb.cn"]?.values == [1, 2])
    }

    func rewrite(_ transform: (inout [String: StoredTensor], inout [String: String]) -> Void) throws -> Data {
        var (tensors, metadata) = try Safetensors.read(model().safetensors())
        transform(&tensors, &metadata)
        return Safetensors.write(tensors: tensors, metadata: metadata)
    }

    @Test("malformed files are refused with a clear error")
    func refusals() throws {
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: Data("hello".utf8)) }
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: Data([255, 255, 255, 255, 0, 0, 0, 0] + Array(repeating: 0, count: 16))) }
        var header = Data([8, 0, 0, 0, 0, 0, 0, 0])
        header.append(contentsOf: Array("not json".utf8))
        #expect(throws: ModelError.notSafetensors("header is not JSON")) { try DINOPModel(safetensors: header) }
        let truncated = try model().safetensors().dropLast(4)
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: Data(truncated)) }

        let wrongFormat = try rewrite { _, metadata in metadata["format"] = "dinop/3" }
        #expect(throws: ModelError.wrongFormat("format is \"dinop/3\", expected \"dinop/1\" or \"dinop/2\"")) {
            try DINOPModel(safetensors: wrongFormat)
        }
        let noExtension = try rewrite { _, metadata in metadata["format"] = "dinop/2" }
        #expect(throws: ModelError.wrongFormat("a dinop/2 file lists no extension (without one a file is dinop/1)")) {
            try DINOPModel(safetensors: noExtension)
        }
        let noFormat = try rewrite { _, metadata in metadata = [:] }
        #expect(throws: ModelError.wrongFormat("metadata has no \"format\"")) { try DINOPModel(safetensors: noFormat) }
        let missing = try rewrite { tensors, _ in tensors["att.w_su"] = nil }
        #expect(throws: ModelError.missingTensor("att.w_su")) { try DINOPModel(safetensors: missing) }
        let badShape = try rewrite { tensors, _ in tensors["gru.n.u"] = StoredTensor(shape: [6, 5], values: Array(repeating: 0, count: 30)) }
        #expect(throws: ModelError.shapeMismatch(name: "gru.n.u", expected: [6, 6], found: [6, 5])) {
            try DINOPModel(safetensors: badShape)
        }
        let notFinite = try rewrite { tensors, _ in tensors["head.ss.fc2.bias"]!.values[0] = .nan }
        #expect(throws: ModelError.wrongFormat("tensor \"head.ss.fc2.bias\" holds nan at index 0")) {
            try DINOPModel(safetensors: notFinite)
        }
        let zeroStd = try rewrite { tensors, _ in tensors["dis.norm.std"]!.values[2] = 0 }
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: zeroStd) }
        // Sizes a file claims but cannot hold: refused before anything is allocated, not a trap.
        let huge = try rewrite { tensors, _ in
            tensors["head.gmv.fc1.weight"] = StoredTensor(shape: [1 << 40, 0], values: [])
        }
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: huge) }
        let overflowing = try rewrite { tensors, _ in tensors["extra"] = StoredTensor(shape: [0], values: []) }
        var bytes = overflowing
        if let range = bytes.range(of: Data("\"extra\":{\"dtype\":\"F32\",\"shape\":[0]".utf8)) {
            bytes.replaceSubrange(range, with: Data("\"extra\":{\"dtype\":\"F32\",\"shape\":[9]".utf8))
        }
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: bytes) }
        let badConfig = try rewrite { _, metadata in metadata["config"] = "{\"hidden\": 6}" }
        #expect(throws: ModelError.self) { try DINOPModel(safetensors: badConfig) }
    }

    @Test("a file read from disk that does not exist is an error, not a crash")
    func missingFile() {
        #expect(throws: ModelError.self) {
            try DINOPModel(contentsOf: URL(fileURLWithPath: "/nonexistent/model.safetensors"))
        }
    }
}

@Suite("Weight files with MARKETS.md extensions")
struct ExtensionWeightFileTests {
    func marketModel() throws -> DINOPModel {
        let config = smallMarketConfig()
        let layout = try ParameterLayout(config: config, dims: smallDims(config))
        return DINOPModel(parameters: randomParameters(layout, seed: 21), version: 3)
    }

    /// The model's file with its metadata and tensors changed by `transform`.
    func rewritten(_ model: DINOPModel, _ transform: (inout [String: StoredTensor], inout [String: String]) throws -> Void) throws -> Data {
        var (tensors, metadata) = try Safetensors.read(model.safetensors())
        try transform(&tensors, &metadata)
        return Safetensors.write(tensors: tensors, metadata: metadata)
    }

    /// The config of a file as a JSON object, changed by `transform`, back as text.
    func config(_ metadata: [String: String], _ transform: (inout [String: Any]) -> Void) throws -> String {
        var object = try #require(JSONSerialization.jsonObject(with: Data((metadata["config"] ?? "").utf8)) as? [String: Any])
        transform(&object)
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
    }

    @Test("a market-embedding model is dinop/2 with its market tensors, and reads back bit-identically")
    func roundTrip() throws {
        let original = try marketModel()
        let bytes = original.safetensors()
        let (tensors, metadata) = try Safetensors.read(bytes)
        #expect(metadata["format"] == "dinop/2")
        #expect(tensors["mkt.gru.z"]?.shape == [6, 8] && tensors["mkt.att"]?.shape == [4, 8])
        let loaded = try DINOPModel(safetensors: bytes)
        #expect(loaded.config == original.config && loaded.config.markets.count == 8)
        #expect(loaded.parameters.values.map(\.bitPattern) == original.parameters.values.map(\.bitPattern))
        #expect(loaded.safetensors() == bytes)
    }

    @Test("a file without extensions keeps MODEL.md's config text and format exactly")
    func plainUnchanged() throws {
        let config = smallConfig()
        let model = try DINOPModel.random(config: config, dims: smallDims(config), seed: 4)
        let (_, metadata) = try Safetensors.read(model.safetensors())
        #expect(metadata["format"] == "dinop/1")
        #expect(!(metadata["config"] ?? "").contains("extensions") && !(metadata["config"] ?? "").contains("markets"))
    }

    @Test("extension files that break MARKETS.md are refused, naming what is wrong")
    func refusals() throws {
        let model = try marketModel()
        func refusal(_ transform: (inout [String: StoredTensor], inout [String: String]) throws -> Void) throws -> String {
            let data = try rewritten(model, transform)
            do {
                _ = try DINOPModel(safetensors: data)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(try refusal { _, m in m["format"] = "dinop/1" }.contains("lists extensions"))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["extensions"] = ["market-embedding", "colour"] } }
            .contains("unknown extension \"colour\""))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["extensions"] = [String]() } }
            .contains("lists no extension"))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["markets"] = nil } }.contains("has no \"markets\""))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["markets"] = ["cn", "cn"] } }.contains("markets has duplicates"))
        #expect(try refusal { t, _ in t["mkt.gru.q"] = StoredTensor(shape: [1], values: [0]) }.contains("tensor \"mkt.gru.q\""))
        #expect(try refusal { t, _ in t["mkt.att"] = StoredTensor(shape: [4, 7], values: Array(repeating: 0, count: 28)) }
            .contains("mkt.att"))
        #expect(try refusal { _, m in
            m["config"] = try config(m) { $0["sii_fields"] = ["region", "industry", "seller", "brand"] }
        }.contains("must list \"market\""))
    }

    func domainModel() throws -> DINOPModel {
        let config = smallDomainConfig()
        let layout = try ParameterLayout(config: config, dims: domainDims(config))
        return DINOPModel(parameters: randomParameters(layout, seed: 22), version: 2, parent: 1)
    }

    @Test("a domain-attention model reads back bit-identically; its discriminators are optional in a file")
    func domainRoundTrip() throws {
        let original = try domainModel()
        let bytes = original.safetensors()
        let (tensors, metadata) = try Safetensors.read(bytes)
        #expect(metadata["format"] == "dinop/2")
        #expect((metadata["config"] ?? "").contains("\"domain_attention\":{\"gate\":[3,2],\"spec_rows\":5,\"spec_width\":2,\"width\":4}"))
        #expect(tensors["sii.spec.brand"]?.shape == [8 * 5, 2] && tensors["gate.m.l0.weight"]?.shape == [8, 3, 5])
        #expect(tensors["spec.fc.weight"]?.shape == [8, 4, 4 * 5] && tensors["head.ss.spec.weight"]?.shape == [8, 4, 4])
        #expect(tensors["dom.c.weight"]?.shape == [8, 6 + 5 + 5] && tensors["dom.m.bias"]?.shape == [8])
        let loaded = try DINOPModel(safetensors: bytes)
        #expect(loaded.config == original.config)
        #expect(loaded.parameters.values.map(\.bitPattern) == original.parameters.values.map(\.bitPattern))
        #expect(loaded.safetensors() == bytes)

        // Without its discriminators: the same predictions, discriminators at zero (training starts them fresh).
        let bare = try DINOPModel(safetensors: try rewritten(original) { t, _ in
            for name in ["dom.c.weight", "dom.c.bias", "dom.m.weight", "dom.m.bias"] { t[name] = nil }
        })
        #expect(bare.parameters["dom.c.weight"].allSatisfy { $0 == 0 })
        var rng = SeededGenerator(seed: 3)
        let items = (0..<20).map { randomItem(original.config, days: $0 % 5, rng: &rng) }
        func predictions(_ model: DINOPModel) -> [Prediction] {
            let network = Network(model.parameters)
            var scorer = Scorer(network: network, capacity: 8)
            return scorer.predict(items.map { network.encode($0) })
        }
        #expect(predictions(bare) == predictions(original))
    }

    @Test("domain-attention files that break MARKETS.md are refused, naming what is wrong")
    func domainRefusals() throws {
        let model = try domainModel()
        func refusal(_ transform: (inout [String: StoredTensor], inout [String: String]) throws -> Void) throws -> String {
            do {
                _ = try DINOPModel(safetensors: try rewritten(model, transform))
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(try refusal { t, _ in t["dom.x.weight"] = StoredTensor(shape: [1], values: [0]) }.contains("tensor \"dom.x.weight\""))
        #expect(try refusal { t, _ in t["dom.c.bias"] = StoredTensor(shape: [7], values: Array(repeating: 0, count: 7)) }
            .contains("dom.c.bias"))
        #expect(try refusal { t, _ in t["gate.c.l0.weight"] = nil }.contains("lacks tensor \"gate.c.l0.weight\""))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["domain_attention"] = ["spec_rows": 5, "colour": 1] } }
            .contains("unknown key \"colour\""))
        // A key left out takes its default, and then the tensors' shapes disagree with it.
        let defaulted = try refusal { _, m in m["config"] = try config(m) { $0["domain_attention"] = ["spec_rows": 5, "gate": [3, 2], "width": 4] } }
        #expect(defaulted.contains("sii.spec.market"), "\(defaulted)")
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["domain_attention"] = ["spec_rows": 0] } }
            .contains("gate sizes in 1...16777216"))
        // Sizes from a file are bounded before anything multiplies them.
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["domain_attention"] = ["spec_rows": Int.max / 2, "spec_width": 2] } }
            .contains("gate sizes in 1...16777216"))
        #expect(try refusal { _, m in m["config"] = try config(m) { $0["domain_attention"] = ["width": Int.max] } }
            .contains("gate sizes in 1...16777216"))
        // Every shared embedding must have one width.
        #expect(try refusal { t, _ in t["sii.emb.brand"] = StoredTensor(shape: [3, 2], values: Array(repeating: 0, count: 6)) }
            .contains("one width"))
    }
}


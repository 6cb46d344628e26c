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

        let wrongFormat = try rewrite { _, metadata in metadata["format"] = "dinop/2" }
        #expect(throws: ModelError.wrongFormat("format is \"dinop/2\", expected \"dinop/1\"")) {
            try DINOPModel(safetensors: wrongFormat)
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

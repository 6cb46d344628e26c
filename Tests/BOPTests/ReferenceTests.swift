@testable import BOP
import DINOP
import Foundation
import Testing

/// Runs the numpy-only reference of BOP.md (Tests/Fixtures/bop_reference.py, checked against PyTorch's
/// `nn.TransformerEncoderLayer` when it was written) into a fresh folder.
func bopReference(_ arguments: [String]) throws -> URL {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/bop_reference.py")
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bop-ref-\(UUID().uuidString)")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script.path, "--out", folder.path] + arguments
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    try #require(process.terminationStatus == 0, "the reference script failed; is numpy installed (Deploy/setup.sh)?")
    return folder
}

struct ReferenceCase: Decodable {
    let user: String, market: String?, history: [String], candidate: String, rep: [Double]?, p: Double
}

struct ReferenceBatch: Decodable {
    let market: String?, history: [String], candidates: [String], p: [Double]
}

/// The model of a reference file; with `bop.rep.weight` (which BOP.md keeps out of a BOP-only file, so the reader
/// refuses it) the tensors are placed by name, to check the rep term's math.
func referenceModel(_ folder: URL) throws -> BOPModel {
    let data = try Data(contentsOf: folder.appendingPathComponent("model.safetensors"))
    let (tensors, metadata) = try Safetensors.read(data)
    guard let rep = tensors["bop.rep.weight"] else { return try BOPModel(safetensors: data) }
    #expect(throws: BOPError.self) { try BOPModel(safetensors: data) }
    let object = try #require(JSONSerialization.jsonObject(with: Data((metadata["config"] ?? "").utf8)) as? [String: Any])
    let config = try JSONDecoder().decode(BOPConfig.self, from: JSONSerialization.data(withJSONObject: object["bop"] ?? [:]))
    var model = try BOPModel(config: config, markets: object["markets"] as? [String] ?? [], repWidth: rep.shape[1])
    for spec in model.layout.specs { model.values.replaceSubrange(spec.range, with: try #require(tensors[spec.name]).values) }
    return model
}

@Suite("Agreement with the independent numpy implementation of BOP.md")
struct BOPReferenceTests {
    @Test("P(buy) matches the reference to 1e-5 absolute, each case alone and all cases together",
          arguments: [[String](), ["--rep-width", "6", "--seed", "8"], ["--markets=", "--layers", "1", "--seed", "9"],
                      ["--max-history", "2", "--heads", "1", "--width", "8", "--ffn", "5", "--item-rows", "1"],
                      ["--seed", "3", "--layers", "3", "--width", "32", "--heads", "8", "--ffn", "128", "--max-history", "50",
                       "--item-rows", "200003"]])
    func probabilities(arguments: [String]) throws {
        let folder = try bopReference(arguments)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try referenceModel(folder)
        let lines = try String(contentsOf: folder.appendingPathComponent("cases.jsonl"), encoding: .utf8).split(separator: "\n")
        let cases = try lines.map { try JSONDecoder().decode(ReferenceCase.self, from: Data($0.utf8)) }
        #expect(cases.count >= 19)
        let sequences = cases.map {
            model.sequence(purchases: $0.history, candidate: $0.candidate, market: $0.market, rep: $0.rep.map { $0.map(Float.init) })
        }
        let network = BOPNetwork<Float>(model)
        let together = network.probabilities(sequences)
        for (i, c) in cases.enumerated() {
            let alone = network.probabilities([sequences[i]])[0]
            #expect(abs(alone - c.p) <= 1e-5, "case \(i) (user \(c.user), \(c.history.count) purchases): \(alone) vs \(c.p)")
            // (Not bit for bit: OpenBLAS blocks a product of more rows differently.)
            #expect(abs(together[i] - alone) <= 1e-6, "case \(i): a batch gives each sequence its own pass")
        }
        #expect(Set(sequences.map(\.length)).count >= min(3, model.config.maxHistory) && sequences.contains { $0.length == 1 })

        let batch = try JSONDecoder().decode(ReferenceBatch.self, from: Data(contentsOf: folder.appendingPathComponent("batch.json")))
        let scored = network.probabilities(batch.candidates.map { model.sequence(purchases: batch.history, candidate: $0, market: batch.market) })
        for (got, want) in zip(scored, batch.p) { #expect(abs(got - want) <= 1e-5, "batch: \(got) vs \(want)") }
        // In float64 the same code agrees to rounding (of the float32 `rep` it is given).
        let exact = BOPNetwork<Double>(model).probabilities(sequences)
        for (got, c) in zip(exact, cases) { #expect(abs(got - c.p) <= (c.rep == nil ? 1e-9 : 1e-7)) }
    }
}

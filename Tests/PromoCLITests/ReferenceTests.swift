import DINOP
import Foundation
import PromoCLI
import PromoEvents
import Testing

/// Runs the numpy-only reference implementation (Tests/Fixtures/dinop_reference.py) into a fresh folder.
/// Deploy/setup.sh installs numpy, so a missing numpy is a failed setup, not a skipped test.
func referenceOutputs(hidden: Int, attention: Int, seed: Int, markets: String = "") throws -> URL {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/dinop_reference.py")
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dinop-ref-\(UUID().uuidString)")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script.path, "--out", folder.path, "--seed", String(seed), "--hidden", String(hidden),
                         "--attention", String(attention), "--items", "60", "--max-days", "30", "--check-incremental",
                         "--markets", markets]
    try process.run()
    process.waitUntilExit()
    try #require(process.terminationStatus == 0, "the reference script failed; is numpy installed (Deploy/setup.sh)?")
    return folder
}

func readLines<T: Decodable>(_ url: URL, as: T.Type) throws -> [T] {
    try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
        try JSONDecoder().decode(T.self, from: Data($0.utf8))
    }
}

func close(_ a: Double, _ b: Double, rtol: Double = 1e-4, atol: Double = 1e-6) -> Bool {
    abs(a - b) <= rtol * max(abs(a), abs(b)) + atol
}

@Suite("Agreement with the independent numpy implementation of MODEL.md")
struct ReferenceTests {
    @Test("promo predict matches the reference to 1e-4 relative (also with market-embedding; eu unlisted)",
          arguments: [(16, 8, 7, ""), (128, 64, 8, ""), (16, 8, 9, "cn,sea")])
    func predictions(hidden: Int, attention: Int, seed: Int, markets: String) throws {
        let folder = try referenceOutputs(hidden: hidden, attention: attention, seed: seed, markets: markets)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try DINOPModel(contentsOf: folder.appendingPathComponent("model.safetensors"))
        #expect(model.config.hidden == hidden && model.version == 1 && model.parent == nil)
        #expect(model.config.markets == markets.split(separator: ",").map(String.init))

        let (records, rejected, _) = try predictOffline(model: model, eventFiles: [folder.appendingPathComponent("events.jsonl")],
                                                     decoder: EventDecoder(presaleDays: 30))
        #expect(rejected.isEmpty, "\(rejected)")
        let expected = try readLines(folder.appendingPathComponent("expected.jsonl"), as: ReferencePrediction.self)
        let byID = Dictionary(uniqueKeysWithValues: records.map { ($0.itemID, $0) })
        #expect(byID.count == expected.count)
        var daysSeen = Set<Int>()
        for want in expected {
            let got = try #require(byID[want.itemID])
            daysSeen.insert(want.daysSeen)
            #expect(got.daysSeen == want.daysSeen)
            #expect(close(got.gmv, want.gmv!), "\(want.itemID) gmv \(got.gmv) vs \(want.gmv!)")
            #expect(close(got.bsp, want.bsp!), "\(want.itemID) bsp \(got.bsp) vs \(want.bsp!)")
            #expect(got.ss == want.slot, "\(want.itemID) slot")
            for (p, q) in zip(got.ssProbabilities, want.slotProbabilities!) {
                #expect(close(p, q), "\(want.itemID) slot probabilities \(p) vs \(q)")
            }
            #expect((got.ja == nil) == (want.ja == nil), "\(want.itemID) ja presence")
            if let ja = want.ja { #expect(close(got.ja!, ja), "\(want.itemID) ja \(got.ja!) vs \(ja)") }
        }
        #expect(daysSeen.contains(0) && daysSeen.count > 5)
    }

    @Test("a file written by the reference loads and is written back with the same tensors")
    func loadsForeignFile() throws {
        let folder = try referenceOutputs(hidden: 16, attention: 8, seed: 3)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try DINOPModel(contentsOf: folder.appendingPathComponent("model.safetensors"))
        let again = try DINOPModel(safetensors: model.safetensors())
        #expect(again.parameters.values.map(\.bitPattern) == model.parameters.values.map(\.bitPattern))
        #expect(again.config == model.config)
    }

    /// A line of the reference's expected.jsonl.
    struct ReferencePrediction: Decodable {
        let itemID: String, daysSeen: Int, gmv: Double?, bsp: Double?, slot: Int?, slotProbabilities: [Double]?, ja: Double?
        enum CodingKeys: String, CodingKey {
            case gmv, bsp, slot, ja, itemID = "item_id", daysSeen = "days_seen", slotProbabilities = "slot_probs"
        }
    }

    struct LabelCases: Decodable {
        let gmv: [Double]
        let industry: [String]
        let bsp: [Int]
        let slot: [Int]
    }

    @Test("best-seller and slot labels match the reference")
    func labels() throws {
        let folder = try referenceOutputs(hidden: 16, attention: 8, seed: 5)
        defer { try? FileManager.default.removeItem(at: folder) }
        let cases = try JSONDecoder().decode(LabelCases.self, from: Data(contentsOf: folder.appendingPathComponent("labels.json")))
        let (bestSeller, slot) = PromotionLabels.compute(gmv: cases.gmv, industry: cases.industry)
        #expect(bestSeller.map { $0 ? 1 : 0 } == cases.bsp)
        #expect(slot == cases.slot)
        #expect(cases.bsp.contains(1) && cases.bsp.contains(0) && Set(cases.slot).count > 3)
    }
}

import DINOP
import Foundation
import PromoCLI
import PromoEvents
import PromoFeatures
import Testing

/// Runs the numpy-only reference implementation (Tests/Fixtures/dinop_reference.py) into a fresh folder.
/// Deploy/setup.sh installs numpy, so a missing numpy is a failed setup, not a skipped test.
func referenceOutputs(hidden: Int, attention: Int, seed: Int, markets: String = "", extensions: String? = nil,
                      more: [String] = []) throws -> URL {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/dinop_reference.py")
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dinop-ref-\(UUID().uuidString)")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script.path, "--out", folder.path, "--seed", String(seed), "--hidden", String(hidden),
                         "--attention", String(attention), "--items", "60", "--max-days", "30", "--check-incremental",
                         "--markets", markets] + (extensions.map { ["--extensions", $0] } ?? []) + more
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
    @Test("promo predict matches the reference to 1e-4 relative (also with MARKETS.md's extensions; eu unlisted)",
          arguments: [(16, 8, 7, "", nil), (128, 64, 8, "", nil), (16, 8, 9, "cn,sea", nil),
                      (16, 8, 10, "cn,sea", "market-embedding,domain-attention"), (32, 8, 11, "cn,sea", "domain-attention")])
    func predictions(hidden: Int, attention: Int, seed: Int, markets: String, extensions: String?) throws {
        let folder = try referenceOutputs(hidden: hidden, attention: attention, seed: seed, markets: markets, extensions: extensions)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try DINOPModel(contentsOf: folder.appendingPathComponent("model.safetensors"))
        #expect(model.config.hidden == hidden && model.version == 1 && model.parent == nil)
        #expect(model.config.markets == markets.split(separator: ",").map(String.init))

        let (records, rejected, _) = try predictOffline(model: model, eventFiles: [folder.appendingPathComponent("events.jsonl")],
                                                     decoder: EventDecoder(presaleDays: 30))
        #expect(rejected.isEmpty, "\(rejected)")
        let expected = try readLines(folder.appendingPathComponent("expected.jsonl"), as: ReferencePrediction.self)
        let daysSeen = try Self.expectAgreement(records, expected)
        #expect(daysSeen.contains(0) && daysSeen.count > 5)
    }

    /// Each prediction against the reference's (1e-4 relative); the days seen of the items.
    static func expectAgreement(_ records: [PredictionEvent], _ expected: [ReferencePrediction]) throws -> Set<Int> {
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
        return daysSeen
    }

    /// MARKETS.md `competition`: every item's prediction reads its group (same promotion, market and industry) and,
    /// with cooperation, its industry's items of the other markets, as of one day. The reference loops over every
    /// pair with full softmaxes; the Swift side attends in key blocks with an online softmax.
    @Test("competition: promo predict matches the reference with all days and as of day 15 (with and without cooperation and domain-attention)",
          arguments: [(13, "market-embedding,competition", false), (14, "domain-attention,competition", false),
                      (15, "competition", true)])
    func competition(seed: Int, extensions: String, withoutCooperation: Bool) throws {
        let folder = try referenceOutputs(hidden: 16, attention: 8, seed: seed, markets: "cn,sea", extensions: extensions,
                                          more: (withoutCooperation ? ["--no-cooperation"] : []) + ["--as-of-day", "15"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try DINOPModel(contentsOf: folder.appendingPathComponent("model.safetensors"))
        #expect(model.config.competition == CompetitionSizes(width: 6, cooperation: !withoutCooperation))
        #expect((model.layout.spec("head.gmv.coop.weight") == nil) == withoutCooperation)
        let events = [folder.appendingPathComponent("events.jsonl")]
        for (asOfDay, file) in [(nil, "expected.jsonl"), (15, "expected_day15.jsonl")] as [(Int?, String)] {
            let (records, rejected, _) = try predictOffline(model: model, eventFiles: events,
                                                            decoder: EventDecoder(presaleDays: 30), asOfDay: asOfDay)
            #expect(rejected.isEmpty, "\(rejected)")
            let expected = try readLines(folder.appendingPathComponent(file), as: ReferencePrediction.self)
            let daysSeen = try Self.expectAgreement(records, expected)
            #expect(daysSeen.contains(0) && daysSeen.count > 5)
            if let asOfDay { #expect(daysSeen.allSatisfy { $0 <= asOfDay } && records.allSatisfy { $0.asOfDay == asOfDay }) }
        }
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

    /// MARKETS.md `domain-attention`: every item's gates, `rep`, `o` and both discriminators' probabilities, the
    /// domain losses and the feature importance per market, against the reference's float64 figures.
    @Test("domain-attention's gates, rep, o, discriminators, losses and feature importance match the reference")
    func domainViews() throws {
        let folder = try referenceOutputs(hidden: 16, attention: 8, seed: 12, markets: "cn,sea",
                                          extensions: "market-embedding,domain-attention")
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try DINOPModel(contentsOf: folder.appendingPathComponent("model.safetensors"))
        let records = try ItemRecords.read([folder.appendingPathComponent("events.jsonl")],
                                           decoder: EventDecoder(presaleDays: 30)) { Issue.record("rejected \($0)") }.records
        let pipeline = FeaturePipeline(config: model.config)
        let views = model.domainViews(records.map { pipeline.raw($0) })
        let byID = Dictionary(uniqueKeysWithValues: zip(records.map(\.key.itemID), views))
        let expected = try readLines(folder.appendingPathComponent("domain.jsonl"), as: ReferenceDomainView.self)
        #expect(byID.count == expected.count)
        func same(_ got: [Float], _ want: [Double], _ what: String) {
            #expect(got.count == want.count, "\(what): \(got.count) values, the reference \(want.count)")
            for (a, b) in zip(got, want) { #expect(close(Double(a), b), "\(what): \(a) vs \(b)") }
        }
        var withMarket = 0, without = 0
        for want in expected {
            let got = try #require(byID[want.itemID])
            #expect(got.market == want.market, "\(want.itemID) market")
            same(got.rep, want.rep, "\(want.itemID) rep")
            same(got.o, want.o, "\(want.itemID) o")
            same(got.sharedGates, want.gateShared, "\(want.itemID) shared gates")
            #expect((got.marketGates == nil) == (want.gateMarket == nil), "\(want.itemID) market gates presence")
            if let gates = want.gateMarket { same(got.marketGates ?? [], gates, "\(want.itemID) market gates") }
            same(got.repProbabilities, want.pRep, "\(want.itemID) p(market | rep)")
            same(got.oProbabilities, want.pO, "\(want.itemID) p(market | o)")
            if want.market == nil { without += 1 } else { withMarket += 1 }
        }
        #expect(withMarket > 10 && without > 10)

        let losses = try JSONDecoder().decode(ReferenceDomainLoss.self,
                                              from: Data(contentsOf: folder.appendingPathComponent("domain_loss.json")))
        let summary = DomainSummary(views: views, markets: model.config.markets)
        #expect(summary.losses.items == losses.n)
        #expect(close(summary.losses.discriminator, losses.discriminator))
        #expect(close(summary.losses.entropy, losses.entropy))
        #expect(close(summary.losses.spec, losses.spec))
        #expect(summary.importance.keys.sorted() == losses.importance.keys.sorted())
        for (market, want) in losses.importance {
            for (a, b) in zip(summary.importance[market] ?? [], want) { #expect(close(a, b), "importance \(market): \(a) vs \(b)") }
        }
    }

    struct ReferenceDomainView: Decodable {
        let itemID: String, market: Int?, rep: [Double], o: [Double], gateShared: [Double], gateMarket: [Double]?
        let pRep: [Double], pO: [Double]
        enum CodingKeys: String, CodingKey {
            case market, rep, o, itemID = "item_id", gateShared = "gate_shared", gateMarket = "gate_market"
            case pRep = "p_rep", pO = "p_o"
        }
    }

    struct ReferenceDomainLoss: Decodable {
        let n: Int, discriminator: Double, entropy: Double, spec: Double, importance: [String: [Double]]
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

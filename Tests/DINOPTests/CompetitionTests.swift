@testable import DINOP
import Foundation
import Testing

/// `smallDomainConfig` (or `smallMarketConfig`) with MARKETS.md's `competition` at F = 3.
func smallCompetitionConfig(cooperation: Bool = true, domain: Bool = true) -> ModelConfig {
    var config = domain ? smallDomainConfig() : smallMarketConfig()
    config.extensions.append(ModelExtension.competition)
    config.competition = CompetitionSizes(width: 3, cooperation: cooperation)
    return config
}

@Suite("MARKETS.md competition")
struct CompetitionTests {
    /// One promotion's industry "x" has a market group of 1,100 items (three key blocks) and smaller groups in other
    /// markets (listed, unlisted, empty, missing); a second promotion and a missing industry group apart.
    static func keys(_ n: Int) -> [CompetitionKey] {
        let markets: [String?] = ["id-1", "id-2", "unlisted", "", nil]
        return (0..<n).map { i in
            if i < 1_100 { return CompetitionKey(promotion: "p", market: "id-0", industry: "x") }
            if i < 1_500 { return CompetitionKey(promotion: "p", market: markets[i % markets.count], industry: "x") }
            return CompetitionKey(promotion: i % 2 == 0 ? "q" : "p", market: "id-0", industry: i % 4 == 1 ? nil : "x")
        }
    }

    @Test("f, c and q in key blocks equal plain loops over every pair (groups of 1,100, unseen items, cooperation across markets)",
          arguments: [true, false])
    func blockedAttention(cooperation: Bool) throws {
        let config = smallCompetitionConfig(cooperation: cooperation)
        let layout = try ParameterLayout(config: config, dims: domainDims(config))
        let network = Network(randomParameters(layout, seed: 5).converted(to: Double.self))
        let weights = try #require(network.competition)
        let n = 1_600, r = network.representationWidth, inWidth = weights.inputWidth, F = weights.width
        var rng = SeededGenerator(seed: 9)
        let rep = (0..<(n * r)).map { _ in rng.normal() }
        let o = (0..<(n * (inWidth - r))).map { _ in max(rng.normal(), 0) }
        let keys = Self.keys(n)
        let seen = (0..<n).map { _ in rng.unit() > 0.2 }
        let pass = CompetitionPass(network: network, weights: weights, rep: rep, o: o, keys: keys, seen: seen)

        // f_i = leaky_relu(W concat(rep_i, o_i) + b), by loops.
        let w = network.parameters["comp.fc.weight"].map { $0 }, b = network.parameters["comp.fc.bias"].map { $0 }
        var f = [[Double]]()
        for i in 0..<n {
            let x = Array(rep[(i * r)..<((i + 1) * r)]) + Array(o[(i * (inWidth - r))..<((i + 1) * (inWidth - r))])
            f.append((0..<F).map { j in
                let pre = b[j] + (0..<inWidth).reduce(0.0) { $0 + w[j * inWidth + $1] * x[$1] }
                return pre > 0 ? pre : 0.01 * pre
            })
        }
        func attend(_ i: Int, over js: [Int]) -> [Double] {
            guard !js.isEmpty else { return Array(repeating: 0, count: F) }
            let scores = js.map { j in zip(f[i], f[j]).reduce(0) { $0 + $1.0 * $1.1 } / Double(F).squareRoot() }
            let top = scores.max()!, weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
            return (0..<F).map { d in zip(js, weights).reduce(0) { $0 + $1.1 * f[$1.0][d] } / total }
        }
        let theta = 1 / (1 + exp(-network.parameters["comp.theta"].first!))
        var worst = 0.0, attendedOverBlocks = 0
        for i in 0..<n {
            let group = [i] + (0..<n).filter { $0 != i && seen[$0] && keys[$0] == keys[i] }
            if group.count > CompetitionPass<Double>.keyBlock { attendedOverBlocks += 1 }
            let attended = attend(i, over: group)
            let c = (0..<F).map { theta * f[i][$0] + (1 - theta) * attended[$0] }
            let q = cooperation ? attend(i, over: (0..<n).filter {
                seen[$0] && keys[$0].promotion == keys[i].promotion && keys[$0].industry == keys[i].industry
                    && keys[$0].market != keys[i].market
            }) : Array(repeating: 0, count: F)
            for d in 0..<F {
                worst = max(worst, abs(pass.f[i * F + d] - f[i][d]), abs(pass.c[i * F + d] - c[d]), abs(pass.q[i * F + d] - q[d]))
            }
        }
        #expect(worst <= 1e-9, "largest difference \(worst)")
        #expect(attendedOverBlocks >= 1_000)
        // q is not trivially zero with cooperation (nor c trivially f).
        #expect(pass.q.contains { $0 != 0 } == cooperation)
        #expect(zip(pass.c, pass.f).contains { abs($0 - $1) > 1e-3 })
    }

    @Test("an item alone in its group: c = f; with no neighbour q = 0; an unseen item is nobody's competitor")
    func edges() throws {
        let config = smallCompetitionConfig(domain: false)
        let layout = try ParameterLayout(config: config, dims: smallDims(config))
        let network = Network(randomParameters(layout, seed: 6).converted(to: Double.self))
        let weights = try #require(network.competition)
        let r = network.representationWidth, F = weights.width
        var rng = SeededGenerator(seed: 2)
        let rep = (0..<(3 * r)).map { _ in rng.normal() }
        let keys = [CompetitionKey(promotion: "p", market: "id-0", industry: "x"),
                    CompetitionKey(promotion: "p", market: "id-0", industry: "x"),
                    CompetitionKey(promotion: "p", market: "id-1", industry: "x")]
        // Item 1 unseen: item 0 is alone in its group; item 2's only neighbour is item 0.
        let pass = CompetitionPass(network: network, weights: weights, rep: rep, o: [], keys: keys, seen: [true, false, true])
        for d in 0..<F {
            #expect(abs(pass.c[d] - pass.f[d]) <= 1e-12)
            #expect(abs(pass.q[2 * F + d] - pass.f[d]) <= 1e-12)
        }
        // Item 1 attends to itself and item 0; item 0's neighbour is item 2.
        #expect((0..<F).contains { abs(pass.c[F + $0] - pass.f[F + $0]) > 1e-6 })
        #expect((0..<F).allSatisfy { abs(pass.q[$0] - pass.f[2 * F + $0]) <= 1e-12 })
        // Byte-wise ids: canonically equivalent but different strings are different markets.
        #expect(CompetitionKey(promotion: "p", market: "caf\u{E9}", industry: "x") != CompetitionKey(promotion: "p", market: "cafe\u{301}", industry: "x"))
        #expect(CompetitionKey(promotion: "p", market: nil, industry: nil) == CompetitionKey(promotion: "p", market: "", industry: ""))
    }

    @Test("a competition model reads back bit-identically and predicts as before; files that break MARKETS.md are refused")
    func weightFile() throws {
        let config = smallCompetitionConfig()
        let layout = try ParameterLayout(config: config, dims: domainDims(config))
        let model = DINOPModel(parameters: randomParameters(layout, seed: 8), version: 2)
        let bytes = model.safetensors()
        let (tensors, metadata) = try Safetensors.read(bytes)
        #expect((metadata["config"] ?? "").contains("\"competition\":{\"cooperation\":true,\"width\":3}"))
        let r = 6 + 5 + 5
        #expect(tensors["comp.fc.weight"]?.shape == [3, r + 4] && tensors["comp.theta"]?.shape == [1])
        #expect(tensors["head.ss.comp.weight"]?.shape == [4, 3] && tensors["head.ja.coop.weight"]?.shape == [4, 3])
        let loaded = try DINOPModel(safetensors: bytes)
        #expect(loaded.config == model.config && loaded.safetensors() == bytes)

        func refusal(_ transform: (inout [String: StoredTensor], inout [String: Any]) -> Void) -> String {
            do {
                var (t, m) = try Safetensors.read(bytes)
                var object = try #require(JSONSerialization.jsonObject(with: Data((m["config"] ?? "").utf8)) as? [String: Any])
                transform(&t, &object)
                m["config"] = String(decoding: try JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
                _ = try DINOPModel(safetensors: Safetensors.write(tensors: t, metadata: m))
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal { _, _ in } == "accepted")
        // Without cooperation no head may hold a coop.weight.
        #expect(refusal { _, c in c["competition"] = ["cooperation": false, "width": 3] }.contains("coop.weight"))
        #expect(refusal { t, c in
            c["competition"] = ["cooperation": false, "width": 3]
            for head in Head.allCases { t["head.\(head.rawValue).coop.weight"] = nil }
        } == "accepted")
        #expect(refusal { t, _ in t["comp.theta"] = StoredTensor(shape: [], values: [0]) }.contains("comp.theta"))
        #expect(refusal { _, c in c["competition"] = ["width": 3, "colour": 1] }.contains("unknown key \"colour\""))
        // A key left out takes its default (32), and then the tensors disagree with it.
        #expect(refusal { _, c in c["competition"] = ["cooperation": true] }.contains("comp.fc.weight"))
        #expect(refusal { _, c in c["competition"] = ["width": 0] }.contains("competition.width must be in 1...65536"))
        #expect(refusal { _, c in c["competition"] = ["width": Int.max] }.contains("competition.width must be in 1...65536"))
        #expect(refusal { _, c in c["sii_fields"] = ["market", "sector", "seller", "brand"] }.contains("must list \"industry\""))
    }

    @Test("predictions with competition: each item's reads its group as of the day; a plain model's are unchanged")
    func scorer() throws {
        let config = smallCompetitionConfig()
        let layout = try ParameterLayout(config: config, dims: domainDims(config))
        let network = Network(randomParameters(layout, seed: 11))
        var rng = SeededGenerator(seed: 4)
        var items = (0..<40).map { randomItem(config, days: $0 % 6, rng: &rng) }
        for i in items.indices { items[i].sii[0] = ["id-0", "id-1", "unlisted"][i % 3] }
        let keys = items.map { CompetitionKey(promotion: "p", market: $0.sii[0], industry: $0.sii[1]) }
        var scorer = Scorer(network: network, capacity: 16)
        let encoded = items.map { network.encode($0) }
        let together = scorer.predict(competing: Array(zip(encoded, keys)).map { (item: $0, key: $1) })
        // The same items scored in another order give the same predictions (the batches differ, the groups do not).
        let order = Array(items.indices.reversed())
        let reordered = scorer.predict(competing: order.map { (item: encoded[$0], key: keys[$0]) })
        for (row, i) in order.enumerated() {
            #expect(relativeClose(reordered[row].gmv!, together[i].gmv!, rtol: 1e-5, atol: 1e-6))
            #expect(relativeClose(reordered[row].bsp!, together[i].bsp!, rtol: 1e-5, atol: 1e-6))
        }
        // Removing one seen item of a group changes its group mates' predictions, not another group's.
        let removed = try #require(items.indices.first { i in
            items[i].days.count > 0 && items.indices.contains { $0 != i && keys[$0] == keys[i] }
        })
        let rest = items.indices.filter { $0 != removed }
        let without = scorer.predict(competing: rest.map { (item: encoded[$0], key: keys[$0]) })
        var mates = 0, others = 0
        for (row, i) in rest.enumerated() {
            let same = relativeClose(without[row].gmv!, together[i].gmv!, rtol: 1e-6, atol: 1e-9)
            if keys[i] == keys[removed] { mates += same ? 0 : 1 } else if keys[i].industry != keys[removed].industry { others += same ? 1 : 0 }
        }
        #expect(mates > 0 && others == rest.filter { keys[$0].industry != keys[removed].industry }.count)
    }
}

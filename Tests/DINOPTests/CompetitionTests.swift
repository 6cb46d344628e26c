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
        #expect(scorer.predict(competing: []).isEmpty)
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

    func batchLoss(_ p: Parameters<Double>, _ raw: [RawItem], _ labels: [ItemLabels], keys: [CompetitionKey],
                   options: LossOptions) -> Double {
        let network = Network(p)
        var pass = BatchPass(network: network, items: raw.map { network.encode($0) }, labels: labels, keys: keys)
        var unused = SeededGenerator(seed: 0)
        pass.forward(dropout: 0, rng: &unused)
        return pass.loss(options: options).0.total
    }

    /// One pass's loss, its gradient and its encoded items (batch order).
    func batchGradient(_ p: Parameters<Double>, _ raw: [RawItem], _ labels: [ItemLabels], keys: [CompetitionKey],
                       options: LossOptions) -> (loss: Double, gradient: Parameters<Double>, items: [EncodedItem<Double>]) {
        let network = Network(p)
        var pass = BatchPass(network: network, items: raw.map { network.encode($0) }, labels: labels, keys: keys)
        var unused = SeededGenerator(seed: 0)
        pass.forward(dropout: 0, rng: &unused)
        let (loss, dOutputs) = pass.loss(options: options)
        var gradient = Parameters<Double>.zeros(p.layout)
        pass.backward(dOutputs: dOutputs, options: options, into: &gradient)
        return (loss.total, gradient, pass.items)
    }

    /// A batch of two promotions' items: a group of four in market id-0 (one unseen), three in id-1 and one of an
    /// unlisted market in the same industry (neighbours), and two of another industry.
    static func gradientFixture(_ config: ModelConfig, seed: UInt64) -> ([RawItem], [CompetitionKey]) {
        var rng = SeededGenerator(seed: seed)
        let plan: [(market: String, industry: String, days: Int)] = [
            ("id-0", "x", 3), ("id-0", "x", 5), ("id-0", "x", 0), ("id-0", "x", 2), ("id-1", "x", 4), ("id-1", "x", 1),
            ("id-1", "x", 3), ("unlisted", "x", 2), ("id-0", "y", 3), ("id-1", "y", 2),
        ]
        var items: [RawItem] = []
        for step in plan {
            var item = randomItem(config, days: step.days, rng: &rng, activity: items.count % 3 != 1)
            item.sii[0] = step.market
            item.sii[1] = step.industry
            items.append(item)
        }
        return (items, plan.map { CompetitionKey(promotion: "p", market: $0.market, industry: $0.industry) })
    }

    @Test("finite differences of every tensor with competition (with and without cooperation and domain-attention)",
          arguments: [(true, true), (false, true), (true, false)])
    func finiteDifferences(cooperation: Bool, domain: Bool) throws {
        let config = smallCompetitionConfig(cooperation: cooperation, domain: domain)
        let layout = try ParameterLayout(config: config, dims: domain ? domainDims(config) : smallDims(config))
        // Smaller weights with domain-attention, whose o term otherwise makes the objective large (thousands) and
        // the quotients noisy.
        let parameters = randomParameters(layout, seed: 27, scale: domain ? 1 : 1.5).converted(to: Double.self)
        let (raw, keys) = Self.gradientFixture(config, seed: 18)
        var rng = SeededGenerator(seed: 19)
        let labels = raw.indices.map { i in
            ItemLabels(gmv: exp(2 + rng.normal()), bestSeller: i % 2 == 0, slot: 1 + i % 10, joinedActivity: i % 3 == 0)
        }
        var options = LossOptions()
        options.dropout = 0
        options.l2 = 1e-2
        let (_, gradient, items) = batchGradient(parameters, raw, labels, keys: keys, options: options)
        let checked = expectGradientsMatch(layout, gradient, items: items, perTensor: 6, seed: 20,
                                           include: { $0.trainable && !$0.trainingOnly }) { _, i in
            // The five-point stencil with a step of 1e-4: its error is O(step⁴), and the rounding noise of an
            // objective of a few thousand (domain-attention's o term makes it large) stays near 1e-9.
            let step = 1e-4
            func shifted(_ by: Double) -> Double {
                var p = parameters
                p.values[i] += by * step
                return batchLoss(p, raw, labels, keys: keys, options: options)
            }
            return (shifted(-2) - 8 * shifted(-1) + 8 * shifted(1) - shifted(2)) / (12 * step)
        }
        #expect(checked > 100)
        #expect(layout.spec("head.gmv.coop.weight") == nil || cooperation)
    }

    /// The gradient that flows through *other* items' f: only item 0 is labelled, so every gradient of an embedding
    /// row that item 0 does not use comes from the attentions, through its group mates' and neighbours' f.
    @Test("one labelled item's loss moves the embedding rows only its group mates and neighbours use, as finite differences say")
    func gradientThroughOtherItems() throws {
        let config = smallCompetitionConfig(domain: false)
        let layout = try ParameterLayout(config: config, dims: smallDims(config))
        let parameters = randomParameters(layout, seed: 23, scale: 1.5).converted(to: Double.self)
        var (raw, keys) = Self.gradientFixture(config, seed: 24)
        // Seller ids whose rows item 0 does not use: one for a group mate (item 1), one for a neighbour (item 4).
        let table = layout.require("sii.emb.seller"), rows = table.shape[0]
        let rowOf = { (id: String) in Int(fnv1a64(id) % UInt64(rows)) }
        let ids = (1..<200).map { "seller-\($0)" }
        let mate = try #require(ids.first { rowOf($0) != rowOf("seller-0") })
        let neighbour = try #require(ids.first { rowOf($0) != rowOf("seller-0") && rowOf($0) != rowOf(mate) })
        for i in raw.indices { raw[i].sii[2] = i == 1 ? mate : i == 4 ? neighbour : "seller-0" }
        let (mateRow, neighbourRow) = (rowOf(mate), rowOf(neighbour))
        let labels = raw.indices.map { $0 == 0 ? ItemLabels(gmv: 30, bestSeller: true, slot: 2, joinedActivity: true) : ItemLabels() }
        var options = LossOptions()
        options.dropout = 0
        options.l2 = 0
        let gradient = batchGradient(parameters, raw, labels, keys: keys, options: options).gradient
        func loss(_ p: Parameters<Double>) -> Double { batchLoss(p, raw, labels, keys: keys, options: options) }
        for row in [mateRow, neighbourRow] {
            var moved = false
            for j in 0..<table.shape[1] {
                let i = table.offset + row * table.shape[1] + j
                var plus = parameters, minus = parameters
                plus.values[i] += 1e-6
                minus.values[i] -= 1e-6
                let numeric = (loss(plus) - loss(minus)) / 2e-6
                #expect(relativeClose(gradient.values[i], numeric, rtol: 1e-5, atol: 1e-9), "row \(row)[\(j)]: \(gradient.values[i]) vs \(numeric)")
                moved = moved || abs(numeric) > 1e-6
            }
            #expect(moved, "row \(row): item 0's loss does not reach it")
        }
        // Without competition in the batch (each item its own group, no neighbours), those rows take nothing.
        let alone = raw.indices.map { CompetitionKey(promotion: "p\($0)", market: "id-0", industry: "x") }
        let isolated = batchGradient(parameters, raw, labels, keys: alone, options: options).gradient
        for row in [mateRow, neighbourRow] {
            #expect((0..<table.shape[1]).allSatisfy { isolated.values[table.offset + row * table.shape[1] + $0] == 0 })
        }
    }

    @Test("minibatches hold whole industries of a promotion (every market), packed up to the size; a larger one in parts")
    func minibatches() {
        let config = smallCompetitionConfig(domain: false)
        var rng = SeededGenerator(seed: 3)
        let plan: [(String, String, String, Int)] = [("p", "id-0", "x", 3), ("p", "id-1", "x", 2), ("p", "id-0", "y", 3),
                                                     ("q", "id-0", "x", 12)]
        var examples: [TrainingExample] = []
        for (promotion, market, industry, count) in plan {
            for _ in 0..<count {
                examples.append(TrainingExample(item: randomItem(config, days: 2, rng: &rng), labels: ItemLabels(),
                                                competition: CompetitionKey(promotion: promotion, market: market, industry: industry)))
            }
        }
        let scope = { (i: Int) in examples[i].competition!.industryScope }
        for shuffle in [false, true] {
            let batches = Minibatches.make(examples, size: 8, competition: true, rng: &rng, shuffle: shuffle)
            #expect(batches.flatMap { $0 }.sorted() == Array(examples.indices))
            #expect(batches.allSatisfy { $0.count <= 8 })
            // Industries of at most 8 items lie whole in one batch; the one of 12 in parts of at most 8.
            for i in examples.indices where examples[i].competition!.promotion == Array("p".utf8) {
                let home = batches.first { $0.contains(i) }!
                #expect(examples.indices.filter { scope($0) == scope(i) }.allSatisfy(home.contains))
            }
            #expect(batches.filter { $0.contains { examples[$0].competition!.promotion == Array("q".utf8) } }.count == 2)
        }
        let plain = Minibatches.make(examples, size: 8, competition: false, rng: &rng, shuffle: false)
        #expect(plain.map(\.count) == [8, 8, 4])
    }

    /// Each item's promotion-day GMV is its share of a fixed market by strength, exp(s_i) / Σ_j exp(s_j) over its
    /// group of five, and s_i shows in its daily sales: no item alone can know its share, a model that reads its
    /// group can. (Groups of one size: the attention averages over the group, it does not count it.)
    @Test("training with competition learns a share of the group that a model without it cannot")
    func learnsShares() throws {
        var rng = SeededGenerator(seed: 41)
        let plain = smallConfig(hidden: 8, attention: 4, heads: [.gmv])
        var competing = plain
        competing.extensions = [ModelExtension.competition]
        competing.markets = ["id-0"]
        competing.competition = CompetitionSizes(width: 8, cooperation: false)
        var examples: [TrainingExample] = [], group = 0
        while examples.count < 900 {
            let size = 5
            let strengths = (0..<size).map { _ in 1.2 * rng.normal() }
            let total = strengths.reduce(0) { $0 + exp($1) }
            for s in strengths {
                var item = randomItem(plain, days: 3, rng: &rng, activity: false)
                item.sii[0] = "id-0"
                for t in item.days.indices { item.days[t].dis[0] = Float(exp(3 + s + 0.1 * rng.normal())) }
                examples.append(TrainingExample(item: item, labels: ItemLabels(gmv: 20_000 * exp(s) / total),
                                                competition: CompetitionKey(promotion: "g\(group)", market: "id-0", industry: "x")))
            }
            group += 1
        }
        // Whole groups on each side of the split.
        let cut = examples.indices.first { $0 >= 700 && examples[$0].competition != examples[$0 - 1].competition }!
        let training = Array(examples[..<cut]), validation = Array(examples[cut...])
        func validationLoss(_ config: ModelConfig) throws -> Double {
            var model = try DINOPModel.random(config: config, dims: smallDims(config, width: 8, headHidden: 16), seed: 5)
            var options = TrainingOptions()
            options.learningRate = 0.05
            options.batchSize = 64
            options.maxEpochs = 40
            options.patience = 40
            Trainer.fitNormalisation(&model.parameters, to: training)
            Trainer.fitOutputBiases(&model.parameters, to: training)
            let trained = Trainer.train(model, training: training, validation: validation, options: options, fitNormalisation: false)
            return try #require(Trainer.evaluate(trained.parameters, on: validation, options: options.loss).perTask[.gmv])
        }
        let alone = try validationLoss(plain), together = try validationLoss(competing)
        #expect(together < 0.7 * alone, "validation GMV loss: \(alone) without competition, \(together) with it")
        print("competition toy: validation GMV loss \(alone) without competition, \(together) with it")
    }
}

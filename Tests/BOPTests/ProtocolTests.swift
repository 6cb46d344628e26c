import BOP
@testable import BOPTraining
import DINOP
import Foundation
import Testing

/// A small market: 40 users, each buying 3 to 9 of 60 items on distinct days (some on the same day).
func smallMarket(seed: UInt64 = 3) -> [Interaction] {
    var rng = SeededGenerator(seed: seed)
    var rows: [Interaction] = []
    for u in 0..<40 {
        let count = 3 + Int(rng.next() % 7)
        var items = Set<Int>()
        while items.count < count { items.insert(Int(rng.next() % 60)) }
        for (j, item) in items.sorted().enumerated() {
            rows.append(Interaction(user: "u\(u)", item: "i\(item)", time: 100 + j / 2 * 3, market: "de"))
        }
    }
    return rows
}

@Suite("BOP.md's evaluation protocols and metrics")
struct BOPProtocolTests {
    @Test("each user holds out one validation and one test item, ranked among 99 items they never bought",
          arguments: HoldOutProtocol.allCases)
    func holdOut(protocol: HoldOutProtocol) throws {
        let rows = smallMarket()
        let split = MarketSplit(market: "de", interactions: rows, protocol: `protocol`, negatives: 20, seed: 1)
        let users = Set(rows.map(\.user))
        #expect(split.validation.count == users.count && split.test.count == users.count)
        #expect(split.training.count == rows.count - 2 * users.count)
        for c in split.validation + split.test {
            let bought = split.bought[c.user] ?? []
            #expect(c.negatives.count == 20 && Set(c.negatives).count == 20)
            #expect(c.negatives.allSatisfy { !bought.contains($0) && split.items.contains($0) })
            #expect(bought.contains(c.item) && !c.history.contains(c.item))
        }
        for (v, t) in zip(split.validation, split.test) {
            #expect(v.user == t.user && v.item != t.item)
            let mine = rows.filter { $0.user == t.user }
            switch `protocol` {
            case .timeOrdered:
                // The last purchase is the test item, the one before the validation item (ties by id bytes); a
                // history holds the purchases of earlier days only, oldest first.
                let ordered = mine.sorted { $0.time != $1.time ? $0.time < $1.time : $0.item.utf8.lexicographicallyPrecedes($1.item.utf8) }
                #expect(t.item == ordered.last?.item && v.item == ordered.dropLast().last?.item)
                for c in [v, t] {
                    let day = try #require(mine.first { $0.item == c.item }).time
                    #expect(c.history == ordered.filter { $0.time < day }.map(\.item))
                }
            case .random:
                // Both see the user's training purchases, in time order.
                #expect(v.history == t.history && v.history.count == mine.count - 2)
                let times = v.history.map { item in mine.first { $0.item == item }!.time }
                #expect(times == times.sorted())
            }
        }
        // Training purchases see only other training purchases; time-ordered, only those of earlier days.
        for purchase in split.training {
            #expect(!purchase.history.contains(purchase.item))
            guard `protocol` == .timeOrdered else { continue }
            let day = Dictionary(rows.filter { $0.user == purchase.user }.map { ($0.item, $0.time) }, uniquingKeysWith: max)
            #expect(purchase.history.allSatisfy { (day[$0] ?? .max) < (day[purchase.item] ?? .min) })
        }
        if `protocol` == .timeOrdered {
            // The fixture has same-day purchases, so some held-out item's history leaves one of them out.
            #expect(split.test.contains { c in c.history.count < rows.filter { $0.user == c.user }.count - 1 })
            #expect(split.training.contains { p in p.history.count < (split.training.filter { $0.user == p.user }.firstIndex { $0.item == p.item } ?? 0) })
        }
        // The seed decides the split.
        let again = MarketSplit(market: "de", interactions: rows, protocol: `protocol`, negatives: 20, seed: 1)
        #expect(again.test.map(\.item) == split.test.map(\.item) && again.test.map(\.negatives) == split.test.map(\.negatives))
        let other = MarketSplit(market: "de", interactions: rows, protocol: `protocol`, negatives: 20, seed: 2)
        #expect(other.test.map(\.negatives) != split.test.map(\.negatives))
        #expect(split.negativePool == split.items, "BOP.md: negatives of the market")

        // ACMR's pool: items of other markets too, never the user's. (The random pairs are drawn from the same
        // generator as the negatives, so only the time-ordered split keeps its held-out items.)
        let pool = (split.items + (0..<200).map { "elsewhere-\($0)" }).sorted()
        let wide = MarketSplit(market: "de", interactions: rows, protocol: `protocol`, negatives: 20, pool: pool, seed: 1)
        #expect(wide.negativePool == pool && wide.items == split.items)
        if `protocol` == .timeOrdered { #expect(wide.test.map(\.item) == split.test.map(\.item)) }
        for c in wide.validation + wide.test {
            #expect(c.negatives.count == 20 && c.negatives.allSatisfy { pool.contains($0) && !(wide.bought[c.user] ?? []).contains($0) })
        }
        #expect((wide.validation + wide.test).contains { $0.negatives.contains { $0.hasPrefix("elsewhere-") } })
    }

    @Test("NDCG and Recall at 5 and 10 from ranks; ties rank in the middle")
    func metrics() {
        let m = RankingMetrics(ranks: [0, 1, 4, 5, 9, 10, 50])
        #expect(abs(m.ndcg5 - (1 + 1 / log2(3.0) + 1 / log2(6.0)) / 7) < 1e-12)
        #expect(abs(m.ndcg10 - (1 + 1 / log2(3.0) + 1 / log2(6.0) + 1 / log2(7.0) + 1 / log2(11.0)) / 7) < 1e-12)
        #expect(abs(m.recall5 - 3.0 / 7) < 1e-12 && abs(m.recall10 - 5.0 / 7) < 1e-12 && m.cases == 7)
        #expect(RankingMetrics.rank(positive: 0.5, negatives: [0.9, 0.1, 0.5, 0.5, 0.2]) == 2)
        #expect(RankingMetrics.rank(positive: 1, negatives: Array(repeating: 1, count: 99)) == 49)
        #expect(RankingMetrics(ranks: []).ndcg10 == 0)
    }

    @Test("the popularity baseline ranks a market's most bought item first")
    func popularity() {
        var rows = smallMarket()
        // Every user buys item "hit" last: under the time-ordered protocol it is every test item.
        for u in 0..<40 { rows.append(Interaction(user: "u\(u)", item: "hit", time: 10_000, market: "de")) }
        // … and "hit" is bought in training by 30 more users.
        for u in 40..<70 {
            for (j, item) in ["hit", "i1", "i2"].enumerated() { rows.append(Interaction(user: "u\(u)", item: item, time: j, market: "de")) }
        }
        let split = MarketSplit(market: "de", interactions: rows, protocol: .timeOrdered, negatives: 30, seed: 1)
        let testOnHit = split.test.filter { $0.item == "hit" }
        #expect(testOnHit.count == 40)
        #expect(BOPRanking.popularity(split, testOnHit).ndcg10 == 1)
    }

    @Test("the co-purchase baseline ranks first what other markets' users bought with the user's items")
    func coPurchase() {
        // In jp every test user bought "camera" and then "lens", a pair no jp user bought in training (so jp's
        // popularity is no help); in de, 30 users bought the pair.
        var jp: [Interaction] = [], de: [Interaction] = []
        for u in 0..<20 {
            for (j, item) in ["x\(u)", "y\(u)", "camera", "lens"].enumerated() { jp.append(Interaction(user: "j\(u)", item: item, time: j, market: "jp")) }
        }
        for u in 0..<30 {
            for (j, item) in ["camera", "lens", "z\(u % 3)", "w\(u % 3)"].enumerated() { de.append(Interaction(user: "d\(u)", item: item, time: j, market: "de")) }
        }
        let jpSplit = MarketSplit(market: "jp", interactions: jp, protocol: .timeOrdered, negatives: 30, seed: 1)
        let deSplit = MarketSplit(market: "de", interactions: de, protocol: .timeOrdered, negatives: 30, seed: 1)
        let both = CoPurchase([MarketData(split: jpSplit, index: 0), MarketData(split: deSplit, index: 1)])
        let jpAlone = CoPurchase([MarketData(split: jpSplit, index: 0)])
        #expect(jpSplit.test.allSatisfy { $0.item == "lens" && $0.history.contains("camera") })
        #expect(both.evaluate(jpSplit, jpSplit.test).ndcg10 == 1)
        #expect(jpAlone.evaluate(jpSplit, jpSplit.test).ndcg10 < 0.5)
    }

    @Test("XMarket rows: dates become day numbers; a bad row is reported by file and line and skipped")
    func loader() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "userId itemId rate date\nA X 5.0 2016-06-13\nB Y 4.0 not-a-date\nC Z 3.0 1970-01-02\n"
            .write(to: folder.appendingPathComponent("de_5core.txt"), atomically: true, encoding: .utf8)
        var rejected: [String] = []
        let data = try XMarket.load(folder, markets: ["de"]) { rejected.append($0) }
        #expect(data["de"]?.map(\.user) == ["A", "C"] && data["de"]?.last?.time == 1)
        #expect(data["de"]?.first?.time == 16_965)
        #expect(rejected == ["de_5core.txt:3: expected `userId itemId rate YYYY-MM-DD`"])
        #expect(throws: BOPDataError.self) { try XMarket.load(folder, markets: ["jp"]) }
    }

    /// Users of one market buy items in a fixed cycle (i0 → i1 → … → i9 → i0): the next purchase follows from the
    /// last. A few epochs of training must rank it far above a fresh model's chance level.
    @Test("training learns a market's purchase order")
    func learns() throws {
        var rows: [Interaction] = []
        var rng = SeededGenerator(seed: 9)
        for u in 0..<120 {
            let start = Int(rng.next() % 10), count = 4 + Int(rng.next() % 4)
            for j in 0..<count { rows.append(Interaction(user: "u\(u)", item: "i\((start + j) % 10)", time: j, market: "de")) }
        }
        for extra in 10..<40 { rows.append(Interaction(user: "filler", item: "i\(extra)", time: extra, market: "de")) }
        let split = MarketSplit(market: "de", interactions: rows, protocol: .timeOrdered, negatives: 20, seed: 1)
        let config = BOPConfig(width: 16, layers: 1, heads: 2, ffn: 32, maxHistory: 6, itemRows: 101)
        let start = try BOPModel.random(config: config, markets: ["de"], seed: 1)
        var options = BOPTrainingOptions()
        options.batchSize = 64
        options.learningRate = 5e-3
        options.maxEpochs = 12
        options.patience = 12
        options.dropout = 0.1  // (a small model on little data: ACMR's 0.3 needs more epochs than a test has)
        let data = [MarketData(split: split, index: 0)]
        let before = BOPRanking.evaluate(start, split.test, market: "de")
        let trained = BOPRanking.train(start, data, options: options, evaluateStart: false) { _, _, _, _, _ in }
        let after = BOPRanking.evaluate(trained, split.test, market: "de")
        #expect(after.ndcg10 > 0.8 && after.ndcg10 > before.ndcg10 + 0.3, "NDCG@10 \(before.ndcg10) → \(after.ndcg10)")
    }
}

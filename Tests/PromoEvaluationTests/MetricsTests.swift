import Foundation
import DINOP
import PromoEvaluation
import PromoEvents
import PromoFeatures
import Testing

@Test("AUC counts pairs ranked right, ties as half")
func auc() {
    #expect(Metrics.auc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]) == 0.75)
    #expect(Metrics.auc([1, 2, 3], [false, true, true]) == 1)
    #expect(Metrics.auc([3, 2, 1], [false, true, true]) == 0)
    #expect(Metrics.auc([1, 1, 1, 1], [false, true, false, true]) == 0.5)
    #expect(Metrics.auc([1, 2], [true, true]).isNaN)
}

@Test("the fitted multiple minimises the absolute error")
func bestMultiple() {
    let x = [1.0, 2, 4, 10, 0], y = [3.0, 5, 12, 20, 7]
    let m = Metrics.bestMultiple(of: x, for: y)
    func loss(_ m: Double) -> Double { zip(x, y).reduce(0) { $0 + abs($1.1 - m * $1.0) } }
    for other in stride(from: 0.5, through: 4, by: 0.05) { #expect(loss(m) <= loss(other) + 1e-9) }
    #expect(Metrics.meanAbsoluteError([1, 2], [2, 4]) == 1.5)
    #expect(Metrics.accuracy([1, 2, 3], [1, 3, 3]) == 2.0 / 3)
}

@Test("items split by id are stable, disjoint, and independent across salts")
func split() {
    var records = ItemRecords()
    for i in 0..<2_000 {
        records.apply(.outcome(Outcome(itemID: "i\(i)", promotionID: "p", gmv: Double(i))))
    }
    let items = LabelledItems(records: records.records)
    let (rest, held) = items.split(fraction: 0.3, salt: "test-1")
    #expect(rest.count + held.count == 2_000)
    #expect(Set(rest.records.map(\.key)).isDisjoint(with: held.records.map(\.key)))
    #expect(abs(Double(held.count) / 2_000 - 0.3) < 0.05)
    #expect(items.split(fraction: 0.3, salt: "test-1").held.records.map(\.key) == held.records.map(\.key))
    let (_, validation) = rest.split(fraction: 0.1, salt: "validation-1")
    #expect(!validation.records.isEmpty)
    // Labels stay those of the whole promotion: the best sellers are the top items of all 2,000.
    #expect(held.labels.allSatisfy { ($0.bestSeller == true) == ($0.gmv! >= 1_789) })
}

@Test("the naive baseline scales recent pre-sale GMV and derives slots from it")
func naive() {
    var records = ItemRecords()
    for i in 1...50 {
        let id = "i\(i)"
        records.apply(.profile(ItemProfile(itemID: id, promotionID: "p", ids: ["industry": i % 2 == 0 ? "a" : "b"])))
        for day in 1...5 { records.apply(.sales(DailySales(itemID: id, promotionID: "p", day: day, sales: ["gmv": Double(i * day)]))) }
        records.apply(.outcome(Outcome(itemID: id, promotionID: "p", gmv: Double(i * 4 * 20))))
    }
    let items = LabelledItems(records: records.records)
    var baseline = NaiveBaseline()
    baseline.fit(items)
    #expect(abs(baseline.multiple - 20) < 1e-9)  // the last 3 days average 4·i
    let scores = baseline.scores(items)
    #expect(Metrics.meanAbsoluteError(scores.gmv, items.labels.map { $0.gmv! }) < 1e-6)
    #expect(scores.slot == items.labels.map { $0.slot! })
}

@Test("the table shows a GMV MAE with at least four significant digits; --json keeps full precision and writes null for what could not be computed")
func evaluationTableAndJSON() throws {
    var small = EvaluationRow(name: "naive", scores: ItemScores(gmv: [], bsp: nil, slot: nil, ja: nil), labels: [], seconds: 1)
    small.gmvMAE = 2.27149
    small.bspAUC = 0.99712
    var big = small
    big.name = "DINOP"
    big.gmvMAE = 195344.17
    big.jaAUC = .nan
    let table = EvaluationRow.table([small, big], title: "t")
    #expect(table.contains("| naive | 2.271 | 0.9971 |"))
    #expect(table.contains("| DINOP | 195344.2 |"))
    let json = EvaluationRow.json([small, big], title: "t")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    let rows = try #require(object["rows"] as? [[String: Any]])
    #expect(rows[0]["gmv_mae"] as? Double == 2.27149)
    #expect(rows[1]["gmv_mae"] as? Double == 195344.17)
    #expect(rows[1]["ja_auc"] is NSNull)
    #expect(rows.map { $0["model"] as? String } == ["naive", "DINOP"])
}

@Test("the error breakdown splits the GMV error between the largest 5% of items and the rest, and bins BSP")
func errorBreakdown() {
    // 40 items: GMV 1…40; every prediction 1 too high, except the two largest (40 and 39), 100 too low.
    let gmv = (1...40).map(Double.init)
    let labels = gmv.map { ItemLabels(gmv: $0, bestSeller: $0 >= 39, slot: nil, joinedActivity: nil) }
    let predicted = gmv.map { $0 >= 39 ? $0 - 100 : $0 + 1 }
    let bsp = gmv.map { $0 >= 39 ? 0.9 : 0.1 }
    let breakdown = ErrorBreakdown(scores: ItemScores(gmv: predicted, bsp: bsp, slot: nil, ja: nil), labels: labels,
                                   bspIsProbability: true)
    #expect(breakdown.largeMAE == 100 && breakdown.restMAE == 1)
    #expect(abs(breakdown.largeErrorShare - 200.0 / 238.0) < 1e-12)
    #expect(breakdown.calibration.map(\.items) == [38, 0, 0, 0, 2])
    #expect(breakdown.calibration[0].observed == 0 && breakdown.calibration[4].observed == 1)
    #expect(breakdown.line("m").contains("on the largest 5% of items (84% of the error)"))
}

import DINOP
import Foundation
import PromoEvaluation
import PromoEvents
import PromoFeatures
import Testing

@Test("the backtest report measures each day's predictions against the outcomes and charts them")
func backtestReport() throws {
    let items = (0..<40).map { "item-\($0)" }
    let outcomes = items.enumerated().map { i, id in Outcome(itemID: id, promotionID: "p", gmv: Double(100 * (i + 1))) }
    let industries = Dictionary(uniqueKeysWithValues: items.enumerated().map { (ItemKey(promotionID: "p", itemID: $1), $0 % 2 == 0 ? "a" : "b") })
    // Uninformed until day 2, exact from day 3 on.
    let asOf: [[PredictionEvent]] = (0...4).map { day in
        outcomes.map { o in
            PredictionEvent(itemID: o.itemID, promotionID: "p", modelVersion: 1, daysSeen: day, gmv: day >= 3 ? o.gmv : 50,
                            bsp: day >= 3 ? o.gmv / 4000 : 0.5, ss: day >= 3 ? 1 : 10,
                            ssProbabilities: Array(repeating: 0.1, count: 10), producedAt: "", asOfDay: day == 0 ? nil : day)
        }
    }
    let report = BacktestReport(asOf: asOf, outcomes: outcomes, industries: industries, replayed: 123)
    #expect(report.items == 40)
    #expect(report.rows.count == 5)
    #expect(report.rows[0].gmvMAE > 1000)
    #expect(report.rows[3].gmvMAE == 0 && report.rows[4].gmvMAE == 0)
    #expect(report.rows[0].bspAUC == 0.5 && report.rows[3].bspAUC == 1)
    #expect(report.text.contains("| day 3 (40 items) | 0.000 | 1.0000 |"))
    #expect(report.itemsWithDay == [40, 40, 40, 40, 40])
    // Days after the data are left out, not carried forward: two more days where every item repeats its day 4.
    let longer = BacktestReport(asOf: asOf + [asOf[4], asOf[4]], outcomes: outcomes, industries: industries, replayed: 123)
    #expect(longer.rows.count == 5 && longer.itemsWithDay == report.itemsWithDay)
    let html = report.html(title: "t <&>")
    #expect(html.components(separatedBy: "<svg").count - 1 == 4)
    #expect(html.components(separatedBy: "<polyline").count - 1 == 3, "JA has no data: no line")
    #expect(html.contains("t &lt;&amp;&gt;") && !html.contains("<script"))
    #expect(html.contains("pre-sale day (as of)") && html.contains("lower is better") && html.contains("<title>40 items</title>"))
}

@Test("the backtest report scores the naive baseline as of each day on the replayed sales, beside DINOP")
func backtestNaive() throws {
    let outcomes = (0..<20).map { Outcome(itemID: "item-\($0)", promotionID: "p", gmv: Double(1000 * ($0 + 1))) }
    var records = ItemRecords()
    for o in outcomes {
        records.apply(.profile(ItemProfile(itemID: o.itemID, promotionID: "p", ids: ["industry": "a"])))
        // Days 1…4 each sell a tenth of the promotion day: the fitted multiple is 10 and exact from day 1 on.
        for day in 1...4 { records.apply(.sales(DailySales(itemID: o.itemID, promotionID: "p", day: day, sales: ["gmv": o.gmv / 10]))) }
    }
    let asOf: [[PredictionEvent]] = (0...4).map { day in
        outcomes.map { o in
            PredictionEvent(itemID: o.itemID, promotionID: "p", modelVersion: 1, daysSeen: day, gmv: 500, bsp: 0.5, ss: 10,
                            ssProbabilities: Array(repeating: 0.1, count: 10), producedAt: "", asOfDay: day == 0 ? nil : day)
        }
    }
    var report = BacktestReport(asOf: asOf, outcomes: outcomes, industries: [:], replayed: 1)
    var withOutcomes = records
    outcomes.forEach { withOutcomes.apply(.outcome($0)) }
    var naive = NaiveBaseline()
    naive.fit(LabelledItems(records: withOutcomes.records).labelled)
    #expect(abs(naive.multiple - 10) < 1e-9)
    report.addNaive(naive, records: records, note: "in hindsight")
    #expect(report.naiveRows.count == 5)
    #expect(report.naiveRows[0].gmvMAE == 10_500)  // no day yet: GMV 0, the mean outcome is the error
    #expect(report.naiveRows[1...].allSatisfy { abs($0.gmvMAE) < 1e-9 && $0.bspAUC == 1 })
    #expect(report.text.contains("Naive baseline, same items (in hindsight)"))
    let html = report.html(title: "t")
    #expect(html.components(separatedBy: "stroke-dasharray").count - 1 == 3, "a naive line in the GMV, BSP and SS charts")
}

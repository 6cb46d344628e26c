import DINOP
import Foundation
import PromoEvents
import PromoFeatures

/// How accuracy grows as pre-sale days arrive: the four metrics of the predictions as of each day, against the
/// promotion's outcomes.
///
/// `asOf[d]` holds every item's prediction from its days up to d (day 0: its profile alone). Items are those with
/// an outcome; an item missing from a day's predictions scores as GMV 0, best-seller probability 0, slot 10, so
/// every day is measured on the same items. Labels follow MODEL.md's rules within each promotion; join-activity
/// only for items whose predictions carry one. Each row says how many items had data that day (the rest carry
/// their latest earlier prediction), and days after the last one with data are left out rather than repeated.
public struct BacktestReport: Sendable {
    public var rows: [EvaluationRow]
    /// Per row, the items whose prediction as of that day used that day's data (day 0: the profile alone).
    public var itemsWithDay: [Int]
    public var items: Int
    public var replayed: Int
    /// The naive baseline as of each day (same items and labels), once `addNaive` ran, and how it was fitted.
    public private(set) var naiveRows: [EvaluationRow] = []
    public private(set) var naiveNote = ""
    private let keys: [ItemKey]
    private let labels: [ItemLabels]

    public init(asOf: [[PredictionEvent]], outcomes: [Outcome], industries: [ItemKey: String], replayed: Int) {
        var outcome: [ItemKey: Outcome] = [:]
        for o in outcomes { outcome[ItemKey(promotionID: o.promotionID, itemID: o.itemID)] = o }
        let byDay = asOf.map { predictions in
            Dictionary(predictions.map { (ItemKey(promotionID: $0.promotionID, itemID: $0.itemID), $0) }, uniquingKeysWith: { $1 })
        }
        let keys = Set(byDay.flatMap(\.keys)).filter { outcome[$0] != nil }.sorted()
        let hasActivity = Set(keys.filter { key in byDay.contains { $0[key]?.ja != nil } })

        var labels = [ItemLabels](repeating: ItemLabels(), count: keys.count)
        for members in Dictionary(grouping: keys.indices, by: { keys[$0].promotionID }).values {
            let gmv = members.map { outcome[keys[$0]]!.gmv }
            let (best, slot) = PromotionLabels.compute(gmv: gmv, industry: members.map { industries[keys[$0]] ?? "" })
            for (k, i) in members.enumerated() {
                labels[i] = ItemLabels(gmv: gmv[k], bestSeller: best[k], slot: slot[k],
                                       joinedActivity: hasActivity.contains(keys[i]) ? outcome[keys[i]]!.joinedActivity : nil)
            }
        }
        let withDay = byDay.enumerated().map { day, predictions in
            keys.filter { key in predictions[key].map { ($0.asOfDay ?? 0) == day } ?? false }.count
        }
        // Day 0 stays even without data (a backtest of profiles alone); later days only up to the last with data.
        itemsWithDay = Array(withDay.prefix((withDay.lastIndex { $0 > 0 } ?? 0) + 1))
        rows = byDay.prefix(itemsWithDay.count).enumerated().map { day, predictions in
            let p = keys.map { predictions[$0] }
            let scores = ItemScores(gmv: p.map { $0?.gmv ?? 0 }, bsp: p.map { $0?.bsp ?? 0 }, slot: p.map { $0?.ss ?? 10 },
                                    ja: p.map { $0?.ja })
            return EvaluationRow(name: "day \(day) (\(withDay[day]) items)", scores: scores, labels: labels, seconds: 0)
        }
        items = keys.count
        self.replayed = replayed
        self.keys = keys
        self.labels = labels
    }

    /// Scores `baseline` as of each day of the report on the replayed `records` (an item's days up to that day),
    /// so the charts show DINOP beside what a planner's spreadsheet would have said that day.
    public mutating func addNaive(_ baseline: NaiveBaseline, records: ItemRecords, note: String) {
        let byKey = Dictionary(records.records.map { ($0.key, $0) }, uniquingKeysWith: { $1 })
        naiveRows = rows.indices.map { day in
            let asOf = keys.map { key -> ItemRecord in
                var record = byKey[key] ?? ItemRecord(key: key)
                record.sales = record.sales.filter { $0.key <= day }
                return record
            }
            let scores = baseline.scores(LabelledItems(records: asOf, labels: labels))
            return EvaluationRow(name: "day \(day)", scores: scores, labels: labels, seconds: 0)
        }
        naiveNote = note
    }

    /// The table, one row per day (and the naive baseline's, when added).
    public var text: String {
        let dinop = Self.dayTable(rows, title: "Backtest: \(items) items with an outcome, \(replayed) input messages replayed")
        guard !naiveRows.isEmpty else { return dinop }
        return dinop + "\n\n" + Self.dayTable(naiveRows, title: "Naive baseline, same items (\(naiveNote))")
    }

    private static func dayTable(_ rows: [EvaluationRow], title: String) -> String {
        EvaluationRow.table(rows, title: title)
            .replacingOccurrences(of: "| model |", with: "| as of |")
            .split(separator: "\n", omittingEmptySubsequences: false).map { line in
                // The seconds column means nothing per day.
                guard line.hasPrefix("|") else { return String(line) }
                return line.split(separator: "|", omittingEmptySubsequences: false).dropLast(2).joined(separator: "|") + "|"
            }.joined(separator: "\n")
    }

    /// A self-contained HTML page: the table and one SVG line chart per metric (no scripts, no external files).
    public func html(title: String) -> String {
        let metrics: [(String, (EvaluationRow) -> Double)] = [
            ("GMV MAE, in the events' money unit (lower is better)", { $0.gmvMAE }),
            ("BSP AUC (higher is better)", { $0.bspAUC }),
            ("SS accuracy (higher is better)", { $0.ssAccuracy }), ("JA AUC (higher is better)", { $0.jaAUC }),
        ]
        var charts = ""
        for (name, value) in metrics {
            charts += chart(name, rows.map(value), naive: naiveRows.map(value))
        }
        func table(_ rows: [EvaluationRow], _ caption: String) -> String {
            "<table><caption>\(escape(caption))</caption><tr><th>as of</th><th>GMV MAE</th><th>BSP AUC</th><th>SS accuracy</th><th>JA AUC</th></tr>\n"
                + rows.map { r in
                    "<tr><td>\(escape(r.name))</td>" + [r.gmvMAE, r.bspAUC, r.ssAccuracy, r.jaAUC].map { v in
                        "<td>\(v.isNaN ? "—" : String(format: v > 10 ? "%.1f" : "%.4f", v))</td>"
                    }.joined() + "</tr>"
                }.joined(separator: "\n") + "\n</table>"
        }
        let tables = table(rows, "DINOP") + (naiveRows.isEmpty ? "" : "\n" + table(naiveRows, "naive baseline (\(naiveNote))"))
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;margin:2em}svg{margin:0 1em 1em 0}td,th{padding:2px 10px;text-align:right}</style>
            </head><body>
            <h1>\(escape(title))</h1>
            <p>\(items) items with an outcome; \(replayed) input messages replayed. Each point: the predictions as of that pre-sale day (x axis); the grey bars: how many items had data that day (the others carry their latest earlier prediction).</p>
            \(charts)
            \(tables)
            </body></html>

            """
    }

    private func chart(_ name: String, _ values: [Double], naive: [Double]) -> String {
        let (width, height, margin) = (480.0, 240.0, 44.0)
        let finite = (values + naive).filter { $0.isFinite }
        guard let low = finite.min(), let high = finite.max() else {
            return "<svg width=\"\(Int(width))\" height=\"\(Int(height))\"><text x=\"10\" y=\"20\">\(escape(name)): no data</text></svg>\n"
        }
        let span = high > low ? high - low : max(abs(high), 1)
        func x(_ i: Int) -> Double { margin + Double(i) * (width - 2 * margin) / Double(max(values.count - 1, 1)) }
        func y(_ v: Double) -> Double { height - margin - (v - low) / span * (height - 2 * margin) }
        func points(_ values: [Double]) -> String {
            values.indices.filter { values[$0].isFinite }
                .map { String(format: "%.1f,%.1f", x($0), y(values[$0])) }.joined(separator: " ")
        }
        let naiveLine = naive.contains { $0.isFinite } ? """
            <polyline fill="none" stroke="#d9822b" stroke-width="2" stroke-dasharray="5,3" points="\(points(naive))"/>
            <text x="\(width - margin)" y="\(margin - 2)" font-size="10" text-anchor="end" fill="#1f6feb">— DINOP</text>
            <text x="\(width - margin)" y="\(margin + 10)" font-size="10" text-anchor="end" fill="#d9822b">- - naive</text>
            """ : ""
        let format = high > 10 ? "%.0f" : "%.3f"
        // Items with data per day, as bars up to a quarter of the plot's height.
        let most = Double(max(itemsWithDay.max() ?? 1, 1))
        let bars = itemsWithDay.indices.map { i in
            let h = Double(itemsWithDay[i]) / most * (height - 2 * margin) / 4
            return String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"4\" height=\"%.1f\" fill=\"#ccc\"><title>%d items</title></rect>",
                          x(i) - 2, height - margin - h, h, itemsWithDay[i])
        }.joined()
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" role="img" aria-label="\(escape(name))">
            <text x="\(margin)" y="20" font-size="14">\(escape(name))</text>
            <line x1="\(margin)" y1="\(height - margin)" x2="\(width - margin)" y2="\(height - margin)" stroke="#888"/>
            <line x1="\(margin)" y1="\(margin)" x2="\(margin)" y2="\(height - margin)" stroke="#888"/>
            <text x="\(margin - 4)" y="\(y(high) + 4)" font-size="10" text-anchor="end">\(String(format: format, high))</text>
            <text x="\(margin - 4)" y="\(y(low) + 4)" font-size="10" text-anchor="end">\(String(format: format, low))</text>
            \(bars)
            <text x="\(width - margin)" y="\(height - margin - (height - 2 * margin) / 4 - 4)" font-size="9" text-anchor="end" fill="#999">bars: items with that day's data (\(Int(most)) at most)</text>
            <text x="\(margin)" y="\(height - margin + 14)" font-size="10">day 0</text>
            <text x="\(width / 2)" y="\(height - margin + 26)" font-size="10" text-anchor="middle">pre-sale day (as of)</text>
            <text x="\(width - margin)" y="\(height - margin + 14)" font-size="10" text-anchor="end">day \(values.count - 1)</text>
            <polyline fill="none" stroke="#1f6feb" stroke-width="2" points="\(points(values))"/>
            \(naiveLine)
            </svg>

            """
    }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

import DINOP
import Foundation
import PromoEvents
import PromoFeatures

/// What a predictor says about each test item; nil where it has nothing to say.
public struct ItemScores: Sendable {
    public var gmv: [Double]
    /// A score that ranks best sellers first (a probability, or the predicted GMV).
    public var bsp: [Double]?
    public var slot: [Int]?
    public var ja: [Double?]?

    public init(gmv: [Double], bsp: [Double]?, slot: [Int]?, ja: [Double?]?) {
        self.gmv = gmv
        self.bsp = bsp
        self.slot = slot
        self.ja = ja
    }
}

/// One line of the evaluation table.
public struct EvaluationRow: Sendable {
    public var name: String
    public var gmvMAE: Double
    public var bspAUC: Double
    public var ssAccuracy: Double
    public var jaAUC: Double
    public var seconds: Double

    /// The metrics of `scores` against the items' labels.
    public init(name: String, scores: ItemScores, labels: [ItemLabels], seconds: Double) {
        self.name = name
        self.seconds = seconds
        let withGMV = labels.indices.filter { labels[$0].gmv != nil }
        gmvMAE = Metrics.meanAbsoluteError(withGMV.map { scores.gmv[$0] }, withGMV.map { labels[$0].gmv! })
        let withBest = labels.indices.filter { labels[$0].bestSeller != nil }
        bspAUC = scores.bsp.map { s in Metrics.auc(withBest.map { s[$0] }, withBest.map { labels[$0].bestSeller! }) } ?? .nan
        let withSlot = labels.indices.filter { labels[$0].slot != nil }
        ssAccuracy = scores.slot.map { s in Metrics.accuracy(withSlot.map { s[$0] }, withSlot.map { labels[$0].slot! }) } ?? .nan
        if let ja = scores.ja {
            let withJoin = labels.indices.filter { labels[$0].joinedActivity != nil && ja[$0] != nil }
            jaAUC = Metrics.auc(withJoin.map { ja[$0]! }, withJoin.map { labels[$0].joinedActivity! })
        } else {
            jaAUC = .nan
        }
    }

    public static func table(_ rows: [EvaluationRow], title: String) -> String {
        func cell(_ v: Double, _ format: String) -> String { v.isNaN ? "—" : String(format: format, v) }
        var lines = [title, "",
                     "| model | GMV MAE | BSP AUC | SS accuracy | JA AUC | seconds |",
                     "|---|---:|---:|---:|---:|---:|"]
        for row in rows {
            lines.append("| \(row.name) | \(row.gmvMAE.isNaN ? "—" : Self.atLeastFourDigits(row.gmvMAE)) | \(cell(row.bspAUC, "%.4f")) | "
                         + "\(cell(row.ssAccuracy, "%.4f")) | \(cell(row.jaAUC, "%.4f")) | \(String(format: "%.0f", row.seconds)) |")
        }
        return lines.joined(separator: "\n")
    }

    /// At least four significant digits and at least one decimal: a GMV MAE of 2.271 and one of 195,344.2 both keep
    /// what tells two models apart.
    public static func atLeastFourDigits(_ v: Double) -> String {
        let integerDigits = v == 0 || !v.isFinite ? 1 : max(1, Int(Foundation.log10(abs(v)).rounded(.down)) + 1)
        return String(format: "%.\(max(1, 4 - integerDigits))f", v)
    }

    /// The rows with full precision, for scripts: `{"title", "rows": [{"model", "gmv_mae", "bsp_auc", "ss_accuracy",
    /// "ja_auc", "seconds"}]}`, a metric that could not be computed as null.
    public static func json(_ rows: [EvaluationRow], title: String) -> String {
        var w = JSONWriter()
        w.beginObject()
        w.field("title", title)
        w.key("rows")
        w.beginArray()
        for row in rows {
            w.beginObject()
            w.field("model", row.name)
            w.field("gmv_mae", row.gmvMAE)
            w.field("bsp_auc", row.bspAUC)
            w.field("ss_accuracy", row.ssAccuracy)
            w.field("ja_auc", row.jaAUC)
            w.field("seconds", row.seconds)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

/// The naive baseline: promotion-day GMV is a multiple, fitted on the training items, of an item's recent pre-sale
/// GMV (its mean daily GMV over the last `recentDays` days with a known GMV); best-seller and slot follow from those
/// GMVs by the labels' own rules, within each promotion.
public struct NaiveBaseline: Sendable {
    public var recentDays = 3
    public private(set) var multiple = 0.0

    public init() {}

    func recentGMV(_ record: ItemRecord) -> Double {
        let known = record.days.compactMap { record.sales[$0]!["gmv"] }
        let recent = known.suffix(recentDays)
        return recent.isEmpty ? 0 : recent.reduce(0, +) / Double(recent.count)
    }

    public mutating func fit(_ training: LabelledItems) {
        let pairs = zip(training.records, training.labels).filter { $0.1.gmv != nil }
        multiple = Metrics.bestMultiple(of: pairs.map { recentGMV($0.0) }, for: pairs.map { $0.1.gmv! })
    }

    public func scores(_ test: LabelledItems) -> ItemScores {
        let gmv = test.records.map { multiple * recentGMV($0) }
        var slot = [Int](repeating: 10, count: gmv.count)
        for members in Dictionary(grouping: gmv.indices, by: { test.records[$0].key.promotionID }).values {
            let slots = PromotionLabels.compute(gmv: members.map { gmv[$0] }, industry: members.map { test.records[$0].industry }).slot
            for (k, i) in members.enumerated() { slot[i] = slots[k] }
        }
        return ItemScores(gmv: gmv, bsp: gmv, slot: slot, ja: nil)
    }
}

public struct TrainingDataError: Error, CustomStringConvertible {
    public var description: String
}

/// DINOP trained on the training items and scored on the test items.
public enum DINOPRun {
    public static func scores(_ model: DINOPModel, _ test: LabelledItems, pipeline: FeaturePipeline) -> ItemScores {
        let predictions = pipeline.predictions(model, for: test.records)
        return ItemScores(gmv: predictions.map { $0.gmv ?? 0 }, bsp: predictions.map { $0.bsp ?? 0 },
                          slot: predictions.map { $0.slot ?? 10 }, ja: predictions.map(\.ja))
    }

    /// Trains from `model` on `training`, holding out `validationFraction` of it (by item) for early stopping.
    /// `fitNormalisation`: start from the training data's normalisation and output biases (training from
    /// scratch), or keep the model's (fine-tuning).
    public static func train(_ model: DINOPModel, _ training: LabelledItems, pipeline: FeaturePipeline,
                             options: TrainingOptions, validationFraction: Double = 0.1, fitNormalisation: Bool = true,
                             shouldStop: () -> Bool = { false },
                             progress: (EpochReport) -> Void) throws -> DINOPModel {
        let (fit, validation) = training.split(fraction: validationFraction, salt: "validation-\(options.seed)")
        guard !validation.records.isEmpty, !fit.records.isEmpty else {
            throw TrainingDataError(description: "\(training.count) items are too few to hold out \(validationFraction) for validation")
        }
        return Trainer.train(model, training: fit.examples(pipeline), validation: validation.examples(pipeline),
                             options: options, fitNormalisation: fitNormalisation, shouldStop: shouldStop, progress: progress)
    }
}

/// Where a model's errors come from: the GMV MAE of the largest items (by actual GMV) against the rest — on the
/// money scale a few large items dominate — and how well its best-seller probabilities are calibrated.
public struct ErrorBreakdown: Sendable {
    /// Share of the test items counted as large (by actual GMV).
    public static let largeShare = 0.05
    public var largeMAE: Double, restMAE: Double
    /// The large items' share of the total absolute GMV error.
    public var largeErrorShare: Double
    /// Five bins of predicted best-seller probability: items, mean prediction, observed rate.
    public var calibration: [(items: Int, predicted: Double, observed: Double)]

    public init(scores: ItemScores, labels: [ItemLabels], bspIsProbability: Bool) {
        let withGMV = labels.indices.filter { labels[$0].gmv != nil }.sorted { labels[$0].gmv! > labels[$1].gmv! }
        let cut = Int((Double(withGMV.count) * Self.largeShare).rounded(.up))
        let large = withGMV.prefix(cut), rest = withGMV.dropFirst(cut)
        func errors(_ items: some Collection<Int>) -> [Double] { items.map { abs(scores.gmv[$0] - labels[$0].gmv!) } }
        let (largeErrors, restErrors) = (errors(large), errors(rest))
        func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }
        largeMAE = mean(largeErrors)
        restMAE = mean(restErrors)
        let total = largeErrors.reduce(0, +) + restErrors.reduce(0, +)
        largeErrorShare = total > 0 ? largeErrors.reduce(0, +) / total : .nan
        calibration = []
        guard bspIsProbability, let bsp = scores.bsp else { return }
        let withBest = labels.indices.filter { labels[$0].bestSeller != nil }
        for bin in 0..<5 {
            let members = withBest.filter { min(Int(bsp[$0] * 5), 4) == bin }
            calibration.append((members.count, mean(members.map { bsp[$0] }),
                                mean(members.map { labels[$0].bestSeller! ? 1 : 0 })))
        }
    }

    /// One line: the segments, then the calibration bins that hold items.
    public func line(_ name: String) -> String {
        var text = String(format: "%@: GMV MAE %@ on the largest %.0f%% of items (%.0f%% of the error), %@ on the rest",
                          name, EvaluationRow.atLeastFourDigits(largeMAE), Self.largeShare * 100, largeErrorShare * 100,
                          EvaluationRow.atLeastFourDigits(restMAE))
        let bins = calibration.enumerated().filter { $0.element.items > 0 }.map { bin, c in
            String(format: "[%.1f, %.1f): %d items, predicted %.3f, observed %.3f", Double(bin) / 5, Double(bin + 1) / 5,
                   c.items, c.predicted, c.observed)
        }
        if !bins.isEmpty { text += "; BSP calibration " + bins.joined(separator: "; ") }
        return text
    }
}

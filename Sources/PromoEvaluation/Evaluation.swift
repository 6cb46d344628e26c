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
    static func atLeastFourDigits(_ v: Double) -> String {
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
                             progress: (EpochReport) -> Void) throws -> DINOPModel {
        let (fit, validation) = training.split(fraction: validationFraction, salt: "validation-\(options.seed)")
        guard !validation.records.isEmpty, !fit.records.isEmpty else {
            throw TrainingDataError(description: "\(training.count) items are too few to hold out \(validationFraction) for validation")
        }
        return Trainer.train(model, training: fit.examples(pipeline), validation: validation.examples(pipeline),
                             options: options, fitNormalisation: fitNormalisation, progress: progress)
    }
}

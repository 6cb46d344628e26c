import DINOP
import Foundation
import PromoFeatures

/// The paper's two ways of adapting a trained model to new labels.
public enum FineTuneMethod: String, Sendable, CaseIterable {
    /// FT: the whole network moves, from the current weights.
    case ft
    /// RT: the heads only, on the current (frozen) representations.
    case rt
}

/// MARKETS.md's fine-tune scopes, for a fine-tune on one market's items.
public enum MarketScope: String, Sendable, CaseIterable {
    /// Every tensor (ACMR's fine-tune; for a deployment that serves that market alone).
    case all
    /// Only the tensors indexed by the market: every other market's predictions stay exactly the same.
    case market
}

public struct FineTuneOptions: Sendable {
    public var method = FineTuneMethod.ft
    /// Fine-tune on this market's items only (ACMR's pre-train → fine-tune), with `marketScope`.
    public var market: String?
    public var marketScope = MarketScope.all
    /// Training options; `scope` follows `method`. Normalisation and output biases stay the current version's.
    public var training: TrainingOptions = {
        var options = TrainingOptions()
        options.learningRate = 0.01
        options.maxEpochs = 10
        options.batchSize = 128
        return options
    }()
    /// Share of the labelled items (by item id) held out to compare the candidate with the current version.
    public var holdoutFraction = 0.2
    /// Share of the rest used for early stopping.
    public var validationFraction = 0.1
    /// How much worse, relative to the current version, a holdout metric may get before the candidate is rejected.
    public var margin = 0.01

    public init() {}
}

/// A fine-tuned candidate, both versions' figures on the holdout, and whether it may be published.
public struct FineTuneResult: Sendable {
    public var candidate: DINOPModel
    public var current: EvaluationRow
    public var tuned: EvaluationRow
    public var labelledItems: Int
    public var holdoutItems: Int
    /// Empty when accepted; else one line per metric that got worse beyond the margin.
    public var rejections: [String]

    public var accepted: Bool { rejections.isEmpty }

    /// Named numbers for the model announcement.
    public var metrics: [String: Double] {
        var out: [String: Double] = ["labelled_items": Double(labelledItems), "holdout_items": Double(holdoutItems)]
        for (name, value) in [("holdout_gmv_mae", tuned.gmvMAE), ("holdout_bsp_auc", tuned.bspAUC),
                              ("holdout_ss_accuracy", tuned.ssAccuracy), ("holdout_ja_auc", tuned.jaAUC),
                              ("parent_holdout_gmv_mae", current.gmvMAE)] where value.isFinite {
            out[name] = value
        }
        return out
    }

    public var table: String { EvaluationRow.table([current, tuned], title: "holdout of \(holdoutItems) items") }
}

/// Fine-tunes the current version on newly labelled items and gates the result on a holdout of them.
public enum FineTuner {
    /// `shouldStop`, asked between minibatches: ends training early (the caller then discards the result).
    public static func run(_ current: DINOPModel, on items: LabelledItems, options: FineTuneOptions,
                           shouldStop: () -> Bool = { false },
                           progress: (EpochReport) -> Void = { _ in }) throws -> FineTuneResult {
        var labelled = items.labelled
        var scope: TrainingScope = options.method == .ft ? .all : .headsOnly
        if let market = options.market {
            labelled = labelled.subset(labelled.records.indices.filter { labelled.records[$0].profile?.ids["market"] == market })
            if options.marketScope == .market {
                guard current.layout.specs.contains(where: { $0.marketIndexing != nil }) else {
                    throw TrainingDataError(description: "scope market needs a model with market-indexed tensors (extension market-embedding or domain-attention); this one has extensions \(current.config.extensions)")
                }
                guard let m = current.config.markets.firstIndex(of: market) else {
                    throw TrainingDataError(description: "market \(market) is not one of the model's markets \(current.config.markets)")
                }
                guard options.method == .ft else {
                    throw TrainingDataError(description: "scope market trains the market's own tensors; method rt (the heads) would change every market")
                }
                scope = .market(m)
            }
        }
        let (rest, holdout) = labelled.split(fraction: options.holdoutFraction, salt: "holdout-\(options.training.seed)")
        guard !holdout.records.isEmpty else {
            throw TrainingDataError(description: "\(labelled.count) labelled items are too few to hold out \(options.holdoutFraction) of them")
        }
        let pipeline = FeaturePipeline(config: current.config)
        var start = current
        start.version = current.version + 1
        start.parent = current.version
        var training = options.training
        training.scope = scope
        let started = ContinuousClock.now
        let candidate = try DINOPRun.train(start, rest, pipeline: pipeline, options: training,
                                           validationFraction: options.validationFraction, fitNormalisation: false,
                                           shouldStop: shouldStop, progress: progress)
        let seconds = (ContinuousClock.now - started).seconds
        let before = EvaluationRow(name: "version \(current.version) (current)",
                                   scores: DINOPRun.scores(current, holdout, pipeline: pipeline),
                                   labels: holdout.labels, seconds: 0)
        let after = EvaluationRow(name: "version \(candidate.version) (\(options.method.rawValue.uppercased()) candidate)",
                                  scores: DINOPRun.scores(candidate, holdout, pipeline: pipeline),
                                  labels: holdout.labels, seconds: seconds)
        var refusals = rejections(before, after, margin: options.margin)
        if candidate.parameters.values == current.parameters.values {
            refusals.append("no epoch improved the validation loss: the candidate holds the current weights")
        }
        return FineTuneResult(candidate: candidate, current: before, tuned: after, labelledItems: labelled.count,
                              holdoutItems: holdout.count, rejections: refusals)
    }

    /// The metrics that got worse by more than `margin` of the current version's value.
    static func rejections(_ current: EvaluationRow, _ tuned: EvaluationRow, margin: Double) -> [String] {
        var out: [String] = []
        func check(_ name: String, _ old: Double, _ new: Double, lowerIsBetter: Bool) {
            guard old.isFinite else { return }
            guard new.isFinite else { return out.append("\(name) is undefined for the candidate (was \(old))") }
            let worse = lowerIsBetter ? new - old : old - new
            if worse > margin * abs(old) {
                out.append(String(format: "%@ %@ from %.4g to %.4g (allowed: %.1f%%)", name,
                                  lowerIsBetter ? "rose" : "fell", old, new, margin * 100))
            }
        }
        check("GMV MAE", current.gmvMAE, tuned.gmvMAE, lowerIsBetter: true)
        check("BSP AUC", current.bspAUC, tuned.bspAUC, lowerIsBetter: false)
        check("SS accuracy", current.ssAccuracy, tuned.ssAccuracy, lowerIsBetter: false)
        check("JA AUC", current.jaAUC, tuned.jaAUC, lowerIsBetter: false)
        return out
    }
}

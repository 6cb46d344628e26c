import ArgumentParser
import DINOP
import Foundation
import PromoEvaluation
import PromoFeatures

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate DINOP on a held-out promotion against the naive, gradient-boosted-trees and DINOP-u baselines.",
        discussion: """
            Trains every model on the --train events (a training year), scores the --test events (the next year) and \
            prints one table: GMV MAE on the money scale, best-seller AUC, sale-slot accuracy, join-activity AUC. \
            With --test-fraction instead of --test, the --train events' items are split by item id.
            """)

    @Option(name: .customLong("train"), parsing: .upToNextOption, help: "Training events: files or folders.")
    var trainPaths: [String]
    @Option(name: .customLong("test"), parsing: .upToNextOption, help: "Test events: files or folders.")
    var testPaths: [String] = []
    @Option(help: "Without --test: the share of items (by item id) held out for testing.") var testFraction: Double?
    @Option(help: "Seed of the --test-fraction split (fixed, so that --seed varies the models, not the data).") var splitSeed: UInt64 = 1
    @Option(help: "Use this trained weight file for the DINOP row instead of training one.") var model: String?
    @Flag(help: "Leave out the gradient-boosted-trees baseline (it needs Python with lightgbm).") var noGbdt = false
    @Flag(help: "Leave out the DINOP-u ablation.") var noAblation = false
    @Option(help: "Title of the printed table.") var title = "Offline evaluation"
    @Flag(help: "Print the rows as JSON with full precision instead of the table.") var json = false
    @Flag(help: "Also say, per model, the GMV MAE of the largest 5% of test items against the rest, and how its best-seller probabilities are calibrated.")
    var breakdown = false
    @Flag(help: "One table per market and an overall one, with DINOP trained per market alone, pooled, with MARKETS.md's market-embedding, + domain-attention, + its entropy or reversal adversarial term, and the last fine-tuned per market (scope market, scope all); then the discriminators' accuracy and the feature importance per market.")
    var byMarket = false
    @Flag(help: "With --by-market: also MARKETS.md's competition on the full model (market-embedding, domain-attention, its entropy term), then without competitive attention and without cooperative attention (CATN's ablation). Predicted exactly from every test item of the promotion.")
    var competition = false
    @OptionGroup var shape: ModelShapeOptions
    @OptionGroup var training: TrainingFlags

    func validate() throws {
        guard testPaths.isEmpty != (testFraction == nil) else { throw ValidationError("give exactly one of --test and --test-fraction") }
        guard byMarket || !competition else { throw ValidationError("--competition adds rows to --by-market: give both") }
    }

    func run() throws {
        BLAS.setThreads(1)
        let trainingItems: LabelledItems, testItems: LabelledItems
        if let testFraction {
            let all = try training.load(trainPaths, label: "events").labelled
            (trainingItems, testItems) = all.split(fraction: testFraction, salt: "test-\(splitSeed)")
        } else {
            trainingItems = try training.load(trainPaths, label: "training events").labelled
            testItems = try training.load(testPaths, label: "test events").labelled
        }
        report("evaluate: \(trainingItems.count) training items, \(testItems.count) test items")
        var rows: [EvaluationRow] = [], breakdowns: [String] = []
        /// `bspIsProbability`: false where the BSP score is a ranking (the naive baseline's GMV), not calibratable.
        func timed(_ name: String, bspIsProbability: Bool = true, _ body: () throws -> ItemScores) rethrows {
            let start = ContinuousClock.now
            let scores = try body()
            let row = EvaluationRow(name: name, scores: scores, labels: testItems.labels, seconds: (ContinuousClock.now - start).seconds)
            report(EvaluationRow.table([row], title: "").split(separator: "\n").last.map(String.init) ?? "")
            rows.append(row)
            if breakdown {
                breakdowns.append(ErrorBreakdown(scores: scores, labels: testItems.labels,
                                                 bspIsProbability: bspIsProbability).line(name))
            }
        }

        let start = try shape.randomModel(seed: training.seed)
        training.checkInputs(start.config, trainingItems)
        if byMarket {
            try evaluateByMarket(trainingItems, testItems, start: start)
            return
        }
        timed("naive (fitted multiple of recent pre-sale GMV)", bspIsProbability: false) { naiveScores(trainingItems, testItems) }
        if !noGbdt {
            try timed("gradient-boosted trees (LightGBM, flattened features)") { try treeScores(trainingItems, testItems, start.config) }
        }
        let hasBuyers = trainingItems.records.contains { $0.profile?.su != nil || !$0.buyers.isEmpty }
        if !noAblation && !hasBuyers {
            report("evaluate: DINOP-u left out: the training data has no buyer profiles, so it would train DINOP again")
        }
        if !noAblation && hasBuyers {
            try timed("DINOP-u (no buyer profiles)") {
                var pipeline = FeaturePipeline(config: start.config)
                pipeline.withoutBuyerProfiles = true
                let progress = training.progress("DINOP-u")
                let trained = try DINOPRun.train(start, trainingItems, pipeline: pipeline, options: training.options,
                                             validationFraction: training.validation, progress: progress.epoch)
                progress.finish()
                return DINOPRun.scores(trained, testItems, pipeline: pipeline)
            }
        }
        try timed("DINOP") {
            let pipeline = FeaturePipeline(config: start.config)
            let trained: DINOPModel
            if let model {
                trained = try loadModel(model)
            } else {
                let progress = training.progress("DINOP")
                trained = try DINOPRun.train(start, trainingItems, pipeline: pipeline, options: training.options,
                                             validationFraction: training.validation, progress: progress.epoch)
                progress.finish()
            }
            return DINOPRun.scores(trained, testItems, pipeline: FeaturePipeline(config: trained.config))
        }
        let heading = "\(title): \(trainingItems.count) training items, \(testItems.count) test items"
        print(json ? EvaluationRow.json(rows, title: heading) : EvaluationRow.table(rows, title: heading))
        if !breakdowns.isEmpty && !json { print("\n" + breakdowns.joined(separator: "\n")) }
    }

    /// The naive baseline fitted on the training items.
    func naiveScores(_ trainingItems: LabelledItems, _ testItems: LabelledItems) -> ItemScores {
        var naive = NaiveBaseline()
        naive.fit(trainingItems)
        report(String(format: "naive: promotion-day GMV = %.2f × mean daily GMV of the last %d pre-sale days",
                      naive.multiple, naive.recentDays))
        return naive.scores(testItems)
    }

    /// The LightGBM peer on the same features (ids, the market among them, as categorical columns).
    func treeScores(_ trainingItems: LabelledItems, _ testItems: LabelledItems, _ config: ModelConfig) throws -> ItemScores {
        var trees = GradientBoostedTrees(config: config)
        trees.seed = training.seed
        return try trees.scores(training: trainingItems, test: testItems, log: report)
    }

    /// `--by-market`: the rows MARKETS.md's ablation starts from, one table per market (the test items of that market)
    /// and one overall.
    func evaluateByMarket(_ trainingItems: LabelledItems, _ testItems: LabelledItems, start: DINOPModel) throws {
        let trainSplit = MarketSplit(trainingItems), testSplit = MarketSplit(testItems)
        let markets = trainSplit.markets
        report("evaluate: markets by training items: " + markets.map { "\($0.isEmpty ? "(none)" : $0) \(trainSplit.indices(of: $0).count)" }
            .joined(separator: ", "))
        var models: [(name: String, scores: ItemScores, seconds: Double)] = []
        func timed(_ name: String, _ body: () throws -> ItemScores) rethrows {
            let begin = ContinuousClock.now
            models.append((name, try body(), (ContinuousClock.now - begin).seconds))
            report("evaluate: \(name) done")
        }
        // A fine-tune's training: `promo finetune`'s defaults (a tenth of the learning rate, ten epochs at most).
        var fineTuneTraining = FineTuneOptions().training
        fineTuneTraining.seed = training.seed
        fineTuneTraining.loss = training.options.loss
        /// Trains from scratch (fitting the normalisation), or fine-tunes with `fineTune`'s options (keeping it).
        func train(_ model: DINOPModel, _ items: LabelledItems, _ label: String, options: TrainingOptions? = nil,
                   fineTune: TrainingOptions? = nil) throws -> DINOPModel {
            let progress = training.progress(label)
            defer { progress.finish() }
            return try DINOPRun.train(model, items, pipeline: FeaturePipeline(config: model.config),
                                      options: fineTune ?? options ?? training.options, validationFraction: training.validation,
                                      fitNormalisation: fineTune == nil, progress: progress.epoch)
        }
        /// `model`'s scores of the test items at `indices` (all of them when nil).
        func scores(_ model: DINOPModel, _ indices: [Int]? = nil) -> ItemScores {
            DINOPRun.scores(model, indices.map { testItems.subset($0) } ?? testItems, pipeline: FeaturePipeline(config: model.config))
        }
        /// Scores of every test item, each market's from `body(market, its training items)`.
        func perMarket(_ body: (String, [Int]) throws -> DINOPModel) throws -> ItemScores {
            try ItemScores.assembled(count: testItems.count, testSplit.markets.map { market in
                let testIndices = testSplit.indices(of: market)
                return (testIndices, scores(try body(market, trainSplit.indices(of: market)), testIndices))
            })
        }
        timed("naive (fitted multiple of recent pre-sale GMV)") { naiveScores(trainingItems, testItems) }
        if !noGbdt {
            try timed("LightGBM, the market a feature") { try treeScores(trainingItems, testItems, start.config) }
        }
        try timed("DINOP, each market alone") {
            try perMarket { market, trainIndices in
                guard !trainIndices.isEmpty else {
                    throw ValidationError("market \(market.isEmpty ? "(none)" : market) has test items but no training items")
                }
                return try train(start, trainingItems.subset(trainIndices), "DINOP \(market)")
            }
        }
        try timed("DINOP pooled (no extension)") { scores(try train(start, trainingItems, "DINOP pooled")) }
        var pretrained: DINOPModel?
        try timed("DINOP + market-embedding") {
            let config = start.config.withMarketEmbedding(markets)
            let initial = try DINOPModel.random(config: config, dims: start.layout.dims, seed: training.seed)
            let trained = try train(initial, trainingItems, "DINOP + market-embedding")
            pretrained = trained
            return scores(trained)
        }
        // CNAN-AT's domain attention on top, then each adversarial term (MARKETS.md); each row trains afresh.
        var domainModels: [(name: String, model: DINOPModel)] = []
        for (name, adversarial) in [("+ domain-attention", AdversarialTerm.none), ("+ entropy adversarial", .entropy),
                                    ("+ reversal adversarial", .reversal)] {
            try timed(name) {
                let initial = try DINOPModel.random(config: start.config.withDomainAttention(markets), dims: start.layout.dims,
                                                    seed: training.seed)
                var options = training.options
                options.loss.domain.adversarial = adversarial
                let trained = try train(initial, trainingItems, "DINOP \(name)", options: options)
                domainModels.append((name, trained))
                pretrained = trained
                return scores(trained)
            }
        }
        // ACMR's pre-train → fine-tune: the full model (the last row's) fine-tuned on each market's items, with each
        // scope.
        if let pretrained {
            for (name, scope) in [("+ fine-tune scope market", MarketScope.market), ("+ fine-tune scope all", .all)] {
                try timed(name) {
                    try perMarket { market, trainIndices in
                        // No column (no market id) or too few items to fine-tune on: the pre-trained model.
                        guard let m = pretrained.config.markets.firstIndex(of: market), trainIndices.count >= 20 else {
                            return pretrained
                        }
                        var options = fineTuneTraining
                        options.scope = scope == .market ? .market(m) : .all
                        return try train(pretrained, trainingItems.subset(trainIndices), "\(name) \(market)", fineTune: options)
                    }
                }
            }
        }
        // CATN's ablation on the full model before fine-tuning (both extensions and the entropy term), each afresh.
        for variant in competition ? CompetitionVariant.allCases : [] {
            try timed(variant.rawValue) {
                var initial = try DINOPModel.random(config: variant.config(start.config.withDomainAttention(markets)),
                                                    dims: start.layout.dims, seed: training.seed)
                var options = training.options
                options.loss.domain.adversarial = .entropy
                variant.pin(&initial, &options)
                return scores(try train(initial, trainingItems, "DINOP \(variant.rawValue)", options: options))
            }
        }
        var tables: [String] = []
        for market in testSplit.markets + [nil] {
            let indices = market.map { testSplit.indices(of: $0) } ?? Array(testItems.records.indices)
            let labels = indices.map { testItems.labels[$0] }
            let rows = models.map { EvaluationRow(name: $0.name, scores: $0.scores.subset(indices), labels: labels, seconds: $0.seconds) }
            let heading = market.map { "\(title), market \($0.isEmpty ? "(none)" : $0): \(trainSplit.indices(of: $0).count) training items, \(indices.count) test items" }
                ?? "\(title), all markets: \(trainingItems.count) training items, \(testItems.count) test items"
            tables.append(json ? EvaluationRow.json(rows, title: heading) : EvaluationRow.table(rows, title: heading))
        }
        for table in domainTables(domainModels, testItems) { tables.append(json ? table.json : table.text) }
        print(tables.joined(separator: "\n\n"))
    }

    /// MARKETS.md's checks on the test items: how well each domain-attention model's discriminators tell the
    /// markets apart from `rep` (which the adversarial terms push toward chance) and from `o`; and the full model's
    /// feature importance per market.
    func domainTables(_ models: [(name: String, model: DINOPModel)], _ testItems: LabelledItems) -> [FigureTable] {
        guard let full = models.last else { return [] }
        var accuracy = FigureTable(title: "\(title): markets told apart, test items with a listed market",
                                   columns: ["from rep (dom.c)", "chance (largest market)", "from o (dom.m)"])
        var importance: FigureTable?
        for (name, model) in models {
            let pipeline = FeaturePipeline(config: model.config)
            let views = model.domainViews(testItems.records.map { pipeline.raw($0) })
            let summary = DomainSummary(views: views, markets: model.config.markets)
            accuracy.rows.append((name, [summary.discriminatorAccuracy, summary.chance, summary.specAccuracy]))
            if name == full.name {
                var table = FigureTable(title: "\(title): feature importance (mean gate a_f^m of each field over a market's test items, model \(name))",
                                        columns: model.config.siiFields)
                for market in model.config.markets { if let gates = summary.importance[market] { table.rows.append((market, gates)) } }
                importance = table
            }
        }
        return [accuracy] + (importance.map { [$0] } ?? [])
    }
}

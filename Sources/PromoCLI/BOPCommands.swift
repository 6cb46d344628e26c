import ArgumentParser
import BOP
import BOPTraining
import DINOP
import Foundation
import PromoEvents
import PromoModels
import PromoStream

struct BOPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bop", abstract: "BOP.md: who buys what through the promotion (ACMR's cross-market model).",
        subcommands: [BOPTrainCommand.self, BOPEvaluateCommand.self, BOPPredictCommand.self, BOPBacktestCommand.self,
                      BOPCombineCommand.self])
}

/// ACMR's Table 3 (random protocol), NDCG@10 and Recall@10, and FOREC's NDCG@10 there (BOP.md).
let acmrTable3: [String: (ndcg10: Double, recall10: Double, forec: Double)] = [
    "de": (0.5462, 0.7931, 0.5233), "jp": (0.5243, 0.7888, 0.4510), "in": (0.6345, 0.8033, 0.5983),
    "fr": (0.5622, 0.8239, 0.5238), "ca": (0.4310, 0.6359, 0.3986), "mx": (0.7198, 0.8739, 0.6759),
    "uk": (0.5546, 0.7636, 0.5306),
]

/// The data, split and training flags `bop train` and `bop evaluate` share.
struct BOPTrainingFlags: ParsableArguments {
    @Option(help: "The XMarket folder (default $PROMO_XMARKET, else ../shared/data/xmarket-electronics).") var data: String?
    @Option(parsing: .upToNextOption, help: "Markets (default: all seven).") var markets: [String] = XMarket.markets
    @Option(help: "Seed of the split, the negatives, initialisation and shuffling.") var seed: UInt64 = 1
    @Option(help: "At most this many pre-training epochs.") var epochs = 20
    @Option(help: "At most this many fine-tuning epochs per market.") var tuneEpochs = 10
    @Option(help: "Epochs without a better validation NDCG@10 before stopping.") var patience = 3
    @Option(help: "Adam learning rate.") var learningRate = 1e-3
    @Option(help: "Sampled negatives per training purchase (each one more pass of the sequence).") var negatives = 4
    @Option(help: "Sequences per minibatch.") var batch = 1024
    @Option(help: "Dropout at PyTorch's four sites of each encoder layer, in training.") var dropout = 0.3
    @Option(help: "Token width d.") var width = BOPConfig.acmr.width
    @Option(help: "Encoder layers L.") var layers = BOPConfig.acmr.layers
    @Option(help: "Attention heads g.") var heads = BOPConfig.acmr.heads
    @Option(help: "Feed-forward width.") var ffn = BOPConfig.acmr.ffn
    @Option(help: "Tokens per pass, the candidate included.") var maxHistory = BOPConfig.acmr.maxHistory
    @Option(help: "Early stopping reads at most this many validation users per market (a fixed sample).") var validationUsers = 1000
    @Option(help: "Where negatives (training and rankings) come from: market (BOP.md: items of the user's market) or all-markets (ACMR's code: items of every market loaded, an easier ranking; its Table 3 was measured so).")
    var negativePool = NegativePool.market
    @Option(help: "Threads (default: every core).") var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        try FlagCheck.atLeast(epochs, 1, "--epochs")
        try FlagCheck.atLeast(tuneEpochs, 0, "--tune-epochs")
        try FlagCheck.atLeast(patience, 0, "--patience")
        try FlagCheck.atLeast(batch, 1, "--batch")
        try FlagCheck.inRange(negatives, 1...99, "--negatives")
        try FlagCheck.inRange(threads, 1...256, "--threads")
        try FlagCheck.atLeast(validationUsers, 1, "--validation-users")
        try FlagCheck.finite(dropout, 0...0.9, "--dropout")
        try FlagCheck.finite(learningRate, 1e-12...10, "--learning-rate")
        try FlagCheck.inRange(maxHistory, 1...Recommender.maxServedHistory, "--max-history")
        for market in markets where !XMarket.markets.contains(market) {
            throw ValidationError("unknown market \(market) (XMarket electronics has \(XMarket.markets.joined(separator: ", ")))")
        }
        guard Set(markets).count == markets.count else { throw ValidationError("--markets lists a market twice") }
    }

    var options: BOPTrainingOptions {
        var options = BOPTrainingOptions()
        options.learningRate = learningRate
        options.negatives = negatives
        options.batchSize = batch
        options.maxEpochs = epochs
        options.patience = patience
        options.seed = seed
        options.threads = threads
        options.dropout = dropout
        options.validationUsers = validationUsers
        return options
    }

    /// Every market's split under `protocol`, and the untrained model (markets in flag order).
    func prepare(_ protocol: HoldOutProtocol) throws -> (start: BOPModel, data: [MarketData]) {
        BLAS.setThreads(1)
        let folder = URL(fileURLWithPath: data ?? ProcessInfo.processInfo.environment["PROMO_XMARKET"] ?? "../shared/data/xmarket-electronics")
        var rejected = 0
        let interactions = try XMarket.load(folder, markets: markets) { line in
            rejected += 1
            if rejected <= 5 { report("rejected \(line)") }
        }
        let config = BOPConfig(width: width, layers: layers, heads: heads, ffn: ffn, maxHistory: maxHistory, itemRows: BOPConfig.acmr.itemRows)
        try config.validate()
        let start = try BOPModel.random(config: config, markets: markets, seed: seed)
        let pool = negativePool == .allMarkets ? Array(Set(interactions.values.flatMap { $0.map(\.item) })).sorted() : nil
        let data = markets.enumerated().map { m, market in
            MarketData(split: MarketSplit(market: market, interactions: interactions[market] ?? [], protocol: `protocol`, pool: pool,
                                          seed: seed),
                       index: m)
        }
        for d in data {
            report("bop: \(d.split.market): \(d.split.training.count) training purchases, \(d.split.test.count) test users, \(d.split.items.count) items, negatives from \(d.split.negativePool.count)")
        }
        return (start, data)
    }

    /// Epoch lines and the rate and ETA of a training run.
    func progress(_ label: String, _ maxEpochs: Int) -> (Int, Double, Double, Double, Bool) -> Void {
        let reporter = ProgressReporter(label: label, total: maxEpochs, unit: "epoch")
        return { epoch, loss, ndcg, seconds, improved in
            reporter.note(String(format: "%@ epoch %d: loss %.4f, validation NDCG@10 %.4f, %.1fs%@", label, epoch, loss, ndcg, seconds, improved ? " *" : ""))
            reporter.update(epoch)
        }
    }

    /// ACMR's Algorithm 1: pre-train on every market, then fine-tune a copy on each (keeping the pre-trained model
    /// where no fine-tuning epoch beats it on validation).
    func pretrainAndTune(_ start: BOPModel, _ data: [MarketData]) -> (pretrained: BOPModel, tuned: [String: BOPModel]) {
        let options = self.options
        let pretrained = BOPRanking.train(start, data, options: options, evaluateStart: false, progress: progress("bop pre-train", epochs))
        var tune = options
        tune.maxEpochs = tuneEpochs
        var tuned: [String: BOPModel] = [:]
        for d in data where tuneEpochs > 0 {
            tuned[d.split.market] = BOPRanking.train(pretrained, [d], options: tune, evaluateStart: true,
                                                     progress: progress("bop fine-tune \(d.split.market)", tuneEpochs))
        }
        return (pretrained, tuned)
    }
}

struct BOPTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train BOP on XMarket: pre-train on every market, fine-tune per market; write the weight files.",
        discussion: """
            Holds out each user's last two interactions (the time-ordered protocol, what a live service faces): the \
            one before last for early stopping on validation NDCG@10, the last for the test figures printed at the \
            end. Writes <out>/all.safetensors (pre-trained) and <out>/<market>.safetensors (fine-tuned), BOP-only \
            dinop/2 files (BOP.md) that `promo bop predict` and `promo run --role recommendations` serve.
            """)

    @OptionGroup var flags: BOPTrainingFlags
    @Option(help: "Which interactions are held out: time-ordered (default) or random (ACMR's).") var `protocol` = HoldOutProtocol.timeOrdered
    @Option(help: "The folder the weight files are written to (created if missing).") var out: String

    func run() throws {
        let folder = URL(fileURLWithPath: out)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot create --out \(out): \(error.localizedDescription)")
        }
        let (start, data) = try flags.prepare(`protocol`)
        let (pretrained, tuned) = flags.pretrainAndTune(start, data)
        var lines = ["| market | model | NDCG@10 | Recall@10 | users | file |", "|---|---|---:|---:|---:|---|"]
        try write(pretrained, to: folder.appendingPathComponent("all.safetensors"))
        for d in data {
            let market = d.split.market
            let all = BOPRanking.evaluate(pretrained, d.split.test, market: market, threads: flags.threads)
            lines.append(String(format: "| %@ | pre-trained on all | %.4f | %.4f | %d | all.safetensors |", market, all.ndcg10, all.recall10, all.cases))
            guard let model = tuned[market] else { continue }
            try write(model, to: folder.appendingPathComponent("\(market).safetensors"))
            let m = BOPRanking.evaluate(model, d.split.test, market: market, threads: flags.threads)
            lines.append(String(format: "| %@ | fine-tuned | %.4f | %.4f | %d | %@.safetensors |", market, m.ndcg10, m.recall10, m.cases, market))
        }
        print("BOP trained on XMarket electronics, protocol \(`protocol`.rawValue), negatives from \(flags.negativePool.rawValue), seed \(flags.seed); test figures:\n")
        print(lines.joined(separator: "\n"))
    }

    private func write(_ model: BOPModel, to url: URL) throws {
        do {
            try model.safetensors().write(to: url, options: .atomic)
        } catch {
            throw ValidationError("cannot write \(url.path): \(error.localizedDescription)")
        }
        report("bop: wrote \(url.path)")
    }
}

struct BOPCombineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "combine",
        abstract: "Write one weight file with an item model and a BOP model (BOP.md), for both roles of `promo run`.",
        discussion: """
            The item role serves the combined file as its item model; when the BOP part has bop.rep.weight (an \
            export from PyTorch), each prediction carries the item's rep, which the recommendation role adds to \
            the item's candidate token. The file is a new item-model version (by default the item model's + 1, \
            its parent the item model's), so that `promo model publish` puts it on the model topic beside the \
            version it came from. bop.rep.weight fits the rep of the item model it was trained with: a later \
            fine-tune of the item part keeps it, and the two drift apart.
            """)

    @Option(help: "The item model: a dinop/1 or dinop/2 weight file.") var item: String
    @Option(help: "The BOP model: a BOP-only file (`promo bop train`) or a combined one.") var bop: String
    @Option(help: "Where to write the combined file.") var out: String
    @Option(help: "The combined file's version (default: the item model's + 1).") var version: Int?

    func run() throws {
        let itemModel: DINOPModel, bopModel: BOPModel
        do { itemModel = try ModelFile.read(contentsOf: URL(fileURLWithPath: item)) } catch { throw ValidationError("--item \(item): \(error)") }
        do { bopModel = try BOPModel(contentsOf: URL(fileURLWithPath: bop)) } catch { throw ValidationError("--bop \(bop): \(error)") }
        if let problem = Recommender.servingProblem(bopModel) { throw ValidationError("--bop \(bop): \(problem)") }
        let combined: DINOPModel
        let version = self.version ?? (itemModel.version < Int.max ? itemModel.version + 1 : itemModel.version)
        guard version >= 1 else { throw ValidationError("--version must be at least 1, got \(version)") }
        do { combined = try bopModel.combined(with: itemModel, version: version, parent: .some(itemModel.version)) } catch {
            throw ValidationError("\(error)")
        }
        do { try combined.write(to: URL(fileURLWithPath: out)) } catch {
            throw ValidationError("cannot write \(out): \(error.localizedDescription)")
        }
        report("bop: wrote \(out): version \(combined.version) (parent \(itemModel.version)), BOP \(bopModel.repWidth == nil ? "without" : "with") bop.rep.weight")
    }
}

struct BOPEvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Train and evaluate BOP on XMarket: popularity, each market alone, pre-trained on all, fine-tuned per market.",
        discussion: """
            Reads <market>_5core.txt from --data (default $PROMO_XMARKET, else ../shared/data/xmarket-electronics). \
            Holds out one interaction per user for validation and one for test (--protocol random: ACMR's; \
            time-ordered: the last two), ranks each held-out item among 99 items of its market the user never \
            interacted with, and prints NDCG@5/10 and Recall@5/10 per market beside ACMR's and FOREC's published figures.
            """)

    @OptionGroup var flags: BOPTrainingFlags
    @Option(help: "Which interactions are held out: random (ACMR's) or time-ordered.") var `protocol` = HoldOutProtocol.random
    @Flag(help: "Leave out the models trained on one market alone.") var noSingle = false
    @Flag(help: "Print the table as JSON (the figures `Deploy/local/seeds.sh` averages).") var json = false

    func run() throws {
        let (start, data) = try flags.prepare(`protocol`)
        let threads = flags.threads
        var rows: [String: [(String, RankingMetrics)]] = [:]
        let coPurchase = CoPurchase(data)
        for d in data {
            rows[d.split.market, default: []].append(("popularity", BOPRanking.popularity(d.split, d.split.test)))
            rows[d.split.market, default: []].append(("co-purchase count (all markets)", coPurchase.evaluate(d.split, d.split.test)))
        }
        if !noSingle {
            for d in data {
                let alone = BOPRanking.train(start, [d], options: flags.options, evaluateStart: false,
                                             progress: flags.progress("bop \(d.split.market) alone", flags.epochs))
                rows[d.split.market, default: []].append(("\(d.split.market) alone", BOPRanking.evaluate(alone, d.split.test, market: d.split.market, threads: threads)))
            }
        }
        let (pretrained, tuned) = flags.pretrainAndTune(start, data)
        for d in data {
            rows[d.split.market, default: []].append(("pre-trained on all", BOPRanking.evaluate(pretrained, d.split.test, market: d.split.market, threads: threads)))
            if let model = tuned[d.split.market] {
                rows[d.split.market, default: []].append(("fine-tuned (ACMR's schedule)", BOPRanking.evaluate(model, d.split.test, market: d.split.market, threads: threads)))
            }
        }
        print(json ? jsonTable(rows) : table(rows))
    }

    func table(_ rows: [String: [(String, RankingMetrics)]]) -> String {
        var lines = ["BOP on XMarket electronics, protocol \(`protocol`.rawValue), negatives from \(flags.negativePool.rawValue), seed \(flags.seed)", "",
                     "| market | model | NDCG@5 | NDCG@10 | Recall@5 | Recall@10 | users |", "|---|---|---:|---:|---:|---:|---:|"]
        for market in flags.markets {
            for (name, m) in rows[market] ?? [] {
                lines.append(String(format: "| %@ | %@ | %.4f | %.4f | %.4f | %.4f | %d |", market, name, m.ndcg5, m.ndcg10, m.recall5, m.recall10, m.cases))
            }
            if `protocol` == .random, let published = acmrTable3[market] {
                lines.append(String(format: "| %@ | ACMR (Table 3) | | %.4f | | %.4f | |", market, published.ndcg10, published.recall10))
                lines.append(String(format: "| %@ | FOREC (ACMR's Table 3) | | %.4f | | | |", market, published.forec))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One line of JSON in the shape `Deploy/local/seeds.sh` averages: a title, columns, and a row per (market, model).
    func jsonTable(_ rows: [String: [(String, RankingMetrics)]]) -> String {
        var out: [[String: Any]] = []
        for market in flags.markets {
            for (name, m) in rows[market] ?? [] {
                out.append(["name": "\(market) \(name)", "values": [m.ndcg5, m.ndcg10, m.recall5, m.recall10]])
            }
        }
        let object: [String: Any] = ["title": "BOP on XMarket electronics, protocol \(`protocol`.rawValue), negatives from \(flags.negativePool.rawValue)",
                                     "columns": ["NDCG@5", "NDCG@10", "Recall@5", "Recall@10"], "rows": out]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

extension HoldOutProtocol: ExpressibleByArgument {}
extension NegativePool: ExpressibleByArgument {}

struct BOPPredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Each user's recommendations (recommendation/1 lines) from purchases and predictions, as the stream computes them.",
        discussion: """
            Reads purchase/1 events (each user's last max_history purchases, in time order) and prediction/1 events \
            (each item's latest prediction; per promotion and market the --candidates items with the highest \
            predicted GMV). Prints, per user and per promotion with candidates in the user's market (their latest \
            purchase's), the --top-k candidates by P(buy): what `promo run --role recommendations` publishes last for \
            the same events. Lines that are not such events are reported on stderr and skipped.
            """)

    @Option(help: "A BOP weight file (`promo bop train` writes them) or a combined one (`promo bop combine`).") var model: String
    @Option(parsing: .upToNextOption, help: "purchase/1 event files or folders.") var purchases: [String]
    @Option(parsing: .upToNextOption, help: "prediction/1 event files or folders.") var predictions: [String]
    @Option(help: "Items per recommendation.") var topK = 10
    @Option(help: "Candidates per promotion and market.") var candidates = 100

    func validate() throws {
        try FlagCheck.inRange(topK, 1...Recommendation.maxItems, "--top-k")
        try FlagCheck.inRange(candidates, 1...CandidateTable.largest, "--candidates")
    }

    func run() throws {
        let (bop, purchases, table) = try readRecommendationInputs(model: model, purchases: self.purchases, predictions: predictions,
                                                                   candidates: candidates)
        let histories = PurchaseHistory.histories(purchases, limit: bop.config.maxHistory)
        let recommender = Recommender(model: bop, topK: topK)
        for recommendation in recommender.recommendations(Array(histories.values), table: table, producedAt: UTCTimestamp.string(Int64(Date().timeIntervalSince1970 * 1000))) {
            print(String(decoding: Event.recommendation(recommendation).encoded(), as: UTF8.self))
        }
    }
}

/// The BOP model, every purchase/1 event and the candidate table (prediction/1 events) of `bop predict` and
/// `bop backtest`; lines that are not such events are reported on stderr and skipped.
func readRecommendationInputs(model: String, purchases: [String], predictions: [String], candidates: Int) throws
    -> (BOPModel, [Purchase], CandidateTable) {
    BLAS.setThreads(1)
    let bop: BOPModel
    do { bop = try BOPModel(contentsOf: URL(fileURLWithPath: model)) } catch { throw ValidationError("--model \(model): \(error)") }
    if let problem = Recommender.servingProblem(bop) { throw ValidationError("--model \(model): \(problem)") }
    let decoder = EventDecoder()
    var skipped = 0, read: [Purchase] = []
    func rejected(_ line: RejectedLine) {
        skipped += 1
        if skipped <= 5 { report("skipped \(line)") }
    }
    for url in try EventFile.expand(purchases) {
        try EventFile.read(url, decoder: decoder, rejected: rejected) { event in
            guard case .purchase(let p) = event else { skipped += 1; return }
            read.append(p)
        }
    }
    let table = CandidateTable(size: candidates)
    for url in try EventFile.expand(predictions) {
        try EventFile.read(url, decoder: decoder, rejected: rejected) { event in
            guard case .prediction(let p) = event else { skipped += 1; return }
            table.apply(p)
        }
    }
    _ = table.refresh()
    if skipped > 0 { report("skipped \(skipped) lines that are not purchase/1 or prediction/1 events") }
    return (bop, read, table)
}

struct BOPBacktestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Score recommendations against what each user bought on the promotion day.",
        discussion: """
            Each user's history is their purchases before --day (UTC); their list per promotion is what \
            `promo run --role recommendations` would publish at the day's start (the --top-k of --candidates by \
            P(buy)); a hit is a listed item the user bought on the day. Prints per promotion and market, over the \
            users who bought on the day and before it: hit rate, precision, recall and NDCG at K, beside the same \
            candidates ranked by predicted GMV alone (the list every user would get).
            """)

    @Option(help: "A BOP weight file (`promo bop train` writes them) or a combined one (`promo bop combine`).") var model: String
    @Option(parsing: .upToNextOption, help: "purchase/1 event files or folders.") var purchases: [String]
    @Option(parsing: .upToNextOption, help: "prediction/1 event files or folders (the candidates as of the day's start).") var predictions: [String]
    @Option(help: "The promotion day, YYYY-MM-DD (UTC).") var day: String
    @Option(help: "Items per recommendation.") var topK = 10
    @Option(help: "Candidates per promotion and market.") var candidates = 100

    func validate() throws {
        try FlagCheck.inRange(topK, 1...Recommendation.maxItems, "--top-k")
        try FlagCheck.inRange(candidates, 1...CandidateTable.largest, "--candidates")
        guard UTCTimestamp.milliseconds("\(day)T00:00:00Z") != nil else { throw ValidationError("--day must be YYYY-MM-DD, got \(day)") }
    }

    func run() throws {
        let (bop, purchases, table) = try readRecommendationInputs(model: model, purchases: self.purchases, predictions: predictions,
                                                                   candidates: candidates)
        let start = UTCTimestamp.milliseconds("\(day)T00:00:00Z") ?? 0
        let rows = RecommendationBacktest(recommender: Recommender(model: bop, topK: topK)).run(purchases: purchases, table: table, dayStartMs: start)
        print("Recommendations at the start of \(day) against that day's purchases, K = \(topK), \(candidates) candidates\n")
        print("| promotion | market | list | users | hit rate | precision | recall | NDCG |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for row in rows {
            for (name, f) in [("BOP", row.bop), ("by predicted GMV", row.byGMV)] {
                print(String(format: "| %@ | %@ | %@ | %d | %.4f | %.4f | %.4f | %.4f |", row.group.promotionID, row.group.market ?? "(none)",
                             name, f.users, f.hitRate, f.precision, f.recall, f.ndcg))
            }
        }
        if rows.isEmpty { print("(no user bought both before and on \(day))") }
    }
}

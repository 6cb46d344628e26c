import ArgumentParser
import BOP
import BOPTraining
import DINOP
import Foundation

struct BOPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bop", abstract: "BOP.md: who buys what through the promotion (ACMR's cross-market model).",
        subcommands: [BOPEvaluateCommand.self])
}

/// ACMR's Table 3 (random protocol), NDCG@10 and Recall@10, and FOREC's NDCG@10 there (BOP.md).
let acmrTable3: [String: (ndcg10: Double, recall10: Double, forec: Double)] = [
    "de": (0.5462, 0.7931, 0.5233), "jp": (0.5243, 0.7888, 0.4510), "in": (0.6345, 0.8033, 0.5983),
    "fr": (0.5622, 0.8239, 0.5238), "ca": (0.4310, 0.6359, 0.3986), "mx": (0.7198, 0.8739, 0.6759),
    "uk": (0.5546, 0.7636, 0.5306),
]

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

    @Option(help: "The XMarket folder.") var data: String?
    @Option(parsing: .upToNextOption, help: "Markets (default: all seven).") var markets: [String] = XMarket.markets
    @Option(help: "Which interactions are held out: random (ACMR's) or time-ordered.") var `protocol` = HoldOutProtocol.random
    @Option(help: "Seed of the split, the negatives, initialisation and shuffling.") var seed: UInt64 = 1
    @Option(help: "At most this many pre-training epochs.") var epochs = 20
    @Option(help: "At most this many fine-tuning epochs per market.") var tuneEpochs = 10
    @Option(help: "Epochs without a better validation NDCG@10 before stopping.") var patience = 3
    @Option(help: "Adam learning rate.") var learningRate = 1e-3
    @Option(help: "Sequences per minibatch.") var batch = 1024
    @Option(help: "Dropout at PyTorch's four sites of each encoder layer, in training.") var dropout = 0.3
    @Option(help: "Token width d.") var width = BOPConfig.acmr.width
    @Option(help: "Encoder layers L.") var layers = BOPConfig.acmr.layers
    @Option(help: "Attention heads g.") var heads = BOPConfig.acmr.heads
    @Option(help: "Feed-forward width.") var ffn = BOPConfig.acmr.ffn
    @Option(help: "Tokens per pass, the candidate included.") var maxHistory = BOPConfig.acmr.maxHistory
    @Flag(help: "Leave out the models trained on one market alone.") var noSingle = false
    @Option(help: "Early stopping reads at most this many validation users per market (a fixed sample).") var validationUsers = 1000
    @Option(help: "Threads (default: every core).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Print the table as JSON.") var json = false

    func validate() throws {
        try FlagCheck.atLeast(epochs, 1, "--epochs")
        try FlagCheck.atLeast(tuneEpochs, 0, "--tune-epochs")
        try FlagCheck.atLeast(patience, 0, "--patience")
        try FlagCheck.atLeast(batch, 1, "--batch")
        try FlagCheck.inRange(threads, 1...256, "--threads")
        try FlagCheck.atLeast(validationUsers, 1, "--validation-users")
        try FlagCheck.finite(dropout, 0...0.9, "--dropout")
        try FlagCheck.finite(learningRate, 1e-12...10, "--learning-rate")
        for market in markets where !XMarket.markets.contains(market) {
            throw ValidationError("unknown market \(market) (XMarket electronics has \(XMarket.markets.joined(separator: ", ")))")
        }
    }

    func run() throws {
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
        let data = markets.enumerated().map { m, market in
            MarketData(split: MarketSplit(market: market, interactions: interactions[market] ?? [], protocol: `protocol`, seed: seed),
                       index: m)
        }
        for d in data {
            report("bop: \(d.split.market): \(d.split.training.count) training purchases, \(d.split.test.count) test users, \(d.split.items.count) items")
        }
        var options = BOPTrainingOptions()
        options.learningRate = learningRate
        options.batchSize = batch
        options.maxEpochs = epochs
        options.patience = patience
        options.seed = seed
        options.threads = threads
        options.dropout = dropout
        options.validationUsers = validationUsers
        func progress(_ label: String, _ maxEpochs: Int) -> (Int, Double, Double, Double, Bool) -> Void {
            let reporter = ProgressReporter(label: label, total: maxEpochs, unit: "epoch")
            return { epoch, loss, ndcg, seconds, improved in
                reporter.note(String(format: "%@ epoch %d: loss %.4f, validation NDCG@10 %.4f, %.1fs%@", label, epoch, loss, ndcg, seconds, improved ? " *" : ""))
                reporter.update(epoch)
            }
        }
        var rows: [String: [(String, RankingMetrics)]] = [:]
        for d in data { rows[d.split.market, default: []].append(("popularity", BOPRanking.popularity(d.split, d.split.test))) }
        if !noSingle {
            for d in data {
                let alone = BOPRanking.train(start, [d], options: options, evaluateStart: false, progress: progress("bop \(d.split.market) alone", epochs))
                rows[d.split.market, default: []].append(("\(d.split.market) alone", BOPRanking.evaluate(alone, d.split.test, market: d.split.market, threads: threads)))
            }
        }
        let pretrained = BOPRanking.train(start, data, options: options, evaluateStart: false, progress: progress("bop pre-train", epochs))
        for d in data { rows[d.split.market, default: []].append(("pre-trained on all", BOPRanking.evaluate(pretrained, d.split.test, market: d.split.market, threads: threads))) }
        var tune = options
        tune.maxEpochs = tuneEpochs
        for d in data where tuneEpochs > 0 {
            let tuned = BOPRanking.train(pretrained, [d], options: tune, evaluateStart: true, progress: progress("bop fine-tune \(d.split.market)", tuneEpochs))
            rows[d.split.market, default: []].append(("fine-tuned (ACMR's schedule)", BOPRanking.evaluate(tuned, d.split.test, market: d.split.market, threads: threads)))
        }
        print(table(rows))
    }

    func table(_ rows: [String: [(String, RankingMetrics)]]) -> String {
        var lines = ["BOP on XMarket electronics, protocol \(`protocol`.rawValue), seed \(seed)", "",
                     "| market | model | NDCG@5 | NDCG@10 | Recall@5 | Recall@10 | users |", "|---|---|---:|---:|---:|---:|---:|"]
        for market in markets {
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
}

extension HoldOutProtocol: ExpressibleByArgument {}

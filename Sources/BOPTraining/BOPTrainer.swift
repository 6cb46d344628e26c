import BOP
import DINOP
import Foundation
import Synchronization

/// BOP.md's training choices (ACMR's), the defaults: 4 sampled negatives per purchase, Adam lr 1e-3, L2 1e-7,
/// dropout 0.3, batches of 1024; early stopping on validation NDCG@10.
public struct BOPTrainingOptions: Sendable {
    public var negatives = 4
    public var learningRate = 1e-3
    public var l2 = 1e-7
    /// PyTorch's dropout sites of the encoder layer (BOP.md: training only).
    public var dropout = 0.3
    public var batchSize = 1024
    public var maxEpochs = 20
    public var patience = 3
    public var seed: UInt64 = 1
    /// Threads that share each batch (and each evaluation); one OpenBLAS thread each.
    public var threads = 1
    /// Early stopping reads at most this many validation users per market (a fixed, seeded sample): ranking 100
    /// candidates per user is most of an epoch's cost otherwise. The test figures always rank every test user.
    public var validationUsers = 1000

    public init() {}
}

/// A market's data with its position in the model's `markets`.
public struct MarketData: Sendable {
    public let split: MarketSplit
    public let index: Int?

    public init(split: MarketSplit, index: Int?) {
        self.split = split
        self.index = index
    }
}

/// Adam (PyTorch's: L2 added to the gradient, bias-corrected moments) over every tensor of a BOP model.
///
/// Only the entries the data can reach are stepped: every tensor but `bop.item.emb`, and the embedding rows of the
/// markets' items. Any other row takes no part in any output on this data; stepping it (PyTorch's dense Adam moves
/// it by its L2 term alone) would cost 200,003 × d entries per step for nothing.
public struct BOPTrainer {
    public private(set) var model: BOPModel
    public let options: BOPTrainingOptions
    private var first: [Float], second: [Float], step = 0
    private var rng: SeededGenerator
    /// The flat ranges stepped (the reachable rows and the dense tensors), merged and sorted.
    private var reachable: [Range<Int>] = []
    /// Zeroed gradient buffers, one per thread, reused across batches (zeroed again over `reachable` only).
    private var spare: [[Float]] = []

    public init(model: BOPModel, options: BOPTrainingOptions) {
        self.model = model
        self.options = options
        first = Array(repeating: 0, count: model.values.count)
        second = first
        rng = SeededGenerator(seed: options.seed ^ 0x5bd1_e995)
    }

    /// One pass over every market's training purchases (each with `negatives` fresh negatives from its split's
    /// negative pool that the user never bought), shuffled; the mean loss.
    public mutating func epoch(_ markets: [MarketData], shouldStop: () -> Bool = { false }) -> Double {
        reach(markets)
        var examples: [(BOPSequence, Bool)] = []
        for data in markets {
            let split = data.split
            let marketID = data.index.map { model.markets[$0] }
            for purchase in split.training {
                let bought = split.bought[purchase.user] ?? []
                examples.append((model.sequence(purchases: purchase.history, candidate: purchase.item, market: marketID), true))
                let pool = split.negativePool
                guard pool.count > bought.count else { continue }
                for _ in 0..<options.negatives {
                    var item = pool[Int(rng.next() % UInt64(pool.count))]
                    while bought.contains(item) { item = pool[Int(rng.next() % UInt64(pool.count))] }
                    examples.append((model.sequence(purchases: purchase.history, candidate: item, market: marketID), false))
                }
            }
        }
        examples.shuffle(using: &rng)
        var total = 0.0, batches = 0
        for start in stride(from: 0, to: examples.count, by: Swift.max(options.batchSize, 1)) where !shouldStop() {
            let batch = Array(examples[start..<Swift.min(start + options.batchSize, examples.count)])
            // Each thread a share of the batch, in its own buffer; the batch's mean loss and gradient weigh each
            // share by its size.
            let network = BOPNetwork<Float>(model), size = model.values.count
            let dropout = options.dropout, seed = rng.next()
            let pool = Mutex(spare)
            spare = []
            let parts = inParallel(batch.count, parts: options.threads) { range -> (Double, [Float], Int) in
                var gradient = pool.withLock { $0.popLast() } ?? [Float](repeating: 0, count: size)
                let part = batch[range]
                let loss = network.loss(part.map(\.0), labels: part.map(\.1), gradient: &gradient, dropout: dropout,
                                        seed: seed ^ UInt64(range.lowerBound))
                return (loss, gradient, range.count)
            }
            // Moved out of `parts`, so that each buffer is uniquely referenced and written in place.
            var loss = 0.0, buffers: [[Float]] = [], counts: [(Double, Int)] = []
            for part in consume parts {
                buffers.append(part.1)
                counts.append((part.0, part.2))
            }
            for (p, (partLoss, count)) in counts.enumerated() {
                loss += partLoss * Double(count) / Double(batch.count)
                let weight = Float(count) / Float(batch.count)
                // The sum goes into the first buffer; the others are zeroed for the next batch as they are read.
                for range in reachable {
                    for i in range {
                        if p == 0 { buffers[0][i] *= weight } else { buffers[0][i] += weight * buffers[p][i]; buffers[p][i] = 0 }
                    }
                }
            }
            total += loss
            if !buffers.isEmpty {
                adam(buffers[0])
                for range in reachable { for i in range { buffers[0][i] = 0 } }
            }
            spare = buffers
            batches += 1
        }
        return batches > 0 ? total / Double(batches) : 0
    }

    /// The ranges of `model.values` that `markets` can reach: their items' embedding rows and every other tensor.
    private mutating func reach(_ markets: [MarketData]) {
        let d = model.config.width, embedding = model.config.itemRows * d
        var rows = Set<Int>()
        // Every example's tokens are items of its market or its negative pool: positives and histories are
        // purchases, negatives drawn from the pool.
        for data in markets { for item in data.split.items + data.split.negativePool { rows.insert(model.itemRow(item)) } }
        var ranges: [Range<Int>] = []
        for row in rows.sorted() {
            if let last = ranges.last, last.upperBound == row * d { ranges[ranges.count - 1] = last.lowerBound..<(row + 1) * d }
            else { ranges.append(row * d..<(row + 1) * d) }
        }
        ranges.append(embedding..<model.values.count)
        reachable = ranges
    }

    private mutating func adam(_ gradient: [Float]) {
        step += 1
        let lr = Float(options.learningRate), l2 = Float(options.l2), beta1: Float = 0.9, beta2: Float = 0.999
        let correction1 = 1 - Foundation.pow(beta1, Float(step)), correction2 = 1 - Foundation.pow(beta2, Float(step))
        for range in reachable {
            for i in range {
                let g = gradient[i] + l2 * model.values[i]
                first[i] = beta1 * first[i] + (1 - beta1) * g
                second[i] = beta2 * second[i] + (1 - beta2) * g * g
                model.values[i] -= lr * (first[i] / correction1) / ((second[i] / correction2).squareRoot() + 1e-8)
            }
        }
    }
}

/// Scores of held-out rankings.
public enum BOPRanking {
    /// The metrics of `model` on `cases` of one market: each held-out item ranked among its negatives.
    public static func evaluate(_ model: BOPModel, _ cases: [RankingCase], market: String?, threads: Int = 1) -> RankingMetrics {
        let network = BOPNetwork<Float>(model)
        let ranks = inParallel(cases.count, parts: threads) { range in
            cases[range].map { c -> Int in
                let candidates = [c.item] + c.negatives
                let scores = network.probabilities(candidates.map { model.sequence(purchases: c.history, candidate: $0, market: market) })
                return RankingMetrics.rank(positive: scores[0], negatives: Array(scores.dropFirst()))
            }
        }
        return RankingMetrics(ranks: ranks.flatMap { $0 })
    }

    /// The popularity baseline: items ranked by their number of training purchases in the market.
    public static func popularity(_ split: MarketSplit, _ cases: [RankingCase]) -> RankingMetrics {
        RankingMetrics(ranks: cases.map { c in
            RankingMetrics.rank(positive: Double(split.popularity[c.item] ?? 0),
                                negatives: c.negatives.map { Double(split.popularity[$0] ?? 0) })
        })
    }

    /// Trains with early stopping on the mean validation NDCG@10 over `markets` (weighted by their cases); returns
    /// the best model (the starting one when no epoch beats it, for a fine-tune) and each epoch's figures.
    public static func train(_ start: BOPModel, _ markets: [MarketData], options: BOPTrainingOptions, evaluateStart: Bool,
                             shouldStop: () -> Bool = { false },
                             progress: (_ epoch: Int, _ loss: Double, _ ndcg10: Double, _ seconds: Double, _ improved: Bool) -> Void)
        -> BOPModel {
        let sampled = markets.map { data -> [RankingCase] in
            let all = data.split.validation
            guard all.count > options.validationUsers else { return all }
            var rng = SeededGenerator(seed: options.seed ^ fnv1a64("validation-\(data.split.market)"))
            return Array(all.shuffled(using: &rng).prefix(options.validationUsers))
        }
        func validation(_ model: BOPModel) -> Double {
            var sum = 0.0, cases = 0
            for (data, sample) in zip(markets, sampled) {
                let metrics = evaluate(model, sample, market: data.index.map { model.markets[$0] }, threads: options.threads)
                sum += metrics.ndcg10 * Double(metrics.cases)
                cases += metrics.cases
            }
            return cases > 0 ? sum / Double(cases) : 0
        }
        var trainer = BOPTrainer(model: start, options: options)
        var best = start, bestScore = evaluateStart ? validation(start) : -1, since = 0
        for epoch in 1...Swift.max(options.maxEpochs, 1) where !shouldStop() {
            let clock = ContinuousClock.now
            let loss = trainer.epoch(markets, shouldStop: shouldStop)
            let score = validation(trainer.model)
            let improved = score > bestScore
            if improved { (best, bestScore, since) = (trainer.model, score, 0) } else { since += 1 }
            progress(epoch, loss, score, (ContinuousClock.now - clock).seconds, improved)
            if since >= options.patience { break }
        }
        return best
    }
}

/// A co-purchase baseline: a candidate scores how many users bought it together with one of the user's items,
/// counted over every market's training purchases (ties by the market's popularity). On XMarket this is about
/// what ACMR's figures are: the signal is the items' co-purchases, across markets.
public struct CoPurchase: Sendable {
    private var counts: [String: [String: Int]] = [:]

    public init(_ markets: [MarketData]) {
        for data in markets {
            var items: [String: Set<String>] = [:]
            for purchase in data.split.training { items[purchase.user, default: []].insert(purchase.item) }
            for bought in items.values {
                for a in bought { for b in bought where a != b { counts[a, default: [:]][b, default: 0] += 1 } }
            }
        }
    }

    public func evaluate(_ split: MarketSplit, _ cases: [RankingCase]) -> RankingMetrics {
        RankingMetrics(ranks: cases.map { c in
            let history = Set(c.history)
            func score(_ item: String) -> Double {
                let together = history.reduce(0) { $0 + (counts[$1]?[item] ?? 0) }
                return Double(together) * 1e9 + Double(split.popularity[item] ?? 0)
            }
            return RankingMetrics.rank(positive: score(c.item), negatives: c.negatives.map(score))
        })
    }
}

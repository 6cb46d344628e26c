import Foundation

/// An item's inputs and its labels, and where it competes (read only by a model with MARKETS.md's `competition`).
public struct TrainingExample: Sendable, Equatable {
    public var item: RawItem
    public var labels: ItemLabels
    public var competition: CompetitionKey?

    public init(item: RawItem, labels: ItemLabels, competition: CompetitionKey? = nil) {
        self.item = item
        self.labels = labels
        self.competition = competition
    }
}

extension TrainingExample {
    /// Where the example competes; one shared group when it was made without a key.
    var key: CompetitionKey { competition ?? .unkeyed }
}

/// How examples form minibatches. Without competition, any `size` of them. With it, an item's loss reads its group
/// and its industry's other markets, so a batch holds whole industries of a promotion (every market), packed
/// together up to `size` items: each item then sees exactly the competitors and neighbours it is served with. An
/// industry larger than `size` is cut into random sub-industries of `size` items (each market's share sampled
/// alike), whose attentions see a sample of the rest: the only way a batch stays bounded.
enum Minibatches {
    static func make(_ examples: [TrainingExample], size: Int, competition: Bool, rng: inout SeededGenerator,
                     shuffle: Bool) -> [[Int]] {
        let size = Swift.max(size, 1)
        var order = Array(examples.indices)
        if shuffle { order.shuffle(using: &rng) }
        guard competition else {
            return stride(from: 0, to: order.count, by: size).map { Array(order[$0..<Swift.min($0 + size, order.count)]) }
        }
        var scopes: [CompetitionKey: [Int]] = [:], first: [CompetitionKey] = []
        for i in order {
            let scope = examples[i].key.industryScope
            if scopes[scope] == nil { first.append(scope) }
            scopes[scope, default: []].append(i)
        }
        var batches: [[Int]] = [], current: [Int] = []
        for scope in first {
            let members = scopes[scope] ?? []
            for start in stride(from: 0, to: members.count, by: size) {
                let part = members[start..<Swift.min(start + size, members.count)]
                if current.count + part.count > size, !current.isEmpty {
                    batches.append(current)
                    current = []
                }
                current += part
            }
        }
        if !current.isEmpty { batches.append(current) }
        return batches
    }
}

/// How `Trainer` runs: Adagrad (the paper's optimiser), minibatches, early stopping on the validation loss.
public struct TrainingOptions: Sendable, Equatable {
    public var loss = LossOptions()
    public var learningRate = 1e-3
    /// Adagrad's denominator guard (PyTorch's default).
    public var epsilon = 1e-10
    public var batchSize = 256
    public var maxEpochs = 20
    /// Stop after this many epochs without a better validation loss; the best weights are kept.
    public var patience = 3
    public var seed: UInt64 = 1
    /// Which parameters the optimiser moves: all (training, or the paper's fine-tuning FT), or the heads only on
    /// frozen representations (the paper's RT).
    public var scope = TrainingScope.all
    /// When set (β in [0, 1)), each epoch's weights enter an exponential moving average `avg ← β·avg + (1−β)·w`
    /// that is validated and kept instead of the raw weights (Polyak averaging; on a small data set it steadies the
    /// result across seeds). Training itself continues from the raw weights.
    public var weightAverage: Double?
    /// The domain discriminators' (`dom.*`) learning rate, as a multiple of `learningRate`: an adversary that lags
    /// far behind `rep` gives the adversarial terms nothing to push against, and from zero Adagrad needs many steps
    /// at the base rate just to learn the markets' shares.
    public var discriminatorRate = 10.0
    /// Tensors the optimiser leaves as they are, whatever the scope (an ablation that pins a part of the model).
    public var frozen: Set<String> = []

    public init() {}
}

public enum TrainingScope: Sendable, Equatable {
    case all
    case headsOnly
    /// MARKETS.md's fine-tune scope `market`: only the parts indexed by this market (`TensorSpec.marketIndexing`),
    /// so that every other market's predictions stay exactly as they were.
    case market(Int)

    /// The elements of `spec` this scope trains, as ranges of the flat parameter buffer (empty: none).
    func trainedRanges(_ spec: TensorSpec, markets: Int) -> [Range<Int>] {
        guard spec.trainable else { return [] }
        switch self {
        case .all: return [spec.range]
        case .headsOnly: return spec.name.hasPrefix("head.") ? [spec.range] : []
        case .market(let m):
            // MARKETS.md: only the parts indexed by market m (the discriminators stay fixed).
            return spec.elements(ofMarket: m, markets: markets)
        }
    }
}

/// One epoch's figures, for progress lines.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var training: LossBreakdown
    public var validation: LossBreakdown
    public var seconds: Double
    public var improved: Bool
}

/// Multi-task training with Adagrad. Deterministic for a given seed and data order.
public struct Trainer {
    public private(set) var parameters: Parameters<Float>
    public let options: TrainingOptions
    private var accumulator: [Float]
    private var gradient: Parameters<Float>
    private var rng: SeededGenerator
    /// The optimiser step `s` and the run's total `S`, for the reversal schedule (MARKETS.md).
    private var step = 0
    private let totalSteps: Int

    /// `totalSteps`: the run's most optimiser steps, `S` of the reversal schedule (MARKETS.md); `train` passes
    /// `maxEpochs` × batches per epoch.
    public init(model: DINOPModel, options: TrainingOptions, totalSteps: Int = 1) {
        self.totalSteps = Swift.max(totalSteps, 1)
        parameters = model.parameters
        self.options = options
        accumulator = Array(repeating: 0, count: model.parameters.values.count)
        gradient = .zeros(model.parameters.layout)
        rng = SeededGenerator(seed: options.seed)
    }

    /// Sets every group's `norm.mean` / `norm.std` to the statistics of `T(raw)` over the examples.
    public static func fitNormalisation(_ parameters: inout Parameters<Float>, to examples: [TrainingExample]) {
        let config = parameters.layout.config
        for group in FeatureGroup.allCases where parameters.layout.spec("\(group.rawValue).norm.mean") != nil {
            let logs = config.log1pNames(group)
            let takesLog = config.names(group).map { logs.contains($0) }
            var sum = [Double](repeating: 0, count: takesLog.count), squares = sum, counts = sum
            func add(_ raw: [Float]) {
                for (i, value) in raw.enumerated() {
                    guard let t = Normaliser<Float>.transformed(value, log1p: takesLog[i]) else { continue }
                    sum[i] += t
                    squares[i] += t * t
                    counts[i] += 1
                }
            }
            for example in examples {
                switch group {
                case .sis: add(example.item.sis)
                case .su: add(example.item.su)
                case .dis: example.item.days.forEach { add($0.dis) }
                case .du: example.item.days.forEach { $0.du.map(add) }
                case .act: example.item.act.map(add)
                }
            }
            let mean = zip(sum, counts).map { $1 > 0 ? $0 / $1 : 0 }
            let std = (0..<mean.count).map { i -> Double in
                guard counts[i] > 1 else { return 1 }
                let variance = Swift.max(squares[i] / counts[i] - mean[i] * mean[i], 0)
                return variance > 1e-12 ? variance.squareRoot() : 1
            }
            parameters["\(group.rawValue).norm.mean"] = ArraySlice(mean.map { Float($0) })
            parameters["\(group.rawValue).norm.std"] = ArraySlice(std.map { Float($0) })
        }
    }

    /// Starts the GMV and best-seller heads at the training set's mean log GMV and best-seller log-odds, so that a
    /// fresh model does not spend its first epochs climbing from 0 to a log GMV of 10 (money scales differ by market).
    public static func fitOutputBiases(_ parameters: inout Parameters<Float>, to examples: [TrainingExample]) {
        let gmv = examples.compactMap(\.labels.gmv)
        if !gmv.isEmpty, parameters.layout.spec("head.gmv.fc2.bias") != nil {
            parameters["head.gmv.fc2.bias"] = [Float(gmv.reduce(0) { $0 + Foundation.log1p($1) } / Double(gmv.count))]
        }
        let best = examples.compactMap(\.labels.bestSeller)
        if !best.isEmpty, parameters.layout.spec("head.bsp.fc2.bias") != nil {
            let rate = min(max(Double(best.filter { $0 }.count) / Double(best.count), 1e-4), 1 - 1e-4)
            parameters["head.bsp.fc2.bias"] = [Float(Foundation.log(rate / (1 - rate)))]
        }
    }

    /// One pass over `examples` in a seeded random order; returns the mean training loss. Ends early, after the
    /// batch in progress, when `shouldStop` says so.
    public mutating func epoch(_ examples: [TrainingExample], shouldStop: () -> Bool = { false }) -> LossBreakdown {
        let competition = parameters.layout.config.has(extension: ModelExtension.competition)
        var total = LossBreakdown(), batches = 0
        for indices in Minibatches.make(examples, size: options.batchSize, competition: competition, rng: &rng, shuffle: true)
            where !shouldStop() {
            let batch = indices.map { examples[$0] }
            // The network and pass hold the parameters' buffer: they end before the update, which would otherwise
            // copy every tensor (embedding tables included) once per batch.
            let (loss, touched) = batchGradient(batch)
            applyAdagrad(touchedRows: touched)
            total.add(loss)
            batches += 1
        }
        return total.averaged(over: batches)
    }

    /// The batch's loss; its gradient in `gradient`, and the embedding rows it touched per `sii_fields` entry.
    private mutating func batchGradient(_ batch: [TrainingExample]) -> (LossBreakdown, [Set<Int>]) {
        let network = Network(parameters)
        let items = batch.map { network.encode($0.item) }
        var pass = BatchPass(network: network, items: items, labels: batch.map(\.labels), keys: batch.map(\.key))
        pass.forward(dropout: options.loss.dropout, rng: &rng)
        var (loss, dOutputs) = pass.loss(options: options.loss)
        var domainOptions = options.loss.domain
        domainOptions.progress = Swift.min(Double(step) / Double(totalSteps), 1)
        step += 1
        let (domain, dRep, dO) = pass.domainTerms(options: domainOptions, into: &gradient)
        if pass.domain != nil { loss.domain = domain }
        pass.backward(dOutputs: dOutputs, options: options.loss, dRepExtra: dRep, dO: dO, into: &gradient)
        let fields = parameters.layout.config.siiFields.count
        return (loss, (0..<fields).map { f in Set(items.map { $0.rows[f] }) }
                    + (0..<fields).map { f in Set(items.compactMap { $0.specRows.isEmpty ? nil : $0.specRows[f] }) })
    }

    /// Adagrad on every trained tensor; an embedding table moves only in the rows the batch touched (the others
    /// have a zero gradient, which would leave them and their accumulators unchanged anyway), so a step costs the
    /// batch's rows rather than whole 100,003-row tables. Clears the gradient it used.
    private mutating func applyAdagrad(touchedRows: [Set<Int>]) {
        let eps = Float(options.epsilon)
        let layout = parameters.layout
        func step(_ range: Range<Int>, rate: Double) {
            let lr = Float(rate)
            for i in range {
                let g = gradient.values[i]
                accumulator[i] += g * g
                parameters.values[i] -= lr * g / (accumulator[i].squareRoot() + eps)
                gradient.values[i] = 0
            }
        }
        var tables: [String: (rows: Set<Int>, width: Int)] = [:]
        let fields = layout.config.siiFields.count
        for (f, field) in layout.config.siiFields.enumerated() {
            tables["sii.emb.\(field)"] = (touchedRows[f], layout.dims.embeddingWidths[f])
            if let da = layout.domainAttention { tables["sii.spec.\(field)"] = (touchedRows[fields + f], da.specWidth) }
        }
        let markets = layout.config.markets.count
        for spec in layout.specs {
            let trained = options.frozen.contains(spec.name) ? [] : options.scope.trainedRanges(spec, markets: markets)
            let rate = options.learningRate * (spec.trainingOnly ? options.discriminatorRate : 1)
            if trained == [spec.range] {
                let ranges = tables[spec.name].map { table in
                    table.rows.map { (spec.offset + $0 * table.width)..<(spec.offset + ($0 + 1) * table.width) }
                } ?? [spec.range]
                for range in ranges { step(range, rate: rate) }
            } else {
                for range in trained { step(range, rate: rate) }
                // What the scope does not train still took a gradient: clear it.
                for i in spec.range { gradient.values[i] = 0 }
            }
        }
    }

    /// The loss of a model on examples, without dropout.
    public static func evaluate(_ parameters: Parameters<Float>, on examples: [TrainingExample],
                                options: LossOptions, batchSize: Int = 512) -> LossBreakdown {
        var noDropout = options
        noDropout.dropout = 0
        noDropout.l2 = 0
        let network = Network(parameters)
        var total = LossBreakdown()
        var rng = SeededGenerator(seed: 0)
        var weights: [Head: Double] = [:]
        let competition = parameters.layout.config.has(extension: ModelExtension.competition)
        for indices in Minibatches.make(examples, size: batchSize, competition: competition, rng: &rng, shuffle: false) {
            let batch = indices.map { examples[$0] }
            var pass = BatchPass(network: network, items: batch.map { network.encode($0.item) },
                                 labels: batch.map(\.labels), keys: batch.map(\.key))
            pass.forward(dropout: 0, rng: &rng)
            let loss = pass.loss(options: noDropout).0
            for (head, value) in loss.perTask {
                let n = Double(loss.labelled[head] ?? 0)
                total.perTask[head, default: 0] += value * n
                weights[head, default: 0] += n
            }
        }
        for (head, n) in weights where n > 0 {
            total.perTask[head]! /= n
            total.labelled[head] = Int(n)
            total.total += (options.taskWeights[head] ?? 1) * total.perTask[head]!
        }
        return total
    }

    /// Trains until `maxEpochs` or early stopping; returns the best model by validation loss.
    public static func train(
        _ model: DINOPModel, training: [TrainingExample], validation: [TrainingExample], options: TrainingOptions,
        fitNormalisation: Bool = true, shouldStop: () -> Bool = { false }, progress: (EpochReport) -> Void = { _ in }
    ) -> DINOPModel {
        var start = model
        if fitNormalisation {
            Self.fitNormalisation(&start.parameters, to: training)
            Self.fitOutputBiases(&start.parameters, to: training)
        }
        // Saturating: epochs and batch sizes come from flags.
        let batches = training.count / Swift.max(options.batchSize, 1) + (training.count % Swift.max(options.batchSize, 1) == 0 ? 0 : 1)
        let (steps, overflow) = Swift.max(options.maxEpochs, 1).multipliedReportingOverflow(by: Swift.max(batches, 1))
        var trainer = Trainer(model: start, options: options, totalSteps: overflow ? Int.max : steps)
        var best = start.parameters
        var bestLoss = evaluate(best, on: validation, options: options.loss).total
        var sinceBest = 0
        var averaged: Parameters<Float>?
        for epoch in 1...Swift.max(options.maxEpochs, 1) {
            let clock = ContinuousClock.now
            if shouldStop() { break }
            let trainingLoss = trainer.epoch(training, shouldStop: shouldStop)
            var candidate = trainer.parameters
            if let beta = options.weightAverage {
                // The first epoch starts the average: the random start is not a point worth keeping.
                averaged?.update(toward: trainer.parameters, keeping: Float(beta))
                candidate = averaged ?? trainer.parameters
                averaged = candidate
            }
            let validationLoss = evaluate(candidate, on: validation, options: options.loss)
            let improved = validationLoss.total < bestLoss
            if improved {
                best = candidate
                bestLoss = validationLoss.total
                sinceBest = 0
            } else {
                sinceBest += 1
            }
            let elapsed = ContinuousClock.now - clock
            progress(EpochReport(epoch: epoch, training: trainingLoss, validation: validationLoss,
                                 seconds: elapsed.seconds,
                                 improved: improved))
            if sinceBest >= options.patience { break }
        }
        var result = start
        result.parameters = best
        return result
    }
}

extension Parameters where T == Float {
    /// `self ← β·self + (1−β)·other`, over tensors that training moves (normalisation statistics are copied).
    mutating func update(toward other: Parameters<Float>, keeping beta: Float) {
        for spec in layout.specs {
            for i in spec.range {
                values[i] = spec.trainable ? beta * values[i] + (1 - beta) * other.values[i] : other.values[i]
            }
        }
    }
}

extension LossBreakdown {
    mutating func add(_ other: LossBreakdown) {
        total += other.total
        if let more = other.domain {
            var sum = domain ?? DomainLosses()
            sum.discriminator += more.discriminator * Double(more.items)
            sum.entropy += more.entropy * Double(more.items)
            sum.spec += more.spec * Double(more.items)
            sum.discriminatorCorrect += more.discriminatorCorrect
            sum.items += more.items
            domain = sum
        }
        for (head, value) in other.perTask { perTask[head, default: 0] += value }
        for (head, value) in other.labelled { labelled[head, default: 0] += value }
    }

    func averaged(over count: Int) -> LossBreakdown {
        guard count > 0 else { return self }
        var out = self
        out.total /= Double(count)
        if var domain = out.domain, domain.items > 0 {
            // Summed per item in `add`: the mean per item.
            domain.discriminator /= Double(domain.items)
            domain.entropy /= Double(domain.items)
            domain.spec /= Double(domain.items)
            out.domain = domain
        }
        for head in out.perTask.keys { out.perTask[head]! /= Double(count) }
        return out
    }
}

extension Duration {
    /// The duration in seconds, for progress lines and rates.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

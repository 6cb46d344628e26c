import ArgumentParser
import DINOP
import Foundation
import PromoEvaluation
import PromoEvents
import PromoFeatures

extension GMVLoss: ExpressibleByArgument {}
extension AdversarialTerm: ExpressibleByArgument {}

/// The config and sizes of a model `promo train` and `promo evaluate` start from.
struct ModelShapeOptions: ParsableArguments {
    @Option(help: "A feature config file (JSON, the weight file's config keys, each optional): sii_fields, features and log1p per group, heads, hidden, attention. Flags override its sizes.")
    var config: String?
    @Option(help: "TUC-GRU hidden size H (default: 64).") var hidden: Int?
    @Option(help: "Attention size A (default: 32).") var attention: Int?
    @Option(help: "Width of the sii / sis / act encoders.") var encoderWidth = 32
    @Option(help: "Hidden width of each head.") var headHidden = 64
    @Option(help: "Rows of each categorical embedding table.") var rows = 100_003

    func validate() throws {
        for (value, flag) in [(hidden ?? 1, "--hidden"), (attention ?? 1, "--attention"), (encoderWidth, "--encoder-width"),
                              (headHidden, "--head-hidden")] {
            try FlagCheck.inRange(value, FlagCheck.layerSize, flag)
        }
        try FlagCheck.inRange(rows, 1...50_000_000, "--rows")
    }

    /// The default config at this command's sizes, the config file applied, then the size flags.
    func modelConfig() throws -> ModelConfig {
        var base = ModelConfig.default
        base.hidden = 64
        base.attention = 32
        var config = try config.map { try loadConfigFile($0, base: base) } ?? base
        if let hidden { config.hidden = hidden }
        if let attention { config.attention = attention }
        return config
    }

    func randomModel(seed: UInt64) throws -> DINOPModel {
        let config = try modelConfig()
        return try DINOPModel.random(config: config, dims: .defaults(for: config, rows: rows, encoderWidth: encoderWidth,
                                                                       headHidden: headHidden), seed: seed)
    }
}

/// `base` with the feature config file at `path` applied; a bad file is a validation error naming it.
func loadConfigFile(_ path: String, base: ModelConfig) throws -> ModelConfig {
    guard let bytes = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the config file \(path)") }
    do {
        return try ConfigFile(bytes: Array(bytes)).applied(to: base)
    } catch {
        throw ValidationError("config file \(path): \(error.description)")
    }
}

/// How `promo train` and `promo evaluate` train.
struct TrainingFlags: ParsableArguments {
    @Option(help: "At most this many epochs; early stopping on the validation loss.") var epochs = 20
    @Option(help: "Adagrad learning rate.") var learningRate = 0.02
    @Option(help: "Items per minibatch.") var batch = 128
    @Option(help: "Epochs without a better validation loss before stopping.") var patience = 3
    @Option(help: "Share of the training items held out for validation (by item id).") var validation = 0.1
    @Option(help: "Dropout on the representation before the heads.") var dropout = 0.1
    @Option(help: "L2 penalty on the weight matrices.") var l2 = 1e-5
    @Option(help: "The GMV head's loss on log1p(GMV): squared (MODEL.md) or absolute (its minimiser is the median GMV, which minimises the GMV MAE).")
    var gmvLoss = GMVLoss.squared
    @Option(help: "Keep an exponential moving average of each epoch's weights with this β in [0, 1) and validate and keep it instead of the raw weights.")
    var average: Double?
    @Option(help: "MARKETS.md domain-attention: the adversarial term that keeps rep market-invariant (none, entropy, reversal).")
    var adversarial = AdversarialTerm.none
    @Option(name: .customLong("lambda-adv"), help: "MARKETS.md λ_adv: the entropy term's weight, or the top of the reversal's DANN schedule.")
    var lambdaAdv = DomainLossOptions().adversarialWeight
    @Option(name: .customLong("lambda-spec"), help: "MARKETS.md λ_spec: the weight of the market discriminator's loss on o.")
    var lambdaSpec = DomainLossOptions().specWeight
    @Option(help: "Seed of initialisation, shuffling and splits.") var seed: UInt64 = 1
    @Option(help: "Days of the pre-sale window; daily events outside it are rejected.") var presaleDays = 20

    func validate() throws {
        try FlagCheck.atLeast(epochs, 1, "--epochs")
        try FlagCheck.finite(learningRate, 1e-12...1e3, "--learning-rate")
        try FlagCheck.atLeast(batch, 1, "--batch")
        try FlagCheck.atLeast(patience, 0, "--patience")
        try FlagCheck.share(validation, "--validation")
        try FlagCheck.share(dropout, "--dropout", zero: true)
        try FlagCheck.finite(l2, 0...1e3, "--l2")
        if let average { try FlagCheck.finite(average, 0...0.999, "--average") }
        try FlagCheck.finite(lambdaAdv, 0...1e3, "--lambda-adv")
        try FlagCheck.finite(lambdaSpec, 0...1e3, "--lambda-spec")
        try FlagCheck.inRange(presaleDays, FlagCheck.presaleDays, "--presale-days")
    }

    var options: TrainingOptions {
        var options = TrainingOptions()
        options.maxEpochs = epochs
        options.learningRate = learningRate
        options.batchSize = batch
        options.patience = patience
        options.seed = seed
        options.loss.dropout = dropout
        options.loss.l2 = l2
        options.loss.gmvLoss = gmvLoss
        options.weightAverage = average
        options.loss.domain.adversarial = adversarial
        options.loss.domain.adversarialWeight = lambdaAdv
        options.loss.domain.specWeight = lambdaSpec
        return options
    }

    var decoder: EventDecoder { EventDecoder(presaleDays: presaleDays) }

    /// Says which of the config's inputs no event supplies, and how many join-activity labels have no activity to
    /// score (Topics/README.md, "Missing values"): both train a model on less than its user thinks.
    func checkInputs(_ config: ModelConfig, _ items: LabelledItems) {
        let missing = FeatureCoverage.unsupplied(config, in: items.records)
        var lines: [String] = []
        for group in FeatureGroup.allCases {
            let names = config.names(group).map { "\(group.rawValue).\($0)" }.filter(missing.contains)
            guard !names.isEmpty else { continue }
            lines.append(names.count == config.count(group) && names.count > 2
                         ? "every \(group.rawValue) feature (\(names.count))" : names.joined(separator: ", "))
        }
        let ids = config.siiFields.filter(missing.contains)
        if !ids.isEmpty { lines.insert("sii_fields " + ids.joined(separator: ", "), at: 0) }
        if !lines.isEmpty {
            report("warning: no event supplies \(lines.joined(separator: "; ")): the model sees them as missing")
        }
        for head in config.headSet {
            let labelled = zip(items.records, items.labels).filter { record, labels in
                labels.isLabelled(for: head, hasActivity: record.activity != nil)
            }.count
            if labelled == 0 {
                report("warning: no training item has a \(head.rawValue) label: that head keeps its initial weights and its predictions mean nothing")
            }
        }
        let orphans = items.records.filter { $0.outcome?.joinedActivity != nil && $0.activity == nil }.count
        if orphans > 0 {
            report("warning: \(orphans) items have joined_activity in their outcome but no activity/1 event; their JA labels are left out")
        }
    }

    /// Training's progress on standard error: a line per epoch with the losses per task, and the status line.
    func progress(_ label: String) -> EpochProgress { EpochProgress(label: label, maxEpochs: epochs) }

    /// Loads event files or folders, reporting rejected lines (the first few in full) and how many there were.
    func load(_ paths: [String], label: String) throws -> LabelledItems {
        var rejected = 0
        let items = try LabelledItems.load(paths, decoder: decoder) { line in
            rejected += 1
            if rejected <= 5 { report("rejected \(line)") }
        }
        report("\(label): \(items.count) items, \(items.labelled.count) with an outcome; \(rejected) lines rejected")
        return items
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a DINOP model (all four tasks) on event files of promotions whose outcomes are known.")

    @Argument(help: "Event files, or folders of .jsonl files (e.g. a generated promotion).") var events: [String]
    @Option(help: "Where to write the trained weight file.") var out: String
    @Option(help: "Start from this weight file instead of a random model (its sizes win).") var model: String?
    @Option(help: "Model version written to the file (default: that of --model, else 1); with --model, its version becomes the parent.")
    var version: Int?
    @OptionGroup var shape: ModelShapeOptions
    @OptionGroup var training: TrainingFlags

    func validate() throws {
        if let version { try FlagCheck.atLeast(version, 1, "--version") }
    }

    func run() throws {
        BLAS.setThreads(1)
        let items = try training.load(events, label: "training data").labelled
        guard items.count >= 10 else { throw ValidationError("only \(items.count) items have an outcome; need at least 10") }
        let start = try model.map(loadModel) ?? shape.randomModel(seed: training.seed)
        training.checkInputs(start.config, items)
        let progress = training.progress("train")
        let trained = try DINOPRun.train(start, items, pipeline: FeaturePipeline(config: start.config),
                                     options: training.options, validationFraction: training.validation,
                                     progress: progress.epoch)
        progress.finish()
        var written = trained
        if let version, version != start.version {
            written.version = version
            written.parent = model == nil ? nil : start.version
        }
        try written.write(to: URL(fileURLWithPath: out))
        print("wrote \(out) (version \(written.version))")
    }
}

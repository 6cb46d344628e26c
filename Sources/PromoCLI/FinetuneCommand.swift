import ArgumentParser
import DINOP
import Foundation
import PromoEvaluation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoModels
import PromoServer
import PromoService

/// How a fine-tune runs and when its candidate may be published.
struct FineTuneFlags: ParsableArguments {
    @Option(help: "ft: the whole network (the paper's FT); rt: the heads only, on frozen representations (RT).")
    var method = FineTuneMethod.ft.rawValue
    @Option(help: "Share of the labelled items (by item id) held out to compare the candidate with the current version.")
    var holdout = 0.2
    @Option(help: "How much worse (relative) any holdout metric of the candidate may be before it is rejected.")
    var margin = 0.01
    @Option(help: "At most this many epochs; early stopping on a validation split of the rest.") var tuneEpochs = 10
    @Option(help: "Adagrad learning rate of the fine-tune.") var tuneLearningRate = 0.01
    @Option(help: "Items per minibatch.") var tuneBatch = 128
    @Option(help: "Seed of shuffling and of the holdout and validation splits.") var tuneSeed: UInt64 = 1
    @Option(help: "Fine-tune on this market's items only (MARKETS.md: pre-train on all markets, fine-tune on the target).")
    var market: String?
    @Option(help: "With --market: all (every tensor, for a deployment serving that market alone) or market (only the market's own tensors: every other market's predictions stay exactly the same).")
    var scope = MarketScope.all.rawValue

    func validate() throws {
        try FlagCheck.share(holdout, "--holdout")
        try FlagCheck.finite(margin, 0...1e6, "--margin")
        try FlagCheck.atLeast(tuneEpochs, 1, "--tune-epochs")
        try FlagCheck.finite(tuneLearningRate, 1e-12...1e3, "--tune-learning-rate")
        try FlagCheck.atLeast(tuneBatch, 1, "--tune-batch")
    }

    func options() throws -> FineTuneOptions {
        guard let method = FineTuneMethod(rawValue: method) else {
            throw ValidationError("--method must be one of \(FineTuneMethod.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var options = FineTuneOptions()
        options.method = method
        options.holdoutFraction = holdout
        options.margin = margin
        options.training.maxEpochs = tuneEpochs
        options.training.learningRate = tuneLearningRate
        options.training.batchSize = tuneBatch
        options.training.seed = tuneSeed
        guard let scope = MarketScope(rawValue: scope) else {
            throw ValidationError("--scope must be one of \(MarketScope.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if market == nil && scope == .market { throw ValidationError("--scope market needs --market") }
        options.market = market
        options.marketScope = scope
        return options
    }
}

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune the current model version on labelled promotions; publish the candidate only when its holdout metrics hold up.",
        discussion: """
            Labels are the outcomes joined with the inputs: of the given event files or folders, or else read from \
            the input and outcome topics. The current version is --model, or else the version the model topic \
            announces. A fine-tuned model is version current + 1 with parent current.
            """)

    @Argument(help: "Event files or promotion folders with outcomes (default: read the topics).") var events: [String] = []
    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Start from this weight file instead of the model topic's current version.") var model: String?
    @Option(help: "Start from this weight file only while the model topic announces no version that verifies (a first deployment: the file the members serve).")
    var fallbackModel: String?
    @OptionGroup var flags: FineTuneFlags
    @Option(help: "Days of the pre-sale window.") var presaleDays = 20

    func validate() throws {
        try FlagCheck.inRange(presaleDays, FlagCheck.presaleDays, "--presale-days")
        if let every { try FlagCheck.seconds(every, "--every", positive: true) }
    }
    @Option(help: "Also write the candidate weight file here (accepted or not).") var out: String?
    @Flag(help: "Publish an accepted candidate on the model topic.") var publish = false
    @Option(help: "Run again every this many seconds (only when new labels arrived) until SIGTERM.") var every: Double?
    @Flag(help: "Fine-tune even when no labels arrived since the served version was tuned.") var force = false

    func run() throws { try kafka.namingBrokers(fineTune) }

    private func fineTune() throws {
        BLAS.setThreads(1)
        let usesKafka = events.isEmpty || model == nil || publish
        let progress = EpochProgress(label: "promo finetune", maxEpochs: flags.tuneEpochs)
        var job = FineTuneJob(kafka: usesKafka ? try kafka.config() : nil, options: try flags.options(),
                              log: { line in
                                  // The job says nothing while it trains: a line means training is over.
                                  progress.finishIfRunning()
                                  progress.reporter.note("promo finetune: \(line)")
                              })
        job.epochProgress = progress.epoch
        job.events = events
        job.baseFile = model
        job.fallbackFile = fallbackModel
        job.presaleDays = presaleDays
        job.out = out
        job.publish = publish
        // SIGTERM/SIGINT abandon a fine-tune in progress (nothing is published) and end the schedule.
        let signals = StopOnSignals(job.stop)
        defer { withExtendedLifetime(signals) {} }
        if let every {
            job.repeatEvery(every)
        } else {
            switch try job.run(onlyIfNew: !force) {
            case .rejected: throw ExitCode(2)
            case .stopped: throw ExitCode(130)
            default: break
            }
        }
    }
}

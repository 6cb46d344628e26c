import ArgumentParser
import DINOP
import Foundation
import PromoEvaluation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoModels
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
        return options
    }
}

/// One fine-tune: the current version, the labelled items, the candidate, the gate, and (when asked and
/// accepted) the candidate on the model topic.
struct FineTuneJob: Sendable {
    var kafka: KafkaConfig?
    var topics = ServiceTopics()
    /// Event files or folders; empty: the topics.
    var events: [String] = []
    var baseFile: String?
    /// Used when the model topic announces no version yet (a member's `--model`).
    var fallbackFile: String?
    var options: FineTuneOptions
    var presaleDays = 20
    var out: String?
    var publish = false
    var log: @Sendable (String) -> Void

    enum Outcome: Equatable {
        case published(Int), accepted(Int), rejected(Int, labelled: Int), skipped
    }

    /// `onlyIfNew`: skip when the current version was tuned on as many labelled items as there are now, or when
    /// a candidate was rejected on `rejectedWith` labelled items (as many as now) before.
    func run(onlyIfNew: Bool = true, rejectedWith: Int? = nil) throws -> Outcome {
        let modelTopic = kafka.map { ModelTopic(kafka: $0, topic: topics.models) }
        var current: DINOPModel
        var announcement: ModelAnnouncement?
        if let baseFile {
            current = try loadModel(baseFile)
        } else {
            guard let modelTopic else { throw ValidationError("give --model, or brokers to read the current version from") }
            let (log, _) = try modelTopic.readLog()
            if let served = try modelTopic.current(log).served {
                (current, announcement) = served
            } else if let fallbackFile {
                current = try loadModel(fallbackFile)
            } else {
                throw ValidationError("the model topic announces no version that verifies: give --model")
            }
        }
        // MODEL.md: a fine-tuned version is its parent's plus one. After a rollback to N that number may be taken;
        // say so before training rather than after.
        if publish, let modelTopic {
            try checkUnpublished(current.version + 1, in: try modelTopic.readLog().log)
        }
        let items: LabelledItems
        if events.isEmpty {
            guard let kafka else { throw ValidationError("give event files, or brokers to read the topics from") }
            // In item order, not in the order the partitions were read: the same topics give the same fine-tune.
            items = LabelledItems(records: try TopicRecords.read(kafka: kafka, topics: topics, presaleDays: presaleDays, log: log)
                .records.sorted { $0.key < $1.key })
        } else {
            var rejected = 0
            items = try LabelledItems.load(events, decoder: EventDecoder(presaleDays: presaleDays)) { _ in rejected += 1 }
            if rejected > 0 { log("\(rejected) event lines rejected") }
        }
        let labelled = items.labelled.count
        if onlyIfNew, let tunedOn = announcement?.metrics["labelled_items"], Int(exactly: tunedOn) == labelled {
            log("no new labels since version \(current.version) (\(labelled) labelled items): nothing to do")
            return .skipped
        }
        if onlyIfNew, rejectedWith == labelled {
            log("no new labels since the last rejected candidate (\(labelled) labelled items): nothing to do")
            return .skipped
        }
        log("fine-tuning version \(current.version) (\(options.method.rawValue.uppercased())) on \(labelled) labelled items")
        let result = try FineTuner.run(current, on: items, options: options) { epoch in
            log(String(format: "epoch %d: train %.4f, validation %.4f%@", epoch.epoch, epoch.training.total,
                       epoch.validation.total, epoch.improved ? " *" : ""))
        }
        log(result.table)
        if let out {
            try result.candidate.write(to: URL(fileURLWithPath: out))
            log("wrote the candidate to \(out)")
        }
        let version = result.candidate.version
        guard result.accepted else {
            log("rejected version \(version): \(result.rejections.joined(separator: "; "))")
            return .rejected(version, labelled: labelled)
        }
        guard publish, let modelTopic else {
            log("accepted version \(version) (not published)")
            return .accepted(version)
        }
        let (log2, _) = try modelTopic.readLog()
        try checkUnpublished(version, in: log2)
        let promotions = Set(items.labelled.records.map(\.key.promotionID)).sorted()
        try modelTopic.publish(ModelPackage(model: result.candidate, metrics: result.metrics,
                                            trainedOn: "\(options.method.rawValue.uppercased()) from version \(current.version) on \(labelled) labelled items of \(promotions.joined(separator: ", "))"))
        log("published version \(version)")
        return .published(version)
    }

    /// Runs every `interval` seconds until `stop`; a failed run is logged and the schedule goes on.
    func repeatEvery(_ interval: Double, until stop: StopSignal) {
        var rejectedWith: Int?
        while !stop.isStopped {
            do {
                if case .rejected(_, let labelled) = try run(rejectedWith: rejectedWith) { rejectedWith = labelled }
            } catch {
                log("fine-tune failed: \(error)")
            }
            let next = Date().addingTimeInterval(interval)
            while !stop.isStopped && Date() < next { Thread.sleep(forTimeInterval: min(0.5, max(0, next.timeIntervalSinceNow))) }
        }
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

    func run() throws {
        BLAS.setThreads(1)
        let usesKafka = events.isEmpty || model == nil || publish
        let job = FineTuneJob(kafka: usesKafka ? try kafka.config() : nil, events: events, baseFile: model,
                              options: try flags.options(), presaleDays: presaleDays, out: out, publish: publish,
                              log: { report("promo finetune: \($0)") })
        if let every {
            let stop = StopSignal()
            let signals = StopOnSignals(stop)
            job.repeatEvery(every, until: stop)
            withExtendedLifetime(signals) {}
        } else if case .rejected = try job.run(onlyIfNew: !force) {
            throw ExitCode(2)
        }
    }
}

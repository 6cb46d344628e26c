import DINOP
import Foundation
import Metrics
import PromoEvaluation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoModels
import PromoService

/// One fine-tune: the current version, the labelled items, the candidate, the gate, and (when asked and
/// accepted) the candidate on the model topic.
public struct FineTuneJob: Sendable {
    public var kafka: KafkaConfig?
    public var topics = ServiceTopics()
    /// Event files or folders; empty: the topics.
    public var events: [String] = []
    public var baseFile: String?
    /// Used when the model topic announces no version yet (a member's `--model`).
    public var fallbackFile: String?
    public var options: FineTuneOptions
    public var presaleDays = 20
    public var out: String?
    public var publish = false
    public var log: @Sendable (String) -> Void
    /// Each epoch's losses, for a progress display; nil: a log line per epoch instead.
    public var epochProgress: (@Sendable (EpochReport) -> Void)?
    /// Asked between minibatches and before publishing: a stop abandons the fine-tune (nothing is published).
    public var stop = StopSignal()

    public init(kafka: KafkaConfig?, options: FineTuneOptions, log: @escaping @Sendable (String) -> Void) {
        self.kafka = kafka
        self.options = options
        self.log = log
    }

    public enum Outcome: Equatable, Sendable {
        case published(Int), accepted(Int), rejected(Int, labelled: Int), skipped, stopped

        var name: String {
            switch self {
            case .published: "published"
            case .accepted: "accepted"
            case .rejected: "rejected"
            case .skipped: "skipped"
            case .stopped: "stopped"
            }
        }
    }

    /// `onlyIfNew`: skip when the current version was tuned on as many labelled items as there are now, or when
    /// a candidate was rejected on `rejectedWith` labelled items (as many as now) before.
    public func run(onlyIfNew: Bool = true, rejectedWith: Int? = nil) throws -> Outcome {
        let modelTopic = kafka.map { ModelTopic(kafka: $0, topic: topics.models) }
        var current: DINOPModel
        var announcement: ModelAnnouncement?
        if let baseFile {
            current = try WeightFile.load(baseFile)
        } else {
            guard let modelTopic else { throw PromoServerError("give --model, or brokers to read the current version from") }
            let (log, _) = try modelTopic.readLog()
            if let served = try modelTopic.current(log).served {
                (current, announcement) = served
            } else if let fallbackFile {
                current = try WeightFile.load(fallbackFile)
            } else {
                throw PromoServerError("the model topic announces no version that verifies: give --model")
            }
        }
        // MODEL.md: a fine-tuned version is its parent's plus one. After a rollback to N that number may be taken;
        // say so before training rather than after.
        if publish, let modelTopic {
            try checkUnpublished(current.version + 1, in: try modelTopic.readLog().log)
        }
        let items: LabelledItems
        if events.isEmpty {
            guard let kafka else { throw PromoServerError("give event files, or brokers to read the topics from") }
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
        let running = Gauge(label: "promo_finetune_running")
        running.record(1)
        defer { running.record(0) }
        let pause = Self.epochPause
        let result = try FineTuner.run(current, on: items, options: options, shouldStop: { stop.isStopped }) { epoch in
            if let pause { stop.wait(upTo: .milliseconds(pause)) }
            if let epochProgress { return epochProgress(epoch) }
            log(String(format: "epoch %d: train %.4f, validation %.4f%@", epoch.epoch, epoch.training.total,
                       epoch.validation.total, epoch.improved ? " *" : ""))
        }
        if stop.isStopped {
            log("stopped: the fine-tune of version \(current.version) was abandoned; nothing written or published")
            return .stopped
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
    public func repeatEvery(_ interval: Double) {
        var rejectedWith: Int?
        while !stop.isStopped {
            do {
                let outcome = try run(rejectedWith: rejectedWith)
                if case .rejected(_, let labelled) = outcome { rejectedWith = labelled }
                Counter(label: "promo_finetunes_total", dimensions: [("outcome", outcome.name)]).increment()
            } catch {
                Counter(label: "promo_finetunes_total", dimensions: [("outcome", "failed")]).increment()
                log("fine-tune failed: \(error)")
            }
            stop.wait(upTo: .milliseconds(Int64(min(interval, 1e9) * 1000)))
        }
    }

    /// A fault hook for tests: each epoch of a fine-tune waits this long (environment
    /// `PROMO_FAULT_FINETUNE_EPOCH_PAUSE_MS`), so that a stop lands inside one.
    static let epochPause = ProcessInfo.processInfo.environment["PROMO_FAULT_FINETUNE_EPOCH_PAUSE_MS"]
        .flatMap(Int64.init).map { min(max($0, 0), 600_000) }
}

public struct PromoServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A version number is used once on the model topic (MODEL.md: a version names one weight file for good).
public func checkUnpublished(_ version: Int, in log: ModelLog) throws {
    if !log.chunkOffsets(of: version).isEmpty || log.announcements.contains(where: { $0.announcement.version == version }) {
        throw PromoServerError("version \(version) is already on the model topic; a version names one weight file for good (fine-tune from the latest version, or promote an existing one)")
    }
}

/// Reading weight files with the path in the error.
public enum WeightFile {
    public static func load(_ path: String) throws -> DINOPModel {
        do {
            return try ModelFile.read(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw PromoServerError("\(path): \(error)")
        }
    }
}

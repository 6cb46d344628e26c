import Foundation
import PromoKafka
import PromoStream

/// The topics a member reads and writes (Topics/topics/).
public struct ServiceTopics: Sendable {
    public var profiles = "promo.item-profiles"
    public var sales = "promo.daily-sales"
    public var buyers = "promo.daily-buyers"
    public var activities = "promo.activities"
    public var outcomes = "promo.outcomes"
    public var predictions = "promo.predictions"
    /// Internal to one application: named after its consumer group (`changelog(group:)`), so that two deployments
    /// on one cluster never restore each other's state.
    public var changelog = changelog(group: "promo-stream")
    public var deadLetter = "promo.dead-letter"
    public var rollups = "promo.rollups"
    public var models = "promo.models"
    /// Users' purchases, keyed by user: the input of the BOP recommendation stream (BOP.md).
    public var purchases = "promo.purchases"
    /// Users' recommended items, keyed by user: the BOP recommendation stream's output.
    public var recommendations = "promo.recommendations"
    /// MARKETS.md `competition` in the stream, internal to one application like the changelog: items' `f` and the
    /// input partitions' day watermarks to the industry stage, keyed by industry; the stage's answers back, keyed by
    /// item.
    public var competitionVectors = competitionVectors(group: "promo-stream")
    public var competitionContexts = competitionContexts(group: "promo-stream")

    public init() {}

    public static func changelog(group: String) -> String { "\(group).state-changelog" }
    public static func competitionVectors(group: String) -> String { "\(group).competition-vectors" }
    public static func competitionContexts(group: String) -> String { "\(group).competition-contexts" }

    /// The co-partitioned, item-keyed inputs a member subscribes to.
    public var inputs: [String] { [profiles, sales, buyers, activities] }

    public func topic(_ kind: OutputKind) -> String {
        switch kind {
        case .prediction: predictions
        case .changelog: changelog
        case .deadLetter: deadLetter
        case .rollup: rollups
        case .recommendation: recommendations
        case .competitionVector: competitionVectors
        case .competitionContext: competitionContexts
        }
    }

    /// The topic an event of this schema id belongs on, for producing event files.
    public func topic(schema: String) -> String? {
        switch schema.split(separator: "/").first {
        case "item_profile": profiles
        case "daily_sales": sales
        case "daily_buyers": buyers
        case "activity": activities
        case "outcome": outcomes
        case "prediction": predictions
        case "purchase": purchases
        case "recommendation": recommendations
        default: nil
        }
    }
}

/// How outputs and offsets become durable.
public enum DeliveryMode: String, Sendable, CaseIterable {
    /// Outputs, changelog records and input offsets commit in one Kafka transaction: a read_committed reader sees
    /// every input's effect exactly once, even across crashes and rebalances.
    case exactlyOnce = "exactly-once"
    /// Idempotent producer, outputs flushed before offsets are committed: nothing is lost, but after a crash the
    /// inputs since the last commit are processed again. Their predictions are published again with the same
    /// sequence numbers (or not at all, when the restored state already had them), so a consumer that keeps the
    /// highest sequence per item is unaffected; dead letters and rollup records may repeat.
    case atLeastOnce = "at-least-once"
}

public struct ServiceOptions: Sendable {
    public var kafka: KafkaConfig
    /// The application: it names the changelog topic (`ServiceTopics.changelog(group:)`) and every changelog
    /// record, and a restore refuses records of another group.
    public var group = "promo-stream" {
        didSet { named() }
    }
    /// Unique within the group and stable across restarts: it names the transactional id.
    public var member: String {
        didSet { named() }
    }
    public var topics = ServiceTopics() {
        didSet { processor.inputTopics = topics.inputs }
    }
    public var mode = DeliveryMode.exactlyOnce
    public var processor = ProcessorOptions()
    /// At most this many input messages per transaction.
    public var maxBatch = 10_000
    /// How long a poll waits for input before the loop checks the grace periods and the stop flag.
    public var pollTimeoutMs: Int32 = 100
    /// How often the member logs its rate and where its time goes (0: never).
    public var statsIntervalSeconds = 10.0
    /// Follow the model topic: serve the latest announced version that verifies, switching between batches.
    /// Off: serve the model given at start only.
    public var followModels = true
    /// Where the member keeps its crash marker (`CrashGuard`), which must outlive the process (a SIGKILL, a
    /// container restart). nil: no guard (benchmarks, tests of other things).
    public var stateDirectory: URL?
    /// How long a member waits for the group to assign its partitions before it joins again with a new consumer,
    /// and how often it does so before it stops with the reason.
    public var assignmentTimeoutSeconds = 120.0
    public var maxRejoins = 3
    /// A restore (on assignment or rewind) that takes longer stops the member with the reason, for its supervisor to
    /// restart it, rather than leaving it restoring forever out of sight.
    public var restoreTimeoutSeconds = 1800.0
    /// The recommendation role: how often the candidate sets are recomputed from the predictions read meanwhile
    /// (the users of a set that changed are then queued for new recommendations).
    public var candidateRefreshSeconds = 5.0
    /// The recommendation role: a group's candidates are taken once none of its predictions arrived for this long
    /// (the item role publishes a day's predictions in a burst as the day closes: its users are then recomputed once,
    /// not at every refresh within the burst); at most `CandidateTable.maxSettles` periods while they keep coming.
    public var candidateSettleSeconds = 30.0

    public init(kafka: KafkaConfig, member: String) {
        self.kafka = kafka
        self.member = member
        named()
        processor.inputTopics = topics.inputs
    }

    /// The industry stage's options beside an item role of these: its own application (consumer group
    /// `<group>.industry`, its changelog and transactional ids named after it), reading and writing the item role's
    /// competition topics.
    public var industryStage: ServiceOptions {
        var stage = self
        stage.group = "\(group).industry"
        stage.topics.competitionVectors = topics.competitionVectors
        stage.topics.competitionContexts = topics.competitionContexts
        stage.followModels = false
        return stage
    }

    private mutating func named() {
        processor.consumer = "\(group)/\(member)"
        processor.application = group
        topics.changelog = ServiceTopics.changelog(group: group)
        topics.competitionVectors = ServiceTopics.competitionVectors(group: group)
        topics.competitionContexts = ServiceTopics.competitionContexts(group: group)
    }
}

import BOP
import DINOP
import Foundation
import PromoEvents
import PromoKafka
import PromoModels
import PromoStream
import Synchronization

/// Set from a signal handler or another thread; the service's loop reads it between batches, and a waiting
/// thread wakes as soon as it is set.
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let condition = NSCondition()
    public init() {}
    public func stop() {
        condition.lock()
        stopped.store(true, ordering: .relaxed)
        condition.broadcast()
        condition.unlock()
    }
    public var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Blocks for `duration`, or until stopped, whichever comes first.
    public func wait(upTo duration: Duration) {
        let deadline = Date().addingTimeInterval(Double(duration.nanoseconds) / 1e9)
        condition.lock()
        while !isStopped && condition.wait(until: deadline) {}
        condition.unlock()
    }
}

/// A consumer-group member: consume a batch → process → publish outputs, changelog records and offsets
/// (one transaction in exactly-once mode) → repeat. It runs one of two roles (`StageProcessor`): the item role,
/// which between batches follows the model topic (an announced version is loaded, verified and swapped in, or
/// refused with the reason in the log), or the recommendation role, which between batches follows
/// `promo.predictions` as its table of candidates. Runs on the calling
/// thread, which it blocks; never call it from a task of the Swift concurrency pool. One thread at a time owns it
/// (hence `@unchecked Sendable`: it may be handed to the thread that runs it).
public final class StreamService: @unchecked Sendable {
    public let options: ServiceOptions
    /// The item role's processing (nil in the recommendation role).
    let processor: ShardedProcessor?
    /// The recommendation role's processing (nil in the other roles).
    let users: UserProcessor?
    /// The industry stage's processing (MARKETS.md `competition`; nil in the other roles).
    let industry: IndustryStage?
    /// The role's processing, whichever it is.
    let stage: any StageProcessor
    /// The topics the role consumes, in the order its changelog records list their positions.
    let inputTopics: [String]
    private var candidateFeed: CandidateFeed?
    private var candidatesRefreshed = ContinuousClock.now
    /// Where the member says what it did (`ServiceEvent`): `promo run` logs each, tests and the benchmark wait on them.
    let events: @Sendable (ServiceEvent) -> Void
    private var consumer: KafkaConsumer!
    private var producer: KafkaProducer!
    public private(set) var processedMessages = 0
    /// What the probes answer (`/health`, `/ready`).
    public let health = ServiceHealth()
    private let metrics = ServiceMetrics()
    /// Called on the service's thread after each batch is durable, with the messages processed so far.
    public var onCommitted: ((Int) -> Void)?
    private var transactionOpen = false
    /// The stop request of `run`, which a long restore also honours.
    private var stopSignal: StopSignal?
    private var needsRewind = false
    private var follower: ModelFollower?
    /// SHA-256 of the weight file being served.
    private var servingDigest: String
    /// An announcement whose chunks could not be read yet (the cluster did not answer): tried again.
    private var pendingAnnouncement: ModelAnnouncement?
    /// When the last switch began, the items it queued, and those it left as they were at once.
    private var swapStarted: (at: ContinuousClock.Instant, items: Int, skippedAtSwap: Int)?
    private var crashGuard: CrashGuard?
    /// Per owned partition, the changelog's committed end: where its last committed `CommitLink` ends.
    private var changelogEnds: [Int32: Int64] = [:]
    /// Names this process's transactions (with the member and a counter), so that a restarted member's differ.
    private let instance = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    private var transactionCount = 0
    /// A fault hook for tests: the process aborts when it is about to process a message whose value contains
    /// these bytes (environment `PROMO_FAULT_CRASH_ON`), as a poison pill that crashes the runtime would.
    private let crashOn = ProcessInfo.processInfo.environment["PROMO_FAULT_CRASH_ON"].map { Array($0.utf8) }
    /// A fault hook for tests: with nothing left over from an earlier crash, the process aborts inside the
    /// transaction of a batch holding these bytes, after its outputs reached the broker and before the commit
    /// (environment `PROMO_FAULT_CRASH_IN_TRANSACTION`).
    private let crashInTransaction = ProcessInfo.processInfo.environment["PROMO_FAULT_CRASH_IN_TRANSACTION"].map { Array($0.utf8) }
    /// A fault hook for tests: each transaction waits this many milliseconds after its records reached the broker
    /// and before it commits (environment `PROMO_FAULT_TRANSACTION_PAUSE_MS`), as over a slow link, so that a kill
    /// from outside lands inside transactions often (the chaos campaign).
    private let transactionPause = ProcessInfo.processInfo.environment["PROMO_FAULT_TRANSACTION_PAUSE_MS"]
        .flatMap(UInt32.init).map { min($0, 60_000) }
    /// A fault hook for tests: each restore takes this many milliseconds longer (environment
    /// `PROMO_FAULT_RESTORE_PAUSE_MS`), as a large changelog would, so that readiness can be seen to wait for it.
    private let restorePause = ProcessInfo.processInfo.environment["PROMO_FAULT_RESTORE_PAUSE_MS"]
        .flatMap(UInt32.init).map { min($0, 60_000) }

    /// A line with nothing to wait for.
    func log(_ message: String) { events(.note(message)) }

    /// The item role: predictions of the items of the input topics, served by `model`.
    public init(model: DINOPModel, options: ServiceOptions, events: @escaping @Sendable (ServiceEvent) -> Void) {
        var options = options
        // With MARKETS.md `competition` the industry stage's answers are an input too, co-partitioned with the events.
        if model.config.has(extension: ModelExtension.competition) {
            options.processor.inputTopics = options.topics.inputs + [options.topics.competitionContexts]
            options.processor.competitionContexts = options.topics.competitionContexts
        }
        self.options = options
        let processor = ShardedProcessor(model: model, options: options.processor)
        self.processor = processor
        (users, industry) = (nil, nil)
        stage = processor
        inputTopics = options.processor.inputTopics
        self.events = events
        servingDigest = sha256Hex(model.safetensors())
    }

    /// The industry stage (MARKETS.md `competition`): the item role's vectors and day watermarks in, each closed
    /// day's contexts out to the items' input partitions. It serves no model: `stage` has the served model's `F`
    /// and cooperation. Its own application: `options.group` names its consumer group, changelog and transactional
    /// ids (`promo run` uses `<group>.industry`), while `options.topics` name the item role's competition topics.
    public init(industry stageOptions: IndustryStageOptions, options: ServiceOptions,
                events: @escaping @Sendable (ServiceEvent) -> Void) {
        var options = options
        options.followModels = false
        self.options = options
        var stageOptions = stageOptions
        stageOptions.consumer = options.processor.consumer
        stageOptions.application = options.group
        stageOptions.vectors = options.topics.competitionVectors
        let industry = IndustryStage(options: stageOptions)
        (processor, users) = (nil, nil)
        self.industry = industry
        stage = industry
        inputTopics = [options.topics.competitionVectors]
        self.events = events
        servingDigest = ""
    }

    /// The recommendation role (BOP.md): users' purchases in, their recommendations out, served by `bop` until the
    /// model topic announces a version with a BOP part (a combined file); item-only versions leave it as it is.
    public init(recommending bop: BOPModel, options: ServiceOptions, recommendations: UserProcessorOptions,
                events: @escaping @Sendable (ServiceEvent) -> Void) {
        self.options = options
        var userOptions = recommendations
        userOptions.consumer = options.processor.consumer
        userOptions.application = options.group
        userOptions.purchases = options.topics.purchases
        let users = UserProcessor(model: bop, options: userOptions)
        (processor, industry) = (nil, nil)
        self.users = users
        stage = users
        inputTopics = [options.topics.purchases]
        self.events = events
        servingDigest = sha256Hex(bop.safetensors())
    }

    public var modelVersion: Int { processor?.model.version ?? users?.recommender.model.version ?? 0 }

    /// Runs until `stop` is set; then finishes the batch in flight, commits, leaves the group and returns.
    public func run(until stop: StopSignal) throws {
        stopSignal = stop
        if let folder = options.stateDirectory {
            let file = folder.appendingPathComponent(options.group).appendingPathComponent("\(options.member).inflight.json")
            do {
                crashGuard = try CrashGuard(file: file, events: events)
            } catch {
                throw ServiceError("cannot keep the crash marker at \(file.path): \(error.localizedDescription) (give --state-dir a writable folder that outlives the process)")
            }
        }
        try ensureChangelog()
        var producerConfig = options.kafka
        producerConfig["partitioner"] = producerConfig["partitioner"] ?? "murmur2_random"
        producerConfig["linger.ms"] = producerConfig["linger.ms"] ?? "5"
        if options.mode == .exactlyOnce {
            producerConfig["transactional.id"] = "\(options.group)-\(options.member)"
        }
        producer = try KafkaProducer(producerConfig)
        if options.mode == .exactlyOnce { try producer.initTransactions() }

        consumer = try makeConsumer()
        if options.followModels {
            let follower = try ModelFollower(ModelTopic(kafka: options.kafka, topic: options.topics.models))
            self.follower = follower
            let (announcements, unreadable) = try follower.catchUp()
            unreadable.forEach { log("model topic: \($0)") }
            // The version the group serves: the latest announced one that verifies (earlier ones only when a
            // later one is refused).
            for announcement in announcements.reversed() where adopt(announcement, atStart: true) { break }
        }
        if let users {
            // Candidates before any user: a recommendation is computed from the table as it stands.
            let feed = try CandidateFeed(kafka: options.kafka, topic: options.topics.predictions)
            candidateFeed = feed
            health.update { $0.waitingFor = "the predictions topic, read to its end" }
            var read = 0
            do {
                read = try feed.catchUp(into: users, until: .now + .seconds(options.restoreTimeoutSeconds), stop: stop)
            } catch is ServiceStopped {
                // Stopped while reading: the loop below does not run, and the member shuts down as after a batch.
            }
            let groups = users.refreshCandidates().count
            if !stop.isStopped {
                log("candidates: read \(read) predictions of \(users.table.itemCount) items (\(feed.unreadable) records that are not valid prediction/1 events skipped); \(groups) promotion-market groups of up to \(users.options.candidates) candidates")
            }
        }
        events(.servingModel(modelVersion))
        metrics.modelVersion.record(modelVersion)
        try consumer.subscribe(inputTopics)
        health.update {
            $0.alive = true
            $0.waitingFor = "the group to assign partitions"
        }
        events(.subscribed(member: options.member, group: options.group, mode: options.mode.rawValue,
                           librdkafka: librdkafkaVersion, instance: instance))
        rebalance = RebalanceWatch(since: .now)

        var failures = 0
        while !stop.isStopped {
            health.beat()
            do {
                try watchRebalance()
                if needsRewind { try rewind() }
                try followModels()
                try followCandidates()
                // A safety net: a message of a partition revoked during the poll belongs to another member now.
                let messages = try consumer.poll(maxMessages: options.maxBatch,
                                                 timeoutMs: stage.pendingCount > 0 ? 0 : options.pollTimeoutMs)
                    .filter { consumer.assignment.contains($0.topicPartition) }
                reportClusterErrors(consumer.takeErrors())
                if let crashGuard, crashGuard.needsIsolation(messages) {
                    // Records that were in flight when the member died: one transaction each, so that the one
                    // that kills it is found, and skipped once it has done so twice.
                    for message in messages { try processAndCommit([message], poison: crashGuard.poisonReason(message)) }
                } else {
                    try processAndCommit(messages)
                }
                updateGauges()
                failures = 0
            } catch is ServiceStopped {
                // A stop during a restore: nothing of the partitions being restored was consumed.
                break
            } catch let error as KafkaError where !error.isFatal {
                // The batch's effects are not durable: forget them and read the inputs again from the committed
                // offsets, once the cluster answers again.
                failures += 1
                events(.batchFailed(failures, error))
                needsRewind = true
                metrics.failedBatches.increment()
                health.update { $0.waitingFor = "the cluster, to rewind after a failed batch" }
                // Not a crash: what was in flight is not suspect.
                do { try crashGuard?.end() } catch { log("crash marker: \(error)") }
                Thread.sleep(forTimeInterval: min(0.1 * Double(failures), 2))
            }
        }
        health.update { $0.waitingFor = "nothing: stopping" }
        events(.stopping())
        follower?.close()
        candidateFeed?.close()
        try consumer.close()
        if options.mode == .atLeastOnce { try producer.flush() }
        events(.stopped(messages: processedMessages))
        health.update { $0.alive = false }
    }

    /// Makes the group consumer: partitions are restored on assignment and forgotten on revocation.
    private func makeConsumer() throws -> KafkaConsumer {
        var config = options.kafka
        config["group.id"] = options.group
        config["client.id"] = options.member
        // Co-partitioned inputs: the range assignor gives partition p of every input topic to the same member.
        config["partition.assignment.strategy"] = "range"
        config["isolation.level"] = "read_committed"
        config["auto.offset.reset"] = config["auto.offset.reset"] ?? "earliest"
        config["queued.max.messages.kbytes"] = config["queued.max.messages.kbytes"] ?? "65536"
        return try KafkaConsumer(config, handlers: .init(
            assigned: { [unowned self] partitions in
                rebalance = nil
                metrics.rebalance("assigned")
                let numbers = Set(partitions.map(\.partition)).sorted()
                health.update {
                    $0.assigned = numbers
                    $0.restored = []
                    $0.waitingFor = "restoring partitions \(numbers)"
                }
                // Consumption starts exactly where the restored state ends.
                let committed = try restoreState(Set(numbers)).committed.filter { $0.value >= 0 }
                health.update {
                    $0.restored = numbers
                    $0.waitingFor = ""
                }
                return committed
            },
            revoked: { [unowned self] partitions in
                // Every batch is committed before the next poll, so nothing of these partitions is in flight.
                let numbers = Set(partitions.map(\.partition))
                stage.forget(partitions: numbers)
                metrics.rebalance("revoked")
                for tp in partitions { metrics.lag(0, of: tp) }
                health.update {
                    $0.assigned.removeAll(where: numbers.contains)
                    $0.restored.removeAll(where: numbers.contains)
                    $0.waitingFor = "the group to assign partitions"
                }
                events(.revoked(numbers))
                rebalance = RebalanceWatch(since: .now)
            }))
    }

    /// A rebalance in progress: since when the member waits for its assignment (an empty one ends it too).
    struct RebalanceWatch {
        var since: ContinuousClock.Instant
        var lastReport: ContinuousClock.Instant?
        var rejoins = 0
    }
    private var rebalance: RebalanceWatch?

    /// A member that waits for its assignment says so every 10 s (or half the timeout); after `assignmentTimeoutSeconds` it leaves and
    /// joins the group again with a new consumer, and after `maxRejoins` such attempts it stops with the reason,
    /// for its supervisor to restart it (a coordinator that never completes the rebalance, seen on the local
    /// broker after unclean restarts).
    private func watchRebalance() throws {
        guard var watch = rebalance else { return }
        let waited = (ContinuousClock.now - watch.since).seconds
        let every = min(10, options.assignmentTimeoutSeconds / 2)
        if watch.lastReport.map({ (ContinuousClock.now - $0).seconds >= every }) ?? (waited >= every) {
            events(.waitingForAssignment(seconds: waited, group: options.group, rejoinAfter: options.assignmentTimeoutSeconds))
            watch.lastReport = .now
        }
        if waited >= options.assignmentTimeoutSeconds {
            guard watch.rejoins < options.maxRejoins else {
                consumer.abandon()
                let reason = String(format: "no partitions assigned by group %@ after %d rejoins of %.0f s each: its coordinator does not complete the rebalance; stopping for the supervisor to restart the member",
                                    options.group, watch.rejoins, options.assignmentTimeoutSeconds)
                events(.gaveUpWaiting(rejoins: watch.rejoins, reason: reason))
                throw ServiceError(reason)
            }
            events(.rejoining(after: Int(waited), group: options.group, attempt: watch.rejoins + 1, of: options.maxRejoins))
            // Not `close`: leaving waits on the coordinator that is stuck.
            consumer.abandon()
            consumer = try makeConsumer()
            try consumer.subscribe(inputTopics)
            watch = RebalanceWatch(since: .now, lastReport: nil, rejoins: watch.rejoins + 1)
        }
        rebalance = watch
    }

    /// The application's changelog topic (`<group>.state-changelog`) exists with one partition per input partition:
    /// created when missing, as Kafka Streams creates its internal topics (compacted; the cluster's default
    /// replication), so that a new `--group` is a new application with a state of its own.
    private func ensureChangelog() throws {
        var config = options.kafka
        config["allow.auto.create.topics"] = "false"
        let admin = try KafkaAdmin(config)
        // The stage's input is the item role's topic: say so before anything names its own group.
        if industry != nil { try checkCompetitionTopics(admin, inputs: 0) }
        let first = inputTopics.first ?? options.topics.profiles
        guard let inputs = try admin.partitionCount(first) else {
            throw ServiceError("input topic \(first) does not exist: create the topics with `promo topics --group \(options.group)`")
        }
        if users != nil, try admin.partitionCount(options.topics.recommendations) == nil {
            throw ServiceError("output topic \(options.topics.recommendations) does not exist: create the topics with `promo topics --group \(options.group)`")
        }
        if processor != nil { try checkCompetitionTopics(admin, inputs: inputs) }
        // Rollup records go to the partition of the inputs they sum.
        if processor != nil, let rollups = try admin.partitionCount(options.topics.rollups), rollups < inputs {
            throw ServiceError("rollup topic \(options.topics.rollups) has \(rollups) partitions, the input topics \(inputs): the sums of input partition p go to rollup partition p")
        }
        let changelog = options.topics.changelog
        if let count = try admin.partitionCount(changelog) {
            guard count == inputs else {
                throw ServiceError("changelog topic \(changelog) has \(count) partitions, the input topics \(inputs): the state of input partition p lives in changelog partition p")
            }
            return
        }
        try admin.createTopics([TopicSpec(name: changelog, partitions: inputs, replicationFactor: -1,
                                          config: ["cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"])])
        events(.createdChangelog(changelog, partitions: inputs, group: options.group))
    }

    /// MARKETS.md `competition`: the item role's answers topic is co-partitioned with its inputs (a context goes to
    /// its item's partition); the repartition topic's partitions are where the watermarks go.
    private func checkCompetitionTopics(_ admin: KafkaAdmin, inputs: Int) throws {
        let vectors = options.topics.competitionVectors, contexts = options.topics.competitionContexts
        let competes = industry != nil || options.processor.inputTopics.contains(contexts)
        guard competes else { return }
        let application = industry == nil ? options.group : "the item role's"
        guard let stagePartitions = try admin.partitionCount(vectors), let contextPartitions = try admin.partitionCount(contexts) else {
            throw ServiceError("competition topics \(vectors) and \(contexts) must exist: create them with `promo topics --group <the item role's group>` (\(application))")
        }
        if let processor {
            guard contextPartitions == inputs else {
                throw ServiceError("competition context topic \(contexts) has \(contextPartitions) partitions, the input topics \(inputs): an item's context goes to its input partition")
            }
            processor.setCompetitionPartitions(input: Int32(clamping: inputs), stage: Int32(clamping: stagePartitions))
        }
    }

    /// The recommendation role: predictions that arrived since the last batch go into the candidate table; every
    /// `candidateRefreshSeconds` the candidate sets whose predictions have settled (`candidateSettleSeconds`) are
    /// recomputed, and the users of each one that changed queued.
    private func followCandidates() throws {
        guard let users, let candidateFeed else { return }
        _ = try candidateFeed.poll(into: users)
        reportClusterErrors(candidateFeed.takeErrors())
        guard (ContinuousClock.now - candidatesRefreshed).seconds >= options.candidateRefreshSeconds else { return }
        candidatesRefreshed = .now
        let settle = options.candidateSettleSeconds.isFinite ? min(max(options.candidateSettleSeconds, 0), 86_400) : 0
        let changed = users.refreshCandidates(nowMs: monotonicMs(), settleMs: Int64(settle * 1000))
        if !changed.isEmpty {
            log("candidates changed in \(changed.count) promotion-market groups; \(users.pendingCount) recommendations to recompute")
        }
    }

    /// Applies what arrived on the model topic since the last batch, in order.
    private func followModels() throws {
        guard let follower else { return }
        let (announcements, unreadable) = try follower.poll()
        unreadable.forEach { log("model topic: \($0)") }
        if let pending = pendingAnnouncement, announcements.isEmpty {
            pendingAnnouncement = nil
            _ = adopt(pending)
        }
        for announcement in announcements {
            pendingAnnouncement = nil
            _ = adopt(announcement)
        }
        if let started = swapStarted, stage.pendingCount == 0 {
            events(.recomputed(items: started.items + started.skippedAtSwap,
                               skipped: processor?.skippedRecomputes ?? 0, version: modelVersion,
                               seconds: (ContinuousClock.now - started.at).seconds))
            swapStarted = nil
        }
    }

    /// Loads, verifies and swaps in an announced version; returns whether it is served now. A refused version is
    /// logged with the reason and the member goes on serving the version it has.
    private func adopt(_ announcement: ModelAnnouncement, atStart: Bool = false) -> Bool {
        if let users, let follower { return adoptRecommender(announcement, from: follower, users: users, atStart: atStart) }
        guard let processor, let follower else { return false }
        let serving = processor.model.version
        if let served = sameVersion(announcement, serving: serving, atStart: atStart) { return served }
        do {
            let model = try follower.topic.load(announcement, log: follower.log)
            try processor.swap(to: model)
            switched(to: announcement, from: serving, queued: processor.staleCount, pending: processor.staleCount,
                     skipped: processor.skippedRecomputes, what: "items")
            return true
        } catch {
            adoptionFailed(announcement, error, serving: serving)
            return false
        }
    }

    /// The recommendation role's `adopt`: the BOP part of an announced version (a combined file). A version without
    /// one is passed over (the item role's alone); one whose BOP part cannot serve is refused with the reason.
    private func adoptRecommender(_ announcement: ModelAnnouncement, from follower: ModelFollower, users: UserProcessor,
                                  atStart: Bool) -> Bool {
        let version = announcement.version, serving = modelVersion
        do {
            let file = try follower.topic.loadFile(announcement, log: follower.log)
            let item: DINOPModel
            do { item = try ModelFile.read(file) } catch { throw ModelPackageError.notAModel(version: version, "\(error)") }
            guard item.config.has(extension: ModelExtension.bop) else {
                log("model topic: version \(version) has no BOP part (an item model alone); serving version \(serving)")
                return false
            }
            let bop = try BOPModel(safetensors: file)
            guard bop.version == version else { throw ModelPackageError.versionMismatch(announced: version, file: bop.version) }
            if let problem = Recommender.servingProblem(bop) { throw ServiceError(problem) }
            // Only once the version is known to carry a BOP part: an item-only version of the same number is not ours.
            if let served = sameVersion(announcement, serving: serving, atStart: atStart) { return served }
            let queued = users.swap(to: bop)
            switched(to: announcement, from: serving, queued: queued ? users.pendingCount : 0, pending: users.pendingCount, skipped: 0,
                     what: "recommendations")
            return true
        } catch {
            adoptionFailed(announcement, error, serving: serving)
            return false
        }
    }

    /// An announcement of the version being served: true when it is the same file, false (refused) when it is
    /// another, nil when the version is another one. Items and users are known to be up to date by the version that
    /// computed them: other weights under the same number would mix two models under one name. Only before the
    /// first batch (the --model file is not what the group serves) may the member take them.
    private func sameVersion(_ announcement: ModelAnnouncement, serving: Int, atStart: Bool) -> Bool? {
        let version = announcement.version
        guard version == serving else { return nil }
        if announcement.sha256 == servingDigest { return true }
        guard atStart else {
            metrics.refusals.increment()
            events(.refusedModel(version, reason: "its SHA-256 \(announcement.sha256.prefix(12))… differs from the version \(version) being served (\(servingDigest.prefix(12))…)", serving: version))
            return false
        }
        return nil
    }

    /// The bookkeeping of a swap: the digest served, the background recomputation's start (`pending` to go),
    /// metrics and the event (`queued` by the swap).
    private func switched(to announcement: ModelAnnouncement, from previous: Int, queued: Int, pending: Int, skipped: Int,
                          what: String) {
        servingDigest = announcement.sha256
        swapStarted = (ContinuousClock.now, pending, skipped)
        metrics.swaps.increment()
        metrics.modelVersion.record(announcement.version)
        events(.switchedModel(from: previous, to: announcement.version, parent: announcement.parent, sha256: announcement.sha256,
                              recompute: queued, what: what))
    }

    /// A version that could not be adopted: read again later when the cluster did not answer, refused otherwise.
    private func adoptionFailed(_ announcement: ModelAnnouncement, _ error: any Error, serving: Int) {
        if let kafka = error as? KafkaError, !kafka.isFatal {
            events(.modelUnreadable(announcement.version, kafka))
            pendingAnnouncement = announcement
        } else {
            metrics.refusals.increment()
            events(.refusedModel(announcement.version, reason: "\(error)", serving: serving))
        }
    }

    /// Where the loop's time goes, logged every `statsInterval` seconds.
    private var stats = LoopStats()

    /// `poison`: the one message is not processed but dead-lettered with this reason (`CrashGuard`).
    private func processAndCommit(_ messages: [KafkaMessage], poison: String? = nil) throws {
        let clock = ContinuousClock()
        let started = clock.now
        defer {
            stats.report(every: options.statsIntervalSeconds, { [events] in events(.stats($0)) }, idle: heartbeat)
        }
        let inputs = messages.map {
            InputMessage(topic: $0.topic, partition: $0.partition, offset: $0.offset, key: $0.key, value: $0.value)
        }
        // The marker protects; it does not gate: a full disk is logged and processing goes on without it.
        do { try crashGuard?.begin(messages) } catch { log("crash marker: \(error); processing goes on without it") }
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let outputs: [OutputRecord]
        if let poison, let message = inputs.first {
            events(.poisonPill(topic: message.topic, partition: message.partition, offset: message.offset, reason: poison))
            outputs = [stage.skip(message, reason: poison, nowMs: nowMs)]
        } else {
            if let crashOn, messages.contains(where: { $0.value.contains(crashOn) }) { abort() }
            outputs = stage.process(inputs, nowMs: nowMs)
        }
        guard !messages.isEmpty || !outputs.isEmpty else { return }
        let processed = clock.now
        metrics.processing.recordNanoseconds((processed - started).nanoseconds)
        var offsets: [TopicPartition: Int64] = [:]
        for m in messages { offsets[m.topicPartition] = max(offsets[m.topicPartition] ?? 0, m.offset + 1) }
        transactionCount += 1
        let transaction = Array("\(options.processor.consumer)/\(instance)/\(transactionCount)".utf8)
        let touched = Set(messages.map(\.partition)).union(outputs.map(\.statePartition))

        switch options.mode {
        case .exactlyOnce:
            try producer.beginTransaction()
            transactionOpen = true
            try publish(outputs, links: touched, transaction: transaction)
            if let crashInTransaction, crashGuard?.isClean ?? true, messages.contains(where: { $0.value.contains(crashInTransaction) }) {
                try producer.flush()
                abort()
            }
            let ends = try linkEnds(touched)
            if let closed = industry?.lastClosed, !closed.isEmpty { events(.closingDays(closed)) }
            if let transactionPause { usleep(transactionPause * 1000) }
            let published = clock.now
            try producer.sendOffsets(offsets.merging(ends) { $1 }, consumer: consumer)
            let offsetsSent = clock.now
            try producer.commitTransaction()
            transactionOpen = false
            changelogEnds.merge(ends.map { ($0.key.partition, $0.value) }) { $1 }
            stats.transactions(publish: published - processed, offsets: offsetsSent - published, commit: clock.now - offsetsSent)
            metrics.transactionPhase("produce", published - processed)
            metrics.transactionPhase("send_offsets", offsetsSent - published)
            metrics.transactionPhase("commit", clock.now - offsetsSent)
        case .atLeastOnce:
            try publish(outputs, links: touched, transaction: transaction)
            let ends = try linkEnds(touched)
            if let closed = industry?.lastClosed, !closed.isEmpty { events(.closingDays(closed)) }
            try consumer.commit(offsets.merging(ends) { $1 })
            changelogEnds.merge(ends.map { ($0.key.partition, $0.value) }) { $1 }
        }
        do { try crashGuard?.end(committed: offsets) } catch { log("crash marker: \(error)") }
        if let closed = industry?.lastClosed, !closed.isEmpty { metrics.daysClosed.increment(by: closed.count) }
        processedMessages += messages.count
        stats.add(messages: messages.count, outputs: outputs.count, process: processed - started,
                  commit: clock.now - processed)
        let committedMs = Int64(Date().timeIntervalSince1970 * 1000)
        for m in messages {
            guard let written = m.timestamp else { continue }
            stats.latency.add(milliseconds: committedMs - written)
            metrics.eventToCommit.recordMilliseconds(max(committedMs - written, 0))
        }
        record(messages, outputs)
        onCommitted?(processedMessages)
    }

    /// Errors librdkafka retries by itself (an unreachable broker, failed fetches): counted always, reported as an
    /// event at most every 5 s, so that an outage is visible while the member waits it out.
    private var clusterErrorsReported: ContinuousClock.Instant?
    private var clusterErrorsSince = 0
    private func reportClusterErrors(_ errors: [KafkaError]) {
        guard !errors.isEmpty else { return }
        metrics.clusterErrors.increment(by: errors.count)
        clusterErrorsSince += errors.count
        let now = ContinuousClock.now
        if let last = clusterErrorsReported, (now - last).seconds < 5 { return }
        clusterErrorsReported = now
        events(.clusterErrors(count: clusterErrorsSince, latest: errors[errors.count - 1]))
        clusterErrorsSince = 0
    }

    /// Dead letters committed since the member started.
    private var deadLettersCommitted = 0

    /// An interval without a batch: say so, with the lag, the dead letters so far and what the member waits for.
    private func heartbeat(seconds: Double) {
        let lags = consumer.lag()
        let waiting = health.snapshot.waitingFor
        events(.heartbeat(seconds: seconds, lag: lags.values.reduce(0, +), partitions: lags.count,
                          deadLetters: deadLettersCommitted, waitingFor: waiting.isEmpty ? "input" : waiting))
    }

    /// Counts a committed batch: inputs per topic, outputs per kind, dead letters per cause.
    private func record(_ messages: [KafkaMessage], _ outputs: [OutputRecord]) {
        if !messages.isEmpty { metrics.batchMessages.record(messages.count) }
        var perTopic: [String: Int] = [:]
        for m in messages { perTopic[m.topic, default: 0] += 1 }
        for (topic, count) in perTopic { metrics.inputs(count, topic: topic) }
        var kinds: [OutputKind: Int] = [:]
        for record in outputs {
            kinds[record.kind, default: 0] += 1
            if let cause = record.deadLetterCause {
                metrics.deadLetter(cause: cause.rawValue)
                deadLettersCommitted += 1
            }
        }
        for (kind, count) in kinds {
            let name = switch kind {
            case .prediction: "prediction"
            case .changelog: "changelog"
            case .deadLetter: "dead_letter"
            case .rollup: "rollup"
            case .recommendation: "recommendation"
            case .competitionVector: "competition_vector"
            case .competitionContext: "competition_context"
            }
            metrics.outputs(count, kind: name)
        }
    }

    /// Gauges that are read rather than counted: lag per owned partition (from the watermarks librdkafka keeps from
    /// its fetches, no request), the state's sizes, the recompute backlog. Every `statsIntervalSeconds`, and cheap.
    /// (The model version is recorded where it changes: at start and at each switch.)
    private var gaugesUpdated: ContinuousClock.Instant?
    private func updateGauges() {
        let now = ContinuousClock.now
        if let last = gaugesUpdated, (now - last).seconds < min(options.statsIntervalSeconds, 5) { return }
        gaugesUpdated = now
        for (tp, lag) in consumer.lag() { metrics.lag(lag, of: tp) }
        if let processor {
            metrics.state(processor)
            metrics.unpublishedContexts.record(processor.staleContexts + processor.repeatedContexts)
        }
        if let industry { metrics.lateVectors.record(industry.lateVectors) }
    }

    /// The outputs, each with the transaction's id in a header, then a `CommitLink` to each touched changelog
    /// partition, last in it.
    private func publish(_ outputs: [OutputRecord], links touched: Set<Int32>, transaction: [UInt8]) throws {
        let header = (name: CommitLink.header, value: transaction)
        for record in outputs {
            try producer.produce(topic: options.topics.topic(record.kind), partition: record.partition,
                                 key: record.key, value: record.value, header: header)
        }
        for p in touched.sorted() {
            let link = CommitLink(application: options.group, transaction: transaction, previous: changelogEnds[p] ?? -1)
            try producer.produce(topic: options.topics.changelog, partition: p, key: CommitLink.key, value: link.encoded(),
                                 header: header, tracked: true)
        }
    }

    /// Waits for the batch's records to land; the changelog offsets to commit (each link's offset + 1).
    private func linkEnds(_ touched: Set<Int32>) throws -> [TopicPartition: Int64] {
        try producer.flush()
        let delivered = producer.takeDelivered()
        var ends: [TopicPartition: Int64] = [:]
        for p in touched {
            let tp = TopicPartition(options.topics.changelog, p)
            guard let offset = delivered[tp] else { throw ServiceError("no delivery report for the commit link to \(tp)") }
            ends[tp] = offset + 1
        }
        return ends
    }

    /// After a failed batch the in-memory state is ahead of what was committed: abort the transaction, drop the
    /// state of every owned partition, restore it from the changelog and consume again from the committed offsets.
    private func rewind() throws {
        if transactionOpen {
            try producer.abortTransaction()
            transactionOpen = false
        }
        let owned = consumer.assignment
        let committed = try restoreState(Set(owned.map(\.partition))).committed.filter { owned.contains($0.key) }
        try consumer.seek(committed.mapValues { $0 < 0 ? KafkaOffset.beginning : $0 })
        needsRewind = false
        health.update { $0.waitingFor = "" }
        events(.rewound(owned.count))
    }

    /// Rebuilds the state of these input partitions from their changelog partitions; returns how many records it
    /// read. Runs on assignment; public for the benchmark.
    ///
    /// Committed records only, without trusting the broker to hide aborted ones (the local broker does not): each
    /// record carries the input positions its batch committed with, and one beyond the group's committed offsets
    /// is skipped. So is a record of another application, or one that does not fit the model.
    @discardableResult
    public func restore(_ partitions: Set<Int32>) throws -> Int { try restoreState(partitions).records }

    /// `restore`, also returning the committed input offsets the state was restored against.
    func restoreState(_ partitions: Set<Int32>) throws -> (records: Int, committed: [TopicPartition: Int64]) {
        guard !partitions.isEmpty else { return (0, [:]) }
        let started = Date()
        let deadline = ContinuousClock.now + .seconds(options.restoreTimeoutSeconds)
        /// A stop request or the deadline ends a restore between two polls of the changelog.
        func checkRestore() throws {
            if stopSignal?.isStopped == true { throw ServiceStopped() }
            guard ContinuousClock.now < deadline else {
                events(.restoreTimedOut(partitions, seconds: options.restoreTimeoutSeconds))
                throw ServiceError(String(format: "restoring partitions %@ took longer than %.0f s (--restore-timeout): stopping for the supervisor to restart the member",
                                          partitions.sorted().description, options.restoreTimeoutSeconds))
            }
        }
        if let restorePause {
            // As a slow changelog would: the stop request and the deadline end it early.
            let pause = min(Duration.milliseconds(Int64(restorePause)), deadline - ContinuousClock.now)
            if let stopSignal { stopSignal.wait(upTo: pause) } else { usleep(restorePause * 1000) }
        }
        try checkRestore()
        let inputs = inputTopics
        // Outside `run` (the benchmark restores records that carry no positions) there is no group to ask.
        let changelogs = partitions.map { TopicPartition(options.topics.changelog, $0) }
        let committed = consumer == nil ? [:]
            : try consumer.committed(partitions.flatMap { p in inputs.map { TopicPartition($0, p) } } + changelogs)
        var config = options.kafka
        config["enable.partition.eof"] = "true"
        // Every record, to the high watermark: the commit links judge them. Read committed, a broker that keeps an
        // abandoned transaction open (the local one has no transaction timeout) would stop the read at its start.
        config["isolation.level"] = "read_uncommitted"
        let reader = try KafkaConsumer(config)
        // Where a transaction is open on a changelog partition, its last stable offset (what a read_committed
        // client is told is the end) lies below the high watermark, at the open transaction's first record.
        var stableConfig = config
        stableConfig["isolation.level"] = "read_committed"
        let stableView = try KafkaConsumer(stableConfig)
        var starts: [TopicPartition: Int64] = [:], openAt: [Int32: Int64] = [:]
        var total = 0
        for tp in changelogs {
            let (low, high) = try reader.watermarks(tp)
            if high > low { starts[tp] = KafkaOffset.beginning }
            total += Int(clamping: max(high - low, 0))
            let stable = try stableView.watermarks(tp).high
            if stable < high { openAt[tp.partition] = stable }
        }
        try stableView.close()
        // Whether a record committed is known only once its partition's links have all been read: records wait.
        var records: [Int32: [KafkaMessage]] = [:]
        var links: [Int32: [Int64: CommitLink]] = [:]
        var count = 0, skipped = RestoreSkips()
        var reported = ContinuousClock.now
        try reader.readToEnd(from: starts) { messages in
            try checkRestore()
            health.beat()  // a long restore is progress, not a stuck loop
            if options.statsIntervalSeconds > 0, reported.duration(to: .now) >= .seconds(options.statsIntervalSeconds) {
                reported = .now
                events(.restoring(partitions, read: count, total: total, seconds: Date().timeIntervalSince(started)))
            }
            for m in messages {
                count += 1
                if CommitLink.isLink(m.value) {
                    if let link = CommitLink.decode(m.value), link.application == options.group {
                        links[m.partition, default: [:]][m.offset] = link
                    }
                } else {
                    records[m.partition, default: []].append(m)
                }
            }
        }
        var unfinished = Set<String>()
        for p in partitions {
            let tp = TopicPartition(options.topics.changelog, p)
            changelogEnds[p] = max(committed[tp] ?? -1, -1)
            let chain = CommitChain(end: consumer == nil ? nil : changelogEnds[p], links: links[p] ?? [:])
            stage.startRestore(partition: p, committed: inputs.map { max(committed[TopicPartition($0, p)] ?? 0, 0) })
            if let open = openAt[p] {
                let id = records[p]?.first { $0.offset == open }?.header(CommitLink.header) ?? links[p]?[open]?.transaction
                if let member = id.flatMap(writer(of:)) { unfinished.insert(member) }
            }
            for m in records[p] ?? [] {
                if chain.verdict(offset: m.offset, transaction: m.header(CommitLink.header)) == false {
                    skipped.uncommitted += 1
                    continue
                }
                do {
                    try stage.restore(partition: m.partition, value: m.value)
                } catch let error as RestoreError {
                    skipped.add(error, at: "\(m.topicPartition) offset \(m.offset)", log)
                } catch {
                    skipped.unreadable += 1
                    log("changelog \(m.topicPartition) offset \(m.offset) skipped: \(error)")
                }
            }
        }
        try reader.close()
        for p in partitions { stage.finishRestore(partition: p) }
        fence(unfinished.subtracting([options.member]))
        let seconds = Date().timeIntervalSince(started)
        metrics.restores.increment()
        metrics.restoredRecords.increment(by: count)
        metrics.restoreDuration.recordNanoseconds(Int64(seconds * 1e9))
        events(.assigned(partitions, records: count, items: stage.stateCount, seconds: seconds, skipped: skipped))
        do { try crashGuard?.forget(below: committed) } catch { log("crash marker: \(error)") }
        return (count, committed)
    }

    public var itemCount: Int { stage.stateCount }

    /// The member of this group that ran a transaction (its `promo-txn` id: `<group>/<member>/…`).
    private func writer(of transaction: [UInt8]) -> String? {
        let parts = String(decoding: transaction, as: UTF8.self).split(separator: "/")
        return parts.count == 4 && parts[0] == options.group ? String(parts[1]) : nil
    }

    /// Ends the open transactions of other members on changelog partitions this member now owns: initialising
    /// their transactional ids aborts what they left open. Apache Kafka would abort such a transaction
    /// at its timeout; the local broker never does, and until then it defers the offset commits of every later
    /// transaction on those partitions and stops read_committed readers at the open one. A member fenced while
    /// alive (its batch failed and was aborted, then it lost the partition) gets a fatal error and restarts.
    private func fence(_ members: Set<String>) {
        guard options.mode == .exactlyOnce else { return }
        for member in members.sorted() {
            var config = options.kafka
            config["transactional.id"] = "\(options.group)-\(member)"
            do {
                try KafkaProducer(config).initTransactions(timeoutMs: 10_000)
                events(.fenced(member: member))
            } catch {
                log("could not end member \(member)'s open transaction: \(error)")
            }
        }
    }
}

/// A member cannot run as configured; the message says what to do.
/// A stop request that ended a restore; the member then stops as it would between batches.
struct ServiceStopped: Error {}

public struct ServiceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Changelog records a restore skipped, by why. Uncommitted ones are expected after a crash (one line in all);
/// the others are logged one by one.
struct RestoreSkips {
    var uncommitted = 0, otherApplication = 0, inconsistent = 0, unreadable = 0

    mutating func add(_ error: RestoreError, at place: String, _ log: (String) -> Void) {
        switch error {
        case .uncommitted: uncommitted += 1
        case .otherApplication:
            otherApplication += 1
            log("changelog \(place) skipped: \(error)")
        case .inconsistent:
            inconsistent += 1
            log("changelog \(place) skipped: \(error)")
        }
    }

    var summary: String {
        let parts = [(uncommitted, "of transactions that did not commit"), (otherApplication, "of another application"),
                     (inconsistent, "that do not fit the model"), (unreadable, "unreadable")]
            .filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }
        return parts.isEmpty ? "" : "; skipped \(parts.joined(separator: ", "))"
    }
}

/// Milliseconds in buckets 5% wide (1 ms to about 14 hours), so a percentile is within 5% of the true one at a
/// fixed cost per value.
struct LatencyHistogram {
    private static let ratio = 1.05
    private var buckets = [Int](repeating: 0, count: 360)
    private(set) var count = 0

    mutating func add(milliseconds: Int64) {
        let ms = Double(max(milliseconds, 1))
        buckets[min(Int((Foundation.log(ms) / Foundation.log(Self.ratio)).rounded(.down)), buckets.count - 1)] += 1
        count += 1
    }

    /// The upper edge of the bucket holding the `q`-quantile.
    func percentile(_ q: Double) -> Double {
        var seen = 0
        let target = Int((q * Double(count)).rounded(.up))
        for (i, n) in buckets.enumerated() {
            seen += n
            if seen >= max(target, 1) { return Foundation.pow(Self.ratio, Double(i + 1)) }
        }
        return Foundation.pow(Self.ratio, Double(buckets.count))
    }
}

/// Counts of the loop between two stats lines.
struct LoopStats {
    var messages = 0, outputs = 0, batches = 0
    /// From each input's timestamp (when it was produced) to the commit of its batch: when its effects became
    /// readable.
    var latency = LatencyHistogram()
    var process = Duration.zero, commit = Duration.zero
    /// Of `commit`, in exactly-once mode: producing the outputs, sending the offsets, committing the transaction.
    var publish = Duration.zero, offsets = Duration.zero, endTransaction = Duration.zero
    var since = ContinuousClock.now

    mutating func add(messages: Int, outputs: Int, process: Duration, commit: Duration) {
        self.messages += messages
        self.outputs += outputs
        batches += 1
        self.process += process
        self.commit += commit
    }

    mutating func transactions(publish: Duration, offsets: Duration, commit: Duration) {
        self.publish += publish
        self.offsets += offsets
        endTransaction += commit
    }

    /// `idle`: the line of an interval with no batch at all (a heartbeat: the member is alive and says what it waits for).
    mutating func report(every interval: Double, _ log: (String) -> Void, idle: (Double) -> Void = { _ in }) {
        let elapsed = ContinuousClock.now - since
        guard interval > 0, elapsed >= .seconds(interval) else { return }
        let seconds = elapsed.seconds
        if messages > 0 {
            log(String(format: "%.0f messages/s, %.0f outputs/s, %d batches of %.0f; processing %.0f%%, publishing and committing %.0f%% of the time",
                       Double(messages) / seconds, Double(outputs) / seconds, batches, Double(messages) / Double(batches),
                       100 * process.seconds / seconds, 100 * commit.seconds / seconds)
                + (endTransaction > .zero ? String(format: " (per batch: producing %.1f ms, sending offsets %.1f ms, committing %.1f ms)",
                                                   publish.seconds * 1000 / Double(batches), offsets.seconds * 1000 / Double(batches),
                                                   endTransaction.seconds * 1000 / Double(batches)) : "")
                + (latency.count > 0 ? String(format: "; input to commit p50 %.0f ms, p99 %.0f ms", latency.percentile(0.5),
                                              latency.percentile(0.99)) : ""))
        } else if batches > 0 {
            log(String(format: "no input; %d transactions of grace-period days and rollups, %.0f outputs/s", batches,
                       Double(outputs) / seconds))
        } else {
            idle(seconds)
        }
        self = LoopStats()
    }
}

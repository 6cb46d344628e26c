import DINOP
import PromoEvents
import PromoFeatures

/// The service's processing, free of Kafka: input messages in, output records out, per-item state in between.
///
/// Per (promotion, item) it keeps the inputs and the incremental model state; a day is applied when its sales and
/// buyer profile have both arrived, when a later day's sales close it, or when the grace period runs out (then
/// the buyer features are missing, i.e. take the normalisation mean, and the prediction lists the day in
/// `days_without_buyers`). In-order days advance the state; a late or corrected day, a changed profile or another
/// model version recompute the item from its stored days. A duplicate changes nothing and publishes nothing.
/// Every changed item of a call is stepped in one batch, so the math runs as GEMMs.
///
/// `swap(to:)` changes the model between calls; items predicted by an older version are then recomputed from
/// their stored days in the background (`recomputePerCall` per call, most active first) or on their next event,
/// whichever comes first.
///
/// Its parts: `InputApplier` (messages → item inputs → changed states), `PartitionStore` (the items, hot and
/// compact), `BatchedStepper` (the model math), `OutputEncoder` (records). This type decides what to recompute
/// and when. Owned by one thread.
public final class StreamProcessor {
    public private(set) var model: DINOPModel
    public let options: ProcessorOptions
    let inputs: InputApplier
    var stepper: BatchedStepper
    let encoder: OutputEncoder
    let rollupFields: RollupTable.Fields
    let partitions = PartitionStore()
    /// During a restore, what each restored item adds to the rollups and whether a day of it waits for buyers.
    var restoring: [Int32: [ItemKey: (RollupTable.Contribution, Int64?)]] = [:]
    /// Items that may still carry a prediction of an older model version, to recompute in the background.
    var stale = FIFO<(partition: Int32, key: ItemKey)>()
    /// After a swap to a version that differs from the previous one only in some markets' columns (a fine-tune of
    /// scope `market`), those markets: the other items' predictions are bit-identical, so they are not recomputed.
    var recomputeMarkets: Set<String>?
    /// Items the last swap left as they were (their market's columns did not change), so far.
    public private(set) var skippedRecomputes = 0
    /// MARKETS.md `competition`: the item role's side of the industry stage (nil for a model without it).
    let competition: CompetitionLink?

    public init(model: DINOPModel, options: ProcessorOptions = ProcessorOptions()) {
        self.model = model
        self.options = options
        inputs = InputApplier(config: model.config, presaleDays: options.presaleDays)
        stepper = BatchedStepper(model: model, batchRows: options.batchRows)
        encoder = OutputEncoder(consumer: options.consumer, application: options.application, config: model.config)
        rollupFields = RollupTable.Fields(model.config.siiFields)
        competition = model.config.has(extension: ModelExtension.competition)
            ? CompetitionLink(contexts: options.competitionContexts, config: model.config) : nil
    }

    /// With MARKETS.md `competition`: how many partitions the input topics and the stage's repartition topic have
    /// (each watermark goes to every stage partition and names the input partitions' count).
    public func setCompetitionPartitions(input: Int32, stage: Int32) {
        competition?.inputPartitions = input
        competition?.stagePartitions = stage
    }

    /// Contexts of another model version than the one served, not published, since the start.
    public var staleContexts: Int { competition?.staleContexts ?? 0 }
    /// Contexts of a day whose close an item had published already (a re-close), since the start.
    public var repeatedContexts: Int { competition?.repeatedContexts ?? 0 }

    public var itemCount: Int { partitions.itemCount }
    /// Items kept whole and compact, and the compact ones' bytes (O(items): for periodic metrics, not per batch).
    public var stateSizes: StateSizes { partitions.sizes }

    public func state(partition: Int32, key: ItemKey) -> ItemState? { partitions[partition]?.state(key) }

    /// Items queued for recomputation under the current model (an upper bound: some may have been recomputed by
    /// their own events meanwhile).
    public var staleCount: Int { stale.count }

    public static func changelogKey(_ key: ItemKey) -> [UInt8] { OutputEncoder.changelogKey(key) }

    // MARK: Model swaps

    /// Serves `newModel` from the next call on. Its input features must be those of the current model: the stored
    /// inputs are kept by feature name. Every item whose last prediction came from another version is queued for
    /// recomputation, the items kept whole (the recently changed ones) first, by how many predictions they have
    /// had, then the compact ones.
    public func swap(to newModel: DINOPModel) throws(ModelSwapError) {
        let competes = newModel.config.has(extension: ModelExtension.competition)
        guard competes == (competition != nil), !competes || newModel.config.competition == model.config.competition else {
            throw ModelSwapError(description: "version \(newModel.version)'s competition (\(competes ? "\(newModel.config.competition)" : "none")) is not version \(model.version)'s (\(competition != nil ? "\(model.config.competition)" : "none")): the members' topics and the industry stage's vectors follow it; a change needs a new deployment")
        }
        guard newModel.config.siiFields == model.config.siiFields, newModel.config.features == model.config.features else {
            throw ModelSwapError(description: "version \(newModel.version) reads other input features than version \(model.version) (the stored item inputs are kept by feature name); a change of features needs a new deployment")
        }
        // A version identical to the previous one (a re-publish, a rollback) is recomputed in full, so that every
        // item's latest prediction names the version served; one that changed some markets' columns only, those.
        let changed = newModel.marketsChanged(from: model)
        recomputeMarkets = changed.flatMap { $0.isEmpty ? nil : $0 }
        model = newModel
        stepper = BatchedStepper(model: newModel, batchRows: options.batchRows)
        stale = FIFO()
        var hot: [(sequence: Int, partition: Int32, key: ItemKey)] = []
        var unchanged: [(partition: Int32, key: ItemKey)] = []
        for (p, table) in partitions.all {
            for state in table.hotStates where state.predictedBy != newModel.version {
                if needsRecompute(state) { hot.append((state.sequence, p, state.key)) } else { unchanged.append((p, state.key)) }
            }
        }
        // Their model state and prediction are the new version's as they stand: say so, so that their next event
        // steps on from it instead of recomputing them from their days.
        for (p, key) in unchanged {
            partitions[p]?.modify(key, make: { inputs.newState(key) }) { state in
                state.hot?.modelVersion = newModel.version
                state.predictedBy = newModel.version
            }
        }
        skippedRecomputes = unchanged.count
        hot.sort { ($0.sequence, $0.key) > ($1.sequence, $1.key) }
        for item in hot { stale.append((item.partition, item.key)) }
        for (p, table) in partitions.all {
            for key in table.coldKeys { stale.append((p, key)) }
        }
    }

    // MARK: Restoring

    /// Forgets partitions (revoked, or to be restored again after an aborted transaction).
    public func remove(partitions removed: some Sequence<Int32>) {
        for p in removed {
            partitions.remove(p)
            competition?.forget(p)
        }
    }

    /// Takes over a partition with the states restored from its changelog (later records of an item replace
    /// earlier ones). Returns the records that could not be read, with why; they are skipped.
    public func restore(partition: Int32, records: [(key: [UInt8]?, value: [UInt8])]) -> [(offset: Int, reason: String)] {
        startRestore(partition: partition)
        var failures: [(Int, String)] = []
        for (i, record) in records.enumerated() {
            do { try restore(partition: partition, value: record.value) } catch { failures.append((i, "\(error)")) }
        }
        finishRestore(partition: partition)
        return failures
    }

    /// Restoring one record at a time, as they are read: `startRestore`, `restore(partition:value:)`…, `finishRestore`.
    /// Items go straight to their compact form (a later record of an item replaces an earlier one), so a restore
    /// needs little more memory than its result.
    ///
    /// `committed`: the group's committed offsets of the partition's input topics (`inputTopics` order; 0 where none
    /// is committed). A record that carries positions beyond them was written by a transaction that did not
    /// commit, and is refused (`RestoreError.uncommitted`), as is a record of another application. Records without
    /// positions are taken as they are.
    public func startRestore(partition: Int32, committed: [Int64] = []) {
        let table = PartitionTable()
        table.positions = committed
        partitions.replace(partition, with: table)
        restoring[partition] = [:]
    }

    /// Checks the record (its provenance, its decoding, its sizes against the model), then keeps its bytes as the
    /// item's compact form.
    public func restore(partition: Int32, value: [UInt8]) throws {
        let (state, provenance) = try StateCodec.decodeWithProvenance(value)
        let table = partitions.table(partition)
        try provenance.verify(application: options.application, committed: table.positions, topics: options.inputTopics)
        if let problem = shapeProblem(state) { throw RestoreError.inconsistent(problem) }
        table.putCold(key: state.key, bytes: value)
        competition?.noteInputs(of: state, partition: partition, nowMs: nil)
        // Published by a member serving another version (a later record of the item is queued again: harmless).
        if state.sequence > 0, state.predictedBy != model.version { stale.append((partition, state.key)) }
        restoring[partition, default: [:]][state.key] = (RollupTable.Contribution(state, fields: rollupFields),
                                                        state.pendingSince)
    }

    /// Why a decoded state does not fit the model being served (or nil): another deployment's feature config, or
    /// bytes that decode but were never written by a member. Checked before anything indexes by these sizes.
    func shapeProblem(_ state: ItemState) -> String? {
        let (nDis, nU) = (inputs.nDis, inputs.nU)
        let nDays = state.dayNumbers.count
        if state.sii.count != model.config.siiFields.count {
            return "\(state.sii.count) sii ids, the model has \(model.config.siiFields.count) sii fields"
        }
        if state.sis.count != model.config.count(.sis) { return "\(state.sis.count) sis values, the model reads \(model.config.count(.sis))" }
        if state.su.count != nU { return "\(state.su.count) su values, the model reads \(nU)" }
        if let act = state.act, act.count != model.config.count(.act) {
            return "\(act.count) activity values, the model reads \(model.config.count(.act))"
        }
        if state.dayFlags.count != nDays || state.dayValues.count != nDays * (nDis + nU) {
            return "\(nDays) days with \(state.dayFlags.count) flags and \(state.dayValues.count) values, the model reads \(nDis + nU) per day"
        }
        if let bad = state.dayNumbers.first(where: { $0 < 1 || Int($0) > options.presaleDays }) {
            return "day \(bad) outside the pre-sale window 1...\(options.presaleDays)"
        }
        if zip(state.dayNumbers, state.dayNumbers.dropFirst()).contains(where: { $0 >= $1 }) { return "days not increasing" }
        if let day = state.waitingDay, !state.dayNumbers.contains(UInt16(truncatingIfNeeded: day)) || day > Int(UInt16.max) {
            return "waiting day \(day) is not one of its days"
        }
        // Bounds that keep the arithmetic on them from overflowing (`sequence + 1`, `now - since`).
        if state.sequence < 0 || state.sequence >= 1 << 53 { return "sequence number \(state.sequence) out of range" }
        if let since = state.pendingSince, since < 0 || since >= 1 << 50 { return "grace start \(since) ms out of range" }
        if let gmv = state.lastGMV, !gmv.isFinite { return "last GMV \(gmv)" }
        return nil
    }

    public func finishRestore(partition: Int32) {
        let table = partitions.table(partition)
        var waiting: [(since: Int64, key: ItemKey)] = []
        for (key, (contribution, since)) in restoring.removeValue(forKey: partition) ?? [:] {
            if let since { waiting.append((since, key)) }
            table.rollups.add(contribution, promotion: key.promotionID, sign: 1)
        }
        for (since, key) in waiting.sorted(by: { $0.since < $1.since }) { table.waiting.append((since, key)) }
        // The previous owner may not have published its latest sums: publish them all once.
        table.rollups.markAllChanged()
    }

    // MARK: Processing

    /// Applies messages and returns what to publish: one prediction, changelog record and rollup update per
    /// changed item, and one dead letter per message that cannot be decoded or applied. Also applies days whose
    /// grace period has run out by `nowMs`, and recomputes up to `recomputePerCall` items left from a model swap.
    public func process(_ messages: [InputMessage], nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = []
        var changes = Changes()
        var contexts: [(context: CompetitionContext, message: InputMessage)] = []
        for message in messages {
            advancePosition(message)
            if let competition, message.topic == competition.contexts {
                do {
                    contexts.append((try CompetitionCodec.decodeContext(message.value), message))
                } catch {
                    out.append(encoder.deadLetter(message, reason: "\(error)", cause: .invalidEvent, nowMs: nowMs))
                }
                continue
            }
            do {
                try apply(message, nowMs: nowMs, changes: &changes)
            } catch {
                out.append(encoder.deadLetter(message, reason: error.description, cause: error.cause, nowMs: nowMs))
            }
        }
        expirePending(nowMs: nowMs, changes: &changes)
        takeStale(options.recomputePerCall, changes: &changes)
        out += compute(changes, nowMs: nowMs)
        if let competition {
            out += publishClosed(contexts, link: competition, nowMs: nowMs)
            out += competition.watermarks(nowMs: nowMs, graceMs: options.gracePeriodMs)
        }
        if !withheld.isEmpty { out += deadLetters(forWithheld: messages, nowMs: nowMs) }
        return out
    }

    /// A message dead-lettered without being applied (a poison pill); its partition's position moves past it.
    public func skip(_ message: InputMessage, reason: String, nowMs: Int64) -> OutputRecord {
        advancePosition(message)
        return encoder.deadLetter(message, reason: reason, cause: .poisonPill, nowMs: nowMs)
    }

    /// The partition's position in the message's topic moves past it (what the batch commits).
    func advancePosition(_ message: InputMessage) {
        guard let topic = options.inputTopics.firstIndex(of: message.topic) else { return }
        let table = partitions.table(message.partition)
        if table.positions.count < options.inputTopics.count {
            table.positions += repeatElement(0, count: options.inputTopics.count - table.positions.count)
        }
        table.positions[topic] = max(table.positions[topic], message.offset + 1)
    }

    /// What the items changed by one call need.
    struct Changes {
        struct Change {
            /// The stored model state no longer matches the inputs (a corrected day, a new profile).
            var recompute = false
            /// The inputs changed (false: only a grace period ran out, which may change nothing).
            var inputs = false
            /// The profile or the activity changed: the prediction changes even without a new day.
            var statics = false
            /// The item's rollup membership and GMV before the change.
            var before: RollupTable.Contribution
        }

        var items: [Int32: [ItemKey: Change]] = [:]
    }

    func apply(_ message: InputMessage, nowMs: Int64, changes: inout Changes) throws(ApplyError) {
        guard let (key, input) = try inputs.input(message) else { return }
        let table = partitions.table(message.partition)
        let applied = table.modify(key, make: { inputs.newState(key) }) { state -> (RollupTable.Contribution, InputApplier.Applied)? in
            let before = RollupTable.Contribution(state, fields: rollupFields)
            // A duplicate changes nothing the competition link reads.
            guard let change = inputs.apply(input, to: &state, nowMs: nowMs) else { return nil }
            competition?.noteInputs(of: state, partition: message.partition, nowMs: nowMs)
            return (before, change)
        }
        guard let (before, change) = applied else { return }
        if let since = change.startedWaiting { table.waiting.append((since, key)) }
        inPlace(&changes.items[message.partition, default: [:]][key, default: Changes.Change(before: before)]) {
            $0.inputs = true
            $0.recompute = $0.recompute || change.recompute
            $0.statics = $0.statics || change.statics
        }
    }

    /// Whether an item predicted by the previous version must be recomputed under the current one: always, unless
    /// the swap changed only other markets' columns.
    func needsRecompute(_ state: ItemState) -> Bool {
        guard let markets = recomputeMarkets else { return true }
        return model.config.marketID(state.sii).map { markets.contains($0) } ?? false
    }

    /// Adds up to `count` queued items still predicted by another model version (skipping those recomputed
    /// since, those of partitions no longer owned, and those a market-scoped swap left unchanged; at most 50 ×
    /// `count` looked at per call, so a long run of skipped compact items does not stall a batch).
    func takeStale(_ count: Int, changes: inout Changes) {
        var taken = 0, looked = 0
        while taken < count, looked < 50 * count, let (p, key) = stale.first {
            stale.removeFirst()
            looked += 1
            guard changes.items[p]?[key] == nil, let state = partitions[p]?.state(key),
                  state.predictedBy != model.version else { continue }
            guard needsRecompute(state) else {
                skippedRecomputes += 1
                continue
            }
            var change = Changes.Change(before: RollupTable.Contribution(state, fields: rollupFields))
            change.recompute = true
            change.statics = true
            changes.items[p, default: [:]][key] = change
            taken += 1
        }
    }

    /// Items whose grace period ran out by `nowMs`: from the front of each partition's queue, in the order their
    /// grace periods started, so a call looks at no more items than it expires (plus stale entries once).
    func expirePending(nowMs: Int64, changes: inout Changes) {
        for (p, table) in partitions.all {
            while let (since, key) = table.waiting.first, nowMs - since >= options.gracePeriodMs {
                table.waiting.removeFirst()
                // A stale entry: the item's buyers came, or a later day restarted its clock.
                guard let state = table.state(key), state.pendingSince == since else { continue }
                if changes.items[p]?[key] == nil {
                    changes.items[p, default: [:]][key] = Changes.Change(before: RollupTable.Contribution(state, fields: rollupFields))
                }
            }
        }
    }

    /// The days the model state should cover: every sales day except the latest while it waits for its buyers.
    func includedDays(_ state: ItemState, nowMs: Int64) -> [Int] {
        var days = state.salesDays
        if let since = state.pendingSince, nowMs - since < options.gracePeriodMs, days.last == state.waitingDay {
            days.removeLast()
        }
        return days
    }

    // MARK: Computing

    /// Items of the last `process` call whose prediction was not finite (not published), with why.
    var withheld: [(partition: Int32, key: ItemKey, reason: String)] = []
    /// Predictions withheld because they were not finite, since the processor started.
    public internal(set) var withheldCount = 0

    func compute(_ changes: Changes, nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = []
        var jobs: [StepJob] = [], befores: [RollupTable.Contribution] = []
        for (p, items) in changes.items {
            let table = partitions.table(p)
            for (key, change) in items {
                guard var state = table.take(key) else { continue }
                var steps = includedDays(state, nowMs: nowMs), fresh = true
                // With competition a changed profile changes the item's `f` as of every day, each of which the
                // stage may still need: all are computed again.
                let recompute = change.recompute || (competition != nil && change.statics)
                if let hot = state.hot, hot.modelVersion == model.version, !recompute,
                   steps.count >= hot.appliedDays.count, zip(steps, hot.appliedDays).allSatisfy({ $0 == Int($1) }) {
                    steps.removeFirst(hot.appliedDays.count)
                    fresh = false
                }
                // Without a new day, a changed profile or activity, the prediction stays as it is (and so do the
                // rollups): a day waiting for its buyers only needs its sales stored durably; a grace period that
                // ran out on an applied day needs nothing.
                if !fresh, steps.isEmpty, !change.statics {
                    if change.inputs { out.append(encoder.changelog(state, partition: p, positions: table.positions)) }
                    table.put(state.moveOut())
                    continue
                }
                // Without its profile an item's group is unknown: its `f` waits for it (and so does its watermark).
                let promotion = state.key.promotionID, grouped = state.hasProfile
                jobs.append(StepJob(partition: p, state: state.moveOut(), steps: steps, fresh: fresh,
                                    vectorsAfter: competition.flatMap { grouped ? $0.closedDay(partition: p, promotion: promotion) : nil }))
                befores.append(change.before)
            }
        }
        let changedKeys = jobs.map(\.state.key)
        let timestamp = encoder.timestamp(nowMs)
        out.reserveCapacity(out.count + jobs.count * 2)
        let version = model.version
        stepper.step(&jobs) { index, job, result in
            let (hot, prediction) = (result.hot, result.prediction)
            let table = partitions.table(job.partition)
            var state = job.state.moveOut()
            if let reason = prediction.notFiniteReason {
                // Not published: the inputs stay durable; the model state is dropped, so that the item is
                // computed afresh from its days once they change (an incremental step from a non-finite state
                // would stay non-finite).
                state.hot = nil
                withheld.append((job.partition, state.key, reason))
                withheldCount += 1
            } else {
                let previous = job.fresh ? [] : state.hot?.appliedDays ?? []
                state.hot = hot
                state.hot?.appliedDays = previous + hot.appliedDays
                state.predictedBy = version
                if let competition {
                    // Its prediction reads its group's items as of a day: it is published at the day's close.
                    out += competition.vectors(result.vectors, of: state, version: version, partition: job.partition)
                } else {
                    state.sequence += 1
                    state.lastGMV = prediction.gmv
                    out.append(encoder.prediction(prediction, of: state, version: version, timestamp: timestamp, partition: job.partition))
                }
            }
            out.append(encoder.changelog(state, partition: job.partition, positions: table.positions))
            table.rollups.replace(befores[index], with: RollupTable.Contribution(state, fields: rollupFields),
                                  promotion: state.key.promotionID)
            table.put(state.moveOut())
        }
        publishRollups(nowMs: nowMs, timestamp: timestamp, out: &out)
        coolDown(keeping: changedKeys)
        return out
    }

    /// A prediction that is not finite is not published; the messages of this call that changed its item are
    /// dead letters with the reason, so whoever sent them sees why nothing came of them. (An item changed by a
    /// grace period or a model swap alone has no message: it is counted in `withheldCount`.) Only the rare
    /// withheld items pay for finding their messages.
    func deadLetters(forWithheld messages: [InputMessage], nowMs: Int64) -> [OutputRecord] {
        defer { withheld = [] }
        var reasons: [Int32: [ItemKey: String]] = [:]
        for item in withheld { reasons[item.partition, default: [:]][item.key] = item.reason }
        var out: [OutputRecord] = []
        for message in messages {
            guard let items = reasons[message.partition], let (key, _) = try? inputs.decode(message.value),
                  let reason = items[key] else { continue }
            out.append(encoder.deadLetter(message, reason: "\(reason); the item's inputs are kept, and no prediction is published until they change",
                                          cause: .notFinite, nowMs: nowMs))
        }
        return out
    }

    /// The sums that changed since they were last published, at most once per `rollupIntervalMs` per partition:
    /// a seller's sum moves with every item of the seller, and one record per interval says as much.
    func publishRollups(nowMs: Int64, timestamp: String, out: inout [OutputRecord]) {
        for (p, table) in partitions.all.sorted(by: { $0.key < $1.key })
        where table.rollups.isDue(nowMs: nowMs, interval: options.rollupIntervalMs) {
            out += table.rollups.flush(partition: p, nowMs: nowMs, timestamp: timestamp)
        }
    }

    /// Turns hot items into their compact form when there are more than `hotItems`, keeping the items just changed.
    /// Down to 90%, so that one call encodes a tenth of them at most (a pause of a fraction of a second at 200,000).
    func coolDown(keeping changed: [ItemKey]) {
        var hot = partitions.hotCount
        let target = options.hotItems * 9 / 10
        guard hot > options.hotItems else { return }
        let recent = Set(changed)
        for table in partitions.all.values where hot > target {
            hot -= table.cool(count: hot - target, keeping: recent)
        }
    }

    /// Every item's prediction as it was (or would have been) on `day`: computed afresh from its stored days up to
    /// that day, by the same batched code, without changing any state. For backtests.
    public func predictions(asOfDay day: Int) -> [PredictionEvent] {
        var jobs: [StepJob] = []
        for (p, table) in partitions.all {
            for state in table.allStates() {
                jobs.append(StepJob(partition: p, state: state, steps: includedDays(state, nowMs: .max).filter { $0 <= day },
                                    fresh: true))
            }
        }
        jobs.sort { $0.state.key < $1.state.key }
        var out: [PredictionEvent] = []
        let version = model.version
        stepper.step(&jobs) { _, job, result in
            let (hot, p) = (result.hot, result.prediction)
            guard p.notFiniteReason == nil else { return }
            out.append(PredictionEvent(p, key: job.state.key, modelVersion: version, activityID: job.state.activityID,
                                       producedAt: "", asOfDay: hot.appliedDays.last.map(Int.init),
                                       daysWithoutBuyers: hot.appliedDays.map(Int.init).filter { !job.state.hasBuyers(day: $0) },
                                       market: model.config.marketID(job.state.sii)))
        }
        return out
    }
}

/// Why a changelog record is not restored.
public enum RestoreError: Error, CustomStringConvertible, Equatable {
    case otherApplication(String, expected: String)
    case uncommitted(topic: String, position: Int64, committed: Int64)
    case inconsistent(String)

    public var description: String {
        switch self {
        case .otherApplication(let application, let expected):
            "written by application \(quoted(application)), not \(quoted(expected)): another deployment's changelog"
        case .uncommitted(let topic, let position, let committed):
            "written by a transaction that did not commit (its batch read \(topic) up to \(position), the group committed \(committed))"
        case .inconsistent(let why): "does not fit the model being served: \(why)"
        }
    }
}

/// Why a model cannot replace the one being served.
public struct ModelSwapError: Error, CustomStringConvertible {
    public let description: String
}

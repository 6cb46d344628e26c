import DINOP
import Foundation
import PromoEvents
import PromoFeatures

public struct ProcessorOptions: Sendable {
    /// Days of the pre-sale window; daily events outside `1...presaleDays` are dead letters.
    public var presaleDays = 20
    /// How long the latest day waits for its buyer profile before it is applied without one (milliseconds).
    public var gracePeriodMs: Int64 = 2 * 3600 * 1000
    /// Named in dead letters: `<group>/<member>` (Topics/README.md).
    public var consumer = "promo"
    /// The application (consumer group) that changelog records name; a restore refuses records of another one.
    public var application = ""
    /// The input topics in the order changelog records list their positions (`Provenance`); messages of other
    /// topics do not move positions.
    public var inputTopics: [String] = []
    /// Items stepped together per GEMM.
    public var batchRows = 512
    /// How often a partition publishes the rollup sums that changed (milliseconds).
    public var rollupIntervalMs: Int64 = 1_000
    /// Items kept whole in memory; beyond this the least recently changed are kept compactly (their inputs only)
    /// and recomputed from their stored days when they change again.
    public var hotItems = 200_000
    /// After a model swap, at most this many items of older versions are recomputed per `process` call, besides
    /// the items the call's messages change (which are recomputed anyway).
    public var recomputePerCall = 1_000
    /// Threads of a `ShardedProcessor`: partition p is processed by shard p mod `threads`.
    public var threads = 1

    public init() {}
}

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
/// Owned by one thread.
public final class StreamProcessor {
    public private(set) var model: DINOPModel
    public let options: ProcessorOptions
    var network: Network<Float>
    var scorer: Scorer<Float>
    let mapper: FeatureMapper
    let decoder: EventDecoder
    let nDis: Int, nU: Int
    /// Per `Vocabulary.sales` name its position in the model's `dis` vector, per buyer bucket in `du`.
    let salesSlots: [Int?], bucketSlots: [Int?]
    let rollupFields: RollupTable.Fields
    var partitions: [Int32: PartitionState] = [:]
    /// During a restore, what each restored item adds to the rollups and whether a day of it waits for buyers.
    var restoring: [Int32: [ItemKey: (RollupTable.Contribution, Int64?)]] = [:]
    /// Items that may still carry a prediction of an older model version, to recompute in the background.
    var stale = FIFO<(partition: Int32, key: ItemKey)>()

    public init(model: DINOPModel, options: ProcessorOptions = ProcessorOptions()) {
        self.model = model
        self.options = options
        network = Network(model.parameters)
        scorer = Scorer(network: network, capacity: options.batchRows)
        mapper = FeatureMapper(config: model.config)
        decoder = EventDecoder(presaleDays: options.presaleDays)
        nDis = network.nDis
        nU = network.nU
        salesSlots = mapper.positions(.dis, of: Vocabulary.sales.map(\.0))
        bucketSlots = mapper.positions(.du, of: Vocabulary.buyerBuckets)
        rollupFields = RollupTable.Fields(model.config.siiFields)
    }

    public var itemCount: Int { partitions.values.reduce(0) { $0 + $1.count } }
    /// Items kept whole and compact, and the compact ones' bytes (O(items): for periodic metrics, not per batch).
    public var stateSizes: StateSizes {
        partitions.values.reduce(into: StateSizes()) { sizes, table in
            sizes.hot += table.hotCount
            sizes.compact += table.count - table.hotCount
            sizes.compactBytes += table.compactBytes
        }
    }

    public func state(partition: Int32, key: ItemKey) -> ItemState? { partitions[partition]?.state(key) }

    /// Items queued for recomputation under the current model (an upper bound: some may have been recomputed by
    /// their own events meanwhile).
    public var staleCount: Int { stale.count }

    // MARK: Model swaps

    /// Serves `newModel` from the next call on. Its input features must be those of the current model: the stored
    /// inputs are kept by feature name. Every item whose last prediction came from another version is queued for
    /// recomputation, the items kept whole (the recently changed ones) first, by how many predictions they have
    /// had, then the compact ones.
    public func swap(to newModel: DINOPModel) throws(ModelSwapError) {
        guard newModel.config.siiFields == model.config.siiFields, newModel.config.features == model.config.features else {
            throw ModelSwapError(description: "version \(newModel.version) reads other input features than version \(model.version) (the stored item inputs are kept by feature name); a change of features needs a new deployment")
        }
        model = newModel
        network = Network(newModel.parameters)
        scorer = Scorer(network: network, capacity: options.batchRows)
        stale = FIFO()
        var hot: [(sequence: Int, partition: Int32, key: ItemKey)] = []
        for (p, table) in partitions {
            for state in table.hotStates where state.predictedBy != newModel.version { hot.append((state.sequence, p, state.key)) }
        }
        hot.sort { ($0.sequence, $0.key) > ($1.sequence, $1.key) }
        for item in hot { stale.append((item.partition, item.key)) }
        for (p, table) in partitions {
            for key in table.coldKeys { stale.append((p, key)) }
        }
    }

    /// Forgets partitions (revoked, or to be restored again after an aborted transaction).
    public func remove(partitions removed: some Sequence<Int32>) {
        for p in removed { partitions[p] = nil }
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
        var table = PartitionState()
        table.positions = committed
        partitions[partition] = table
        restoring[partition] = [:]
    }

    /// Checks the record (its provenance, its decoding, its sizes against the model), then keeps its bytes as the
    /// item's compact form.
    public func restore(partition: Int32, value: [UInt8]) throws {
        let (state, provenance) = try StateCodec.decodeWithProvenance(value)
        if !provenance.application.isEmpty, !options.application.isEmpty, provenance.application != options.application {
            throw RestoreError.otherApplication(provenance.application, expected: options.application)
        }
        let committed = partitions[partition]?.positions ?? []
        for (i, position) in provenance.positions.enumerated() {
            let limit = i < committed.count ? committed[i] : 0
            guard position <= limit else {
                throw RestoreError.uncommitted(topic: i < options.inputTopics.count ? options.inputTopics[i] : "input \(i)",
                                               position: position, committed: limit)
            }
        }
        if let problem = shapeProblem(state) { throw RestoreError.inconsistent(problem) }
        partitions[partition, default: PartitionState()].putCold(key: state.key, bytes: value)
        // Published by a member serving another version (a later record of the item is queued again: harmless).
        if state.sequence > 0, state.predictedBy != model.version { stale.append((partition, state.key)) }
        restoring[partition, default: [:]][state.key] = (RollupTable.Contribution(state, fields: rollupFields),
                                                        state.pendingSince)
    }

    /// Why a decoded state does not fit the model being served (or nil): another deployment's feature config, or
    /// bytes that decode but were never written by a member. Checked before anything indexes by these sizes.
    func shapeProblem(_ state: ItemState) -> String? {
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
        var table = partitions.removeValue(forKey: partition) ?? PartitionState()
        var waiting: [(since: Int64, key: ItemKey)] = []
        for (key, (contribution, since)) in restoring.removeValue(forKey: partition) ?? [:] {
            if let since { waiting.append((since, key)) }
            table.rollups.add(contribution, promotion: key.promotionID, sign: 1)
        }
        for (since, key) in waiting.sorted(by: { $0.since < $1.since }) { table.waiting.append((since, key)) }
        // The previous owner may not have published its latest sums: publish them all once.
        table.rollups.markAllChanged()
        partitions[partition] = table
    }

    /// Applies messages and returns what to publish: one prediction, changelog record and rollup update per
    /// changed item, and one dead letter per message that cannot be decoded or applied. Also applies days whose
    /// grace period has run out by `nowMs`, and recomputes up to `recomputePerCall` items left from a model swap.
    public func process(_ messages: [InputMessage], nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = []
        var changes = Changes()
        for message in messages {
            advancePosition(message)
            do {
                try apply(message, nowMs: nowMs, changes: &changes)
            } catch {
                out.append(deadLetter(message, reason: "\(error)", cause: (error as? ApplyError)?.cause ?? .invalidEvent,
                                      nowMs: nowMs))
            }
        }
        expirePending(nowMs: nowMs, changes: &changes)
        takeStale(options.recomputePerCall, changes: &changes)
        out += compute(changes, nowMs: nowMs)
        if !withheld.isEmpty { out += deadLetters(forWithheld: messages, nowMs: nowMs) }
        return out
    }

    /// A message dead-lettered without being applied (a poison pill); its partition's position moves past it.
    public func skip(_ message: InputMessage, reason: String, nowMs: Int64) -> OutputRecord {
        advancePosition(message)
        return deadLetter(message, reason: reason, cause: .poisonPill, nowMs: nowMs)
    }

    /// The partition's position in the message's topic moves past it (what the batch commits).
    func advancePosition(_ message: InputMessage) {
        guard let topic = options.inputTopics.firstIndex(of: message.topic) else { return }
        Self.inPlace(&partitions[message.partition, default: PartitionState()].positions) { positions in
            if positions.count < options.inputTopics.count {
                positions += repeatElement(0, count: options.inputTopics.count - positions.count)
            }
            positions[topic] = max(positions[topic], message.offset + 1)
        }
    }

    /// What a partition's changelog records carry: this application, and the positions after this batch.
    func provenance(of table: PartitionState?) -> Provenance {
        Provenance(application: options.application, positions: table?.positions ?? [])
    }

    /// Items of the last `process` call whose prediction was not finite (not published), with why.
    var withheld: [(partition: Int32, key: ItemKey, reason: String)] = []
    /// Predictions withheld because they were not finite, since the processor started.
    public private(set) var withheldCount = 0

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
            guard let items = reasons[message.partition], let (key, _) = try? decode(message),
                  let reason = items[key] else { continue }
            out.append(deadLetter(message, reason: "\(reason); the item's inputs are kept, and no prediction is published until they change",
                                  cause: .notFinite, nowMs: nowMs))
        }
        return out
    }

    /// Adds up to `count` queued items still predicted by another model version (skipping those recomputed
    /// since, and those of partitions no longer owned).
    func takeStale(_ count: Int, changes: inout Changes) {
        var taken = 0
        while taken < count, let (p, key) = stale.first {
            stale.removeFirst()
            guard changes.items[p]?[key] == nil, let state = partitions[p]?.state(key),
                  state.predictedBy != model.version else { continue }
            var change = Changes.Change(before: RollupTable.Contribution(state, fields: rollupFields))
            change.recompute = true
            change.statics = true
            changes.items[p, default: [:]][key] = change
            taken += 1
        }
    }

    // MARK: Applying events

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

    struct ApplyError: Error, CustomStringConvertible {
        let description: String
        var cause = DeadLetterCause.invalidEvent
    }

    /// What an input event changes of its item.
    enum Input {
        case profile(ItemProfile)
        case day(Int, buyers: Bool, values: [Float])
        case activity(ActivityOffer)
    }

    /// The daily events, most of the input, are read without a JSON tree when they are in their common form.
    func decode(_ message: InputMessage) throws -> (ItemKey, Input)? {
        if let daily = decoder.decodeDaily(message.value) {
            let (slots, count) = daily.part == .sales ? (salesSlots, nDis) : (bucketSlots, nU)
            var values = [Float](repeating: .nan, count: count)
            for (value, slot) in zip(daily.values, slots) where !value.isNaN {
                if let slot { values[slot] = Float(value) }
            }
            return (ItemKey(promotionID: daily.promotionID, itemID: daily.itemID),
                    .day(daily.day, buyers: daily.part == .buyers, values: values))
        }
        let event: Event
        do { event = try decoder.decode(message.value) } catch { throw ApplyError(description: "\(error)") }
        let input: Input
        switch event {
        case .profile(let e): input = .profile(e)
        case .sales(let e): input = .day(e.day, buyers: false, values: mapper.vector(.dis, e.sales))
        case .buyers(let e): input = .day(e.day, buyers: true, values: mapper.vector(.du, e.buyers))
        case .activity(let e): input = .activity(e)
        // Outcomes are labels: read by the backtest and the fine-tuner, not by the processor.
        case .outcome: return nil
        default: throw ApplyError(description: "schema: \(event.schema) is not an input event", cause: .notAnInput)
        }
        return (event.itemKey!, input)
    }

    func apply(_ message: InputMessage, nowMs: Int64, changes: inout Changes) throws {
        guard let (itemKey, input) = try decode(message) else { return }
        let itemID = itemKey.itemID
        // The key places the item's state in this partition; a mismatch would split it across partitions.
        guard let key = message.key, key.elementsEqual(itemID.utf8) else {
            throw ApplyError(description: "key: must equal item_id \(quoted(itemID)), got \(message.key.map { quoted($0) } ?? "none")",
                             cause: .wrongKey)
        }
        let partition = message.partition
        // Changed in place: one lookup per table, no copies.
        let applied = partitions[partition, default: PartitionState()].modify(itemKey, make: {
            ItemState(key: itemKey, siiCount: model.config.siiFields.count, nSis: model.config.count(.sis), nU: nU)
        }) { state, waiting in apply(input, to: &state, waiting: &waiting, nowMs: nowMs) }
        guard let (before, recompute, statics) = applied else { return }
        Self.inPlace(&changes.items[partition, default: [:]][itemKey, default: Changes.Change(before: before)]) {
            $0.inputs = true
            $0.recompute = $0.recompute || recompute
            $0.statics = $0.statics || statics
        }
    }

    /// Changes the item's inputs; nil when they stay as they were. Returns the item's rollup contribution before,
    /// whether its model state must be recomputed, and whether its profile or activity changed.
    func apply(_ input: Input, to state: inout ItemState, waiting: inout PartitionState.Waiting,
               nowMs: Int64) -> (before: RollupTable.Contribution, recompute: Bool, statics: Bool)? {
        let before = RollupTable.Contribution(state, fields: rollupFields)
        var recompute = false, changed = false, statics = false
        switch input {
        case .profile(let e):
            let sii = mapper.siiIDs(e.ids), sis = mapper.vector(.sis, e.sis), su = mapper.vector(.su, e.su ?? [:])
            changed = !state.hasProfile || sii != state.sii || !sameBits(sis, state.sis) || !sameBits(su, state.su)
            // su steers the attention of every day already applied.
            recompute = !sameBits(su, state.su)
            statics = true
            (state.hasProfile, state.sii, state.sis, state.su) = (true, sii, sis, su)
        case .day(let day, let buyers, let values):
            let applied = state.hot?.appliedDays.contains(UInt16(day)) ?? false
            changed = state.store(day: day, buyers: buyers, values: values, nDis: nDis, nU: nU)
            recompute = changed && applied
        case .activity(let e):
            let act = mapper.vector(.act, e.features)
            changed = state.activityID != e.activityID || state.act.map { !sameBits($0, act) } ?? true
            statics = true
            (state.activityID, state.act) = (e.activityID, act)
        }
        guard changed else { return nil }
        let waitingSince = state.pendingSince
        state.updatePending(nowMs: nowMs)
        if let since = state.pendingSince, since != waitingSince { waiting.append((since, state.key)) }
        return (before, recompute, statics)
    }

    /// Works on a value in place: one dictionary access for several changes of an entry, and a state in an array
    /// read without the defensive copy a shared read of it would make.
    static func inPlace<T, R>(_ value: inout T, _ body: (inout T) -> R) -> R { body(&value) }

    /// Items whose grace period ran out by `nowMs`: from the front of each partition's queue, in the order their
    /// grace periods started, so a call looks at no more items than it expires (plus stale entries once).
    func expirePending(nowMs: Int64, changes: inout Changes) {
        for p in Array(partitions.keys) {
            guard let due = partitions[p]!.waiting.first, nowMs - due.since >= options.gracePeriodMs else { continue }
            var table = partitions.removeValue(forKey: p)!
            defer { partitions[p] = table }
            while let (since, key) = table.waiting.first, nowMs - since >= options.gracePeriodMs {
                table.waiting.removeFirst()
                // A stale entry: the item's buyers came, or a later day restarted its clock.
                guard let state = table.state(key), state.pendingSince == since else { continue }
                if changes.items[p]?[key] == nil {
                    changes.items[p, default: [:]][key] = Changes.Change(before: RollupTable.Contribution(state, fields: rollupFields))
                }
                table.put(table.take(key)!)
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

    /// An item to step: its state, taken out of its table while it is computed, and the days to step it through.
    struct Job {
        var partition: Int32
        var state: ItemState
        var steps: [Int]
        /// Stepped from day zero (the stored model state does not cover a prefix of `steps`).
        var fresh: Bool
        var change: Changes.Change
    }

    func compute(_ changes: Changes, nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = []
        var jobs: [Job] = []
        for (p, items) in changes.items {
            var table = partitions.removeValue(forKey: p)!
            for (key, change) in items {
                var job = Job(partition: p, state: table.take(key)!, steps: [], fresh: true, change: change)
                let (included, applied) = Self.inPlace(&job.state) { state in
                    (includedDays(state, nowMs: nowMs), state.hot.flatMap { $0.modelVersion == model.version ? $0.appliedDays : nil })
                }
                job.steps = included
                if let applied, !change.recompute, included.count >= applied.count,
                   zip(included, applied).allSatisfy({ $0 == Int($1) }) {
                    job.steps.removeFirst(applied.count)
                    job.fresh = false
                }
                // Without a new day, a changed profile or activity, the prediction stays as it is (and so do the
                // rollups): a day waiting for its buyers only needs its sales stored durably; a grace period that
                // ran out on an applied day needs nothing.
                if !job.fresh, job.steps.isEmpty, !change.statics {
                    if change.inputs {
                        out.append(OutputRecord(kind: .changelog, partition: p, key: Self.changelogKey(key),
                                                value: Self.inPlace(&job.state) { StateCodec.encode($0, provenance: provenance(of: table)) },
                                                statePartition: p))
                    }
                    table.put(job.state.moveOut())
                    continue
                }
                jobs.append(job)
            }
            partitions[p] = table
        }
        let timestamp = Self.timestamp(nowMs)
        out.reserveCapacity(out.count + jobs.count * 2)
        // Longest first, so the items still stepping on step t are a prefix of each chunk.
        let order = jobs.indices.sorted { (jobs[$0].steps.count, $1) > (jobs[$1].steps.count, $0) }
        for start in stride(from: 0, to: order.count, by: options.batchRows) {
            step(order[start..<min(start + options.batchRows, order.count)], of: &jobs, timestamp: timestamp, out: &out)
        }
        // Back into their tables (jobs are grouped by partition), with their new contributions to the rollups.
        let changedKeys = jobs.map(\.state.key)
        var index = 0
        while index < jobs.count {
            let p = jobs[index].partition
            var table = partitions.removeValue(forKey: p)!
            while index < jobs.count, jobs[index].partition == p {
                let state = jobs[index].state.moveOut()
                table.rollups.replace(jobs[index].change.before, with: RollupTable.Contribution(state, fields: rollupFields),
                                      promotion: state.key.promotionID)
                table.put(state)
                index += 1
            }
            partitions[p] = table
        }
        publishRollups(nowMs: nowMs, timestamp: timestamp, out: &out)
        coolDown(keeping: changedKeys)
        return out
    }

    /// The sums that changed since they were last published, at most once per `rollupIntervalMs` per partition:
    /// a seller's sum moves with every item of the seller, and one record per interval says as much.
    func publishRollups(nowMs: Int64, timestamp: String, out: inout [OutputRecord]) {
        for p in partitions.keys.sorted() where partitions[p]!.rollups.isDue(nowMs: nowMs, interval: options.rollupIntervalMs) {
            var table = partitions.removeValue(forKey: p)!
            out += table.rollups.flush(partition: p, nowMs: nowMs, timestamp: timestamp)
            partitions[p] = table
        }
    }

    /// Turns hot items into their compact form when there are more than `hotItems`, keeping the items just changed.
    /// Down to 90%, so that one call encodes a tenth of them at most (a pause of a fraction of a second at 200,000).
    func coolDown(keeping changed: [ItemKey]) {
        var hot = partitions.values.reduce(0) { $0 + $1.hotCount }
        let target = options.hotItems * 9 / 10
        guard hot > options.hotItems else { return }
        let recent = Set(changed)
        for p in Array(partitions.keys) where hot > target {
            var table = partitions.removeValue(forKey: p)!
            hot -= table.cool(count: hot - target, keeping: recent)
            partitions[p] = table
        }
    }

    /// Steps the jobs at `chunk` (longest first) and updates their states: the new model state, sequence number,
    /// last GMV and version; emits each one's prediction and changelog record.
    private func step(_ chunk: ArraySlice<Int>, of jobs: inout [Job], timestamp: String, out: inout [OutputRecord]) {
        let results = jobs.withUnsafeMutableBufferPointer { evaluate(chunk, of: $0) }
        for (i, (hot, p)) in zip(chunk, results) {
            let (fresh, partition) = (jobs[i].fresh, jobs[i].partition)
            // Read and written in place: reading a state out of an array element copies all of it.
            Self.inPlace(&jobs[i].state) { state in
                if let reason = p.notFiniteReason {
                    // Not published: the inputs stay durable; the model state is dropped, so that the item is
                    // computed afresh from its days once they change (an incremental step from a non-finite state
                    // would stay non-finite).
                    state.hot = nil
                    withheld.append((partition, state.key, reason))
                    withheldCount += 1
                    out.append(OutputRecord(kind: .changelog, partition: partition, key: Self.changelogKey(state.key),
                                            value: StateCodec.encode(state, provenance: provenance(of: partitions[partition])),
                                            statePartition: partition))
                    return
                }
                let previous = fresh ? [] : state.hot?.appliedDays ?? []
                state.hot = hot
                state.hot!.appliedDays = previous + hot.appliedDays
                state.sequence += 1
                state.lastGMV = p.gmv
                state.predictedBy = model.version
                let applied = state.hot!.appliedDays.map(Int.init)
                let event = PredictionEvent(p, key: state.key, modelVersion: model.version, activityID: state.activityID,
                                            producedAt: timestamp, asOfDay: applied.last, sequence: state.sequence,
                                            daysWithoutBuyers: applied.filter { !state.hasBuyers(day: $0) })
                out.append(OutputRecord(kind: .prediction, partition: nil, key: Array(state.key.itemID.utf8),
                                        value: Event.prediction(event).encoded(), statePartition: partition))
                out.append(OutputRecord(kind: .changelog, partition: partition, key: Self.changelogKey(state.key),
                                        value: StateCodec.encode(state, provenance: provenance(of: partitions[partition])),
                                            statePartition: partition))
            }
        }
    }

    /// Steps the jobs at `chunk` (longest first) as one batch per day: each job's new model state (its
    /// `appliedDays` holding only the days stepped now) and prediction. Changes nothing.
    /// (Mutable only so that the states are read in place: calling a method of a state read from a buffer or
    /// an array copies all of it first.)
    private func evaluate(_ chunk: ArraySlice<Int>, of jobs: UnsafeMutableBufferPointer<Job>) -> [(HotState, Prediction)] {
        // A local copy: calling into a class's stored struct would copy it per call.
        let network = self.network
        let encoded = chunk.map { i in
            let steps = jobs[i].steps
            return network.encode(Self.inPlace(&jobs[i].state) { $0.rawItem(days: steps, nDis: nDis, nU: nU) })
        }
        var batch = ItemBatch(network: network)
        batch.append(contentsOf: encoded, network: network)
        let hd = network.hidden
        for (row, i) in chunk.enumerated() where !jobs[i].fresh {
            guard let hot = jobs[i].state.hot else { continue }
            batch.days[row] = hot.appliedDays.count
            batch.h.replaceSubrange((row * hd)..<((row + 1) * hd), with: hot.h)
            batch.acc.replaceSubrange((row * hd)..<((row + 1) * hd), with: hot.acc)
            batch.maxScore[row] = hot.maxScore
            batch.scoreSum[row] = hot.scoreSum
        }
        let k = network.inputWidth
        let longest = chunk.first.map { jobs[$0].steps.count } ?? 0
        var x = [Float](repeating: 0, count: chunk.count * k)
        for t in 0..<longest {
            let active = chunk.prefix { jobs[$0].steps.count > t }.count
            for row in 0..<active {
                x.replaceSubrange((row * k)..<((row + 1) * k), with: encoded[row].dayInputs[(t * k)..<((t + 1) * k)])
            }
            scorer.advance(&batch, rows: active, x: x)
        }
        let predictions = scorer.predictions(batch, rows: chunk.count)
        return zip(chunk, predictions).enumerated().map { row, item in
            (HotState(modelVersion: model.version, appliedDays: jobs[item.0].steps.map { UInt16($0) },
                      h: Array(batch.h[(row * hd)..<((row + 1) * hd)]), acc: Array(batch.acc[(row * hd)..<((row + 1) * hd)]),
                      maxScore: batch.maxScore[row], scoreSum: batch.scoreSum[row]),
             item.1)
        }
    }

    /// Every item's prediction as it was (or would have been) on `day`: computed afresh from its stored days up to
    /// that day, by the same batched code, without changing any state. For backtests.
    public func predictions(asOfDay day: Int) -> [PredictionEvent] {
        var jobs: [Job] = []
        for (p, table) in partitions {
            for state in table.allStates() {
                jobs.append(Job(partition: p, state: state, steps: includedDays(state, nowMs: .max).filter { $0 <= day },
                                fresh: true, change: Changes.Change(before: RollupTable.Contribution(state, fields: rollupFields))))
            }
        }
        let order = jobs.indices.sorted { (jobs[$0].steps.count, jobs[$0].state.key) > (jobs[$1].steps.count, jobs[$1].state.key) }
        var out: [PredictionEvent] = []
        for start in stride(from: 0, to: order.count, by: options.batchRows) {
            let chunk = order[start..<min(start + options.batchRows, order.count)]
            for (i, (hot, p)) in zip(chunk, jobs.withUnsafeMutableBufferPointer { evaluate(chunk, of: $0) })
            where p.notFiniteReason == nil {
                let state = jobs[i].state
                out.append(PredictionEvent(p, key: state.key, modelVersion: model.version, activityID: state.activityID,
                                           producedAt: "", asOfDay: hot.appliedDays.last.map(Int.init),
                                           daysWithoutBuyers: hot.appliedDays.map(Int.init).filter { !state.hasBuyers(day: $0) }))
            }
        }
        return out
    }

    public static func changelogKey(_ key: ItemKey) -> [UInt8] { Array("\(key.promotionID)/\(key.itemID)".utf8) }

    func deadLetter(_ message: InputMessage, reason: String, cause: DeadLetterCause, nowMs: Int64) -> OutputRecord {
        let letter = DeadLetter(sourceTopic: message.topic, partition: Int(message.partition), offset: message.offset,
                                key: message.key, value: message.value, reason: reason,
                                failedAt: Self.timestamp(nowMs), consumer: options.consumer)
        return OutputRecord(kind: .deadLetter, partition: nil, key: message.key ?? [], value: Event.deadLetter(letter).encoded(),
                            statePartition: message.partition, deadLetterCause: cause)
    }

    static func timestamp(_ ms: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}

public struct StateSizes: Sendable, Equatable {
    public var hot = 0, compact = 0, compactBytes = 0
}

/// The items of one input partition: recently changed items whole ("hot"), the others as their changelog bytes
/// without the model state ("cold", about 60% of the size), recomputed from their inputs when they change again.
struct PartitionState {
    private var hot: [ItemKey: ItemState] = [:]
    private var cold: [ItemKey: [UInt8]] = [:]
    /// Items whose latest day waits for its buyer profile, by when that started (stale entries are skipped).
    typealias Waiting = FIFO<(since: Int64, key: ItemKey)>
    var waiting = Waiting()
    var rollups = RollupTable()
    /// Per input topic (`ProcessorOptions.inputTopics`), the next offset after what was applied.
    var positions: [Int64] = []

    var count: Int { hot.count + cold.count }
    var hotCount: Int { hot.count }
    var compactBytes: Int { cold.values.reduce(0) { $0 + $1.count } }

    func state(_ key: ItemKey) -> ItemState? {
        hot[key] ?? cold[key].map { try! StateCodec.decode($0) }
    }

    /// Removes an item to change it; `put` it back.
    mutating func take(_ key: ItemKey) -> ItemState? {
        hot.removeValue(forKey: key) ?? cold.removeValue(forKey: key).map { try! StateCodec.decode($0) }
    }

    /// Changes an item in place, making it whole first when it is compact, or making it with `make` when new.
    mutating func modify<R>(_ key: ItemKey, make: () -> ItemState,
                            _ body: (inout ItemState, inout Waiting) -> R) -> R {
        if let i = hot.index(forKey: key) { return body(&hot.values[i], &waiting) }
        var state = cold.removeValue(forKey: key).map { try! StateCodec.decode($0) } ?? make()
        let result = body(&state, &waiting)
        hot[key] = state.moveOut()
        return result
    }

    /// Keeps an item whole (replacing its compact form, if it had one).
    mutating func put(_ state: consuming ItemState) {
        let key = state.key
        if !cold.isEmpty { cold[key] = nil }
        hot[key] = consume state
    }

    mutating func putCold(_ state: ItemState) { cold[state.key] = StateCodec.encode(state) }

    mutating func putCold(key: ItemKey, bytes: [UInt8]) {
        hot[key] = nil
        cold[key] = bytes
    }

    /// Every item, the cold ones decoded one at a time.
    func allStates() -> some Sequence<ItemState> { Array(hot.values) + Array(coldStates()) }

    /// Every cold item, decoded one at a time.
    func coldStates() -> some Sequence<ItemState> { cold.values.lazy.map { try! StateCodec.decode($0) } }

    var hotStates: Dictionary<ItemKey, ItemState>.Values { hot.values }
    var coldKeys: Dictionary<ItemKey, [UInt8]>.Keys { cold.keys }

    /// Makes up to `count` hot items other than `recent` cold; returns how many.
    mutating func cool(count: Int, keeping recent: Set<ItemKey>) -> Int {
        let chosen = hot.keys.lazy.filter { !recent.contains($0) }.prefix(count)
        var cooled = 0
        for key in Array(chosen) {
            putCold(hot.removeValue(forKey: key)!)
            cooled += 1
        }
        return cooled
    }
}

extension ItemState {
    /// The day waiting for its buyers: the latest sales day, when it has none.
    var pendingDay: Int? {
        guard let last = dayFlags.lastIndex(where: { $0 & DayFlags.sales != 0 }),
              dayFlags[last] & DayFlags.buyers == 0 else { return nil }
        return Int(dayNumbers[last])
    }

    /// Starts the grace clock when the latest sales day lacks its buyers; stops it when they come.
    mutating func updatePending(nowMs: Int64) {
        guard let day = pendingDay else {
            pendingSince = nil
            waitingDay = nil
            return
        }
        if waitingDay != day {
            waitingDay = day
            pendingSince = nowMs
        }
    }
}

/// A first-in first-out queue (grace periods in the order they started; items to recompute).
struct FIFO<Element> {
    private var entries: [Element] = []
    private var head = 0

    var first: Element? { head < entries.count ? entries[head] : nil }
    var count: Int { entries.count - head }

    mutating func append(_ element: Element) { entries.append(element) }

    mutating func removeFirst() {
        head += 1
        // Reclaim the consumed front now and then, so the queue's memory follows what is in it.
        if head >= 4096 && head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
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

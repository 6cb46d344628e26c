import DINOP
import PromoEvents
import PromoFeatures

/// The item role's side of MARKETS.md `competition` in the stream. An item's prediction reads its group's items as
/// of a day, so the item role does not publish one per event: it sends the item's `f` as of each day it applies
/// (not yet closed) to the industry stage, and each input partition's day watermark; at a day's close the stage
/// answers every item seen by then (`CompetitionContext`), and the item role publishes its prediction as of that
/// day from the item's days up to it.
///
/// A partition's watermark for a promotion is the latest day of its sales events, less one (a partition's sales
/// topic brings a promotion's days in order), held below the first day of any item whose profile has not come, and
/// below any sales day an item lacks its buyers for, until they come or the item role's grace period has passed
/// since that day was last found lacking. The topics of a partition are read in no set order between them: buyers
/// read ahead of their sales do not move it, and sales read ahead of their buyers (which apply a day without its
/// buyers once a later day comes) do not pass them. Every item of the partition has then applied, and sent, its
/// days up to it with their inputs. A partition without an item of a promotion says nothing of it: the stage
/// closes its days after its grace period.
final class CompetitionLink {
    /// The stage's answers: an input topic of the item role.
    let contexts: String
    /// Where an item's raw market and industry ids sit among its `sii` ids.
    let marketField: Int?, industryField: Int?
    /// Set by the member once it knows the topics: watermarks go to every stage partition.
    var inputPartitions: Int32 = 0, stagePartitions: Int32 = 0
    /// Per partition and promotion: the latest sales day, the watermark sent, the latest day closed.
    private var latestDay: [Int32: [String: Int]] = [:], sent: [Int32: [String: Int]] = [:]
    private var closed: [Int32: [String: Int]] = [:]
    /// Per partition, items with a sales day but no profile yet, by their first sales day.
    private var withoutProfile: [Int32: [ItemKey: Int]] = [:]
    /// Per partition and promotion, each sales day some item lacks its buyers for: how many items, and when one
    /// was last found lacking them (nil: found by a restore, stamped by the next `watermarks` call).
    private var lackingBuyers: [Int32: [String: [Int: (items: Int, since: Int64?)]]] = [:]
    /// Per partition, each item's sales days counted in `lackingBuyers`.
    private var counted: [Int32: [ItemKey: [Int]]] = [:]
    /// Contexts computed from another model version than the one served, not published, since the start.
    private(set) var staleContexts = 0
    /// Contexts of a day whose close the item had published already, since the start.
    var repeatedContexts = 0

    init(contexts: String, config: ModelConfig) {
        self.contexts = contexts
        marketField = config.marketField
        industryField = config.siiFields.firstIndex(of: "industry")
    }

    func closedDay(partition: Int32, promotion: String) -> Int { closed[partition]?[promotion] ?? 0 }

    private func noteDay(_ day: Int, partition: Int32, promotion: String) {
        latestDay[partition, default: [:]][promotion] = max(latestDay[partition]?[promotion] ?? 0, day)
    }

    func noteClosed(_ day: Int, partition: Int32, promotion: String) {
        closed[partition, default: [:]][promotion] = max(closedDay(partition: partition, promotion: promotion), day)
    }

    func noteStale() { staleContexts += 1 }

    func forget(_ partition: Int32) {
        (latestDay[partition], sent[partition], closed[partition], withoutProfile[partition]) = (nil, nil, nil, nil)
        (lackingBuyers[partition], counted[partition]) = (nil, nil)
    }

    /// Notes what of the item, as it now stands, moves its partition's watermark: its latest sales day (sales
    /// only: a partition's buyers topic may be read days ahead of its sales topic; a restore finds the partition's
    /// latest day so), and what holds it: a missing profile, sales days without their buyers (found at `nowMs`;
    /// nil in a restore).
    func noteInputs(of state: ItemState, partition: Int32, nowMs: Int64?) {
        let salesDays = state.salesDays
        if let last = salesDays.last { noteDay(last, partition: partition, promotion: state.key.promotionID) }
        if !state.hasProfile, let first = salesDays.first {
            withoutProfile[partition, default: [:]][state.key] = first
        } else if withoutProfile[partition]?[state.key] != nil {
            withoutProfile[partition]?[state.key] = nil
        }
        let lacking = state.salesDaysWithoutBuyers, before = counted[partition]?[state.key] ?? []
        guard lacking != before else { return }
        let promotion = state.key.promotionID
        var days = lackingBuyers[partition]?[promotion] ?? [:]
        for day in before where !lacking.contains(day) {
            guard let entry = days[day] else { continue }
            days[day] = entry.items > 1 ? (entry.items - 1, entry.since) : nil
        }
        for day in lacking where !before.contains(day) {
            let entry = days[day]
            days[day] = ((entry?.items ?? 0) + 1, nowMs.map { max(entry?.since ?? $0, $0) })
        }
        lackingBuyers[partition, default: [:]][promotion] = days.isEmpty ? nil : days
        counted[partition, default: [:]][state.key] = lacking.isEmpty ? nil : lacking
    }

    /// The earliest sales day of the partition and promotion an item lacks its buyers for, within `graceMs` of
    /// when one was last found lacking them.
    func earliestLackingBuyers(partition: Int32, promotion: String, nowMs: Int64, graceMs: Int64) -> Int? {
        guard var days = lackingBuyers[partition]?[promotion] else { return nil }
        var earliest: Int?
        for (day, entry) in days {
            let since = entry.since ?? nowMs
            if entry.since == nil { days[day] = (entry.items, nowMs) }
            if nowMs - since < graceMs { earliest = min(earliest ?? day, day) }
        }
        lackingBuyers[partition]?[promotion] = days
        return earliest
    }

    /// The earliest first sales day of an item of the partition and promotion without its profile.
    func earliestWithoutProfile(partition: Int32, promotion: String) -> Int? {
        withoutProfile[partition]?.lazy.filter { $0.key.promotionID == promotion }.map(\.value).min()
    }

    /// The item's `f` as of each day, to the stage partition of its industry.
    func vectors(_ vectors: [(day: Int, f: [Float])], of state: ItemState, version: Int, partition: Int32) -> [OutputRecord] {
        let market = marketField.flatMap { state.sii[$0] } ?? "", industry = industryField.flatMap { state.sii[$0] } ?? ""
        let promotion = state.key.promotionID
        let key = CompetitionCodec.industryKey(promotion: promotion, industry: industry)
        return vectors.map {
            let vector = CompetitionVector(item: state.key.itemID, promotion: promotion, market: market, industry: industry,
                                           day: $0.day, f: $0.f, version: version, itemPartition: partition)
            return OutputRecord(kind: .competitionVector, partition: nil, key: key, value: CompetitionCodec.encode(vector),
                                statePartition: partition)
        }
    }

    /// The watermarks that moved, each to every stage partition. `graceMs`: how long a day waits for its buyers.
    func watermarks(nowMs: Int64, graceMs: Int64) -> [OutputRecord] {
        guard stagePartitions > 0, inputPartitions > 0 else { return [] }
        var out: [OutputRecord] = []
        for (p, days) in latestDay.sorted(by: { $0.key < $1.key }) {
            for (promotion, latest) in days.sorted(by: { $0.key < $1.key }) {
                var day = latest - 1
                guard day > sent[p]?[promotion] ?? 0 else { continue }
                if let lacking = earliestLackingBuyers(partition: p, promotion: promotion, nowMs: nowMs, graceMs: graceMs) {
                    day = min(day, lacking - 1)
                }
                if let first = earliestWithoutProfile(partition: p, promotion: promotion) { day = min(day, first - 1) }
                guard day > sent[p]?[promotion] ?? 0 else { continue }
                sent[p, default: [:]][promotion] = day
                let value = CompetitionCodec.encode(DayWatermark(promotion: promotion, partition: p, partitions: inputPartitions, day: day))
                for s in 0..<stagePartitions {
                    out.append(OutputRecord(kind: .competitionVector, partition: s, key: Array(promotion.utf8), value: value,
                                            statePartition: p))
                }
            }
        }
        return out
    }
}

extension StreamProcessor {
    /// The predictions of items whose day closed: each item is computed afresh from its days up to the closed
    /// day, its heads reading the stage's `a` and `q`; published with `as_of_day` = that day, and the item's
    /// sequence number, GMV for the rollups and changelog record move on. A context of another model version than
    /// the one served is not published (the next close, after the swap's recomputations sent new `f`s, is).
    func publishClosed(_ contexts: [(context: CompetitionContext, message: InputMessage)], link: CompetitionLink,
                       nowMs: Int64) -> [OutputRecord] {
        // Day by day, so that an item's sequence numbers follow its days.
        let byDay = Dictionary(grouping: contexts, by: \.context.day)
        return byDay.keys.sorted().flatMap { publishClosed(day: $0, byDay[$0] ?? [], link: link, nowMs: nowMs) }
    }

    private func publishClosed(day: Int, _ contexts: [(context: CompetitionContext, message: InputMessage)],
                               link: CompetitionLink, nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = [], jobs: [StepJob] = []
        var taken = Set<ItemKey>()
        for (context, message) in contexts {
            let key = ItemKey(promotionID: context.promotion, itemID: context.item)
            link.noteClosed(day, partition: message.partition, promotion: context.promotion)
            guard let state = partitions[message.partition]?.state(key) else {
                out.append(encoder.deadLetter(message, reason: "no item \(quoted(context.item)) of promotion \(quoted(context.promotion)) in input partition \(message.partition): a context for an item this partition never had",
                                              cause: .invalidEvent, nowMs: nowMs))
                continue
            }
            // Once per item and day.
            guard (state.closedDay ?? 0) < day, taken.insert(key).inserted else {
                link.repeatedContexts += 1
                continue
            }
            guard context.version == model.version, context.a.count == context.q.count else {
                link.noteStale()
                continue
            }
            let steps = state.salesDays.filter { $0 <= day }
            guard !steps.isEmpty else { continue }
            jobs.append(StepJob(partition: message.partition, state: state, steps: steps, fresh: true,
                                attended: (context.a, context.q)))
        }
        let timestamp = encoder.timestamp(nowMs), version = model.version
        stepper.step(&jobs) { _, job, result in
            let p = result.prediction, table = partitions.table(job.partition), key = job.state.key
            if let reason = p.notFiniteReason {
                withheld.append((job.partition, key, reason))
                withheldCount += 1
                return
            }
            table.modify(key, make: { inputs.newState(key) }) { state in
                let before = RollupTable.Contribution(state, fields: rollupFields)
                state.sequence += 1
                state.lastGMV = p.gmv
                state.closedDay = day
                let event = PredictionEvent(p, key: key, modelVersion: version, activityID: state.activityID,
                                            producedAt: timestamp, asOfDay: day, sequence: state.sequence,
                                            daysWithoutBuyers: job.steps.filter { !state.hasBuyers(day: $0) },
                                            market: model.config.marketID(state.sii))
                out.append(OutputRecord(kind: .prediction, partition: nil, key: Array(key.itemID.utf8),
                                        value: Event.prediction(event).encoded(), statePartition: job.partition))
                out.append(encoder.changelog(state, partition: job.partition, positions: table.positions))
                table.rollups.replace(before, with: RollupTable.Contribution(state, fields: rollupFields), promotion: key.promotionID)
            }
        }
        return out
    }
}

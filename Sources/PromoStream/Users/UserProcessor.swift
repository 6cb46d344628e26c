import BOP
import Foundation
import PromoEvents

public struct UserProcessorOptions: Sendable {
    /// Named in dead letters: `<group>/<member>`.
    public var consumer = "promo"
    /// The application (consumer group) that changelog records name; a restore refuses records of another one.
    public var application = ""
    /// The purchases topic: the one input whose position changelog records carry.
    public var purchases = "promo.purchases"
    /// Items per recommendation.
    public var topK = 10
    /// Candidates per (promotion, market): the items with the highest predicted GMV.
    public var candidates = 100
    /// Users recomputed per `process` call for a candidate change or a restore, besides those who bought, and the
    /// most milliseconds a call spends on them (a batch must not outlast the group's poll interval).
    public var recomputePerCall = 200
    public var recomputeBudgetMs = 250
    /// A purchase dated further than this after the member's clock is a dead letter: it would stay the user's
    /// latest purchase, and pin their market, for good.
    public var futureToleranceMs: Int64 = 86_400_000

    public init() {}
}

/// The recommendation role's processing, free of Kafka (BOP.md served): purchases in, recommendations out.
///
/// Per user it keeps the latest `max_history` purchases (`PurchaseHistory`, one changelog record per change). The
/// candidates are `CandidateTable`'s, fed from `promo.predictions`. A purchase recomputes the user's
/// recommendation for every promotion with candidates in the user's market (their latest purchase's); a changed
/// candidate set queues every user of that market, and a restored partition queues its users (its previous owner's
/// queue died with it); queued users are recomputed `recomputePerCall` per call. Owned by one thread.
public final class UserProcessor {
    public let options: UserProcessorOptions
    public private(set) var recommender: Recommender
    public let table: CandidateTable
    private struct UserRef: Hashable { var partition: Int32; var user: ExactID }
    private struct Work: Hashable { var user: UserRef; var group: CandidateGroup }
    private var users: [Int32: [ExactID: PurchaseHistory]] = [:]
    private var positions: InputPositions
    private var committed: [Int32: Int64] = [:]
    private var marketUsers: [ExactID?: Set<UserRef>] = [:]
    private var queue = FIFO<Work>()
    private var queued = Set<Work>()
    private let decoder = EventDecoder()

    public init(model: BOPModel, options: UserProcessorOptions = UserProcessorOptions()) {
        self.options = options
        positions = InputPositions(topic: options.purchases)
        recommender = Recommender(model: model, topK: options.topK)
        table = CandidateTable(size: options.candidates)
    }

    public var userCount: Int { users.values.reduce(0) { $0 + $1.count } }
    /// Recommendations waiting to be recomputed.
    public var pendingCount: Int { queued.count }

    public func history(partition: Int32, user: String) -> PurchaseHistory? { users[partition]?[ExactID(user)] }

    // MARK: Candidates

    /// Takes predictions read from `promo.predictions` (any partition) at `atMs`; `refreshCandidates` applies them.
    public func apply(predictions: [PredictionEvent], atMs: Int64 = 0) {
        for p in predictions { table.apply(p, atMs: atMs) }
    }

    /// Refreshes the candidate sets whose predictions have settled (`CandidateTable.refresh`) and queues the users of
    /// every group whose candidates changed; returns those groups.
    @discardableResult
    public func refreshCandidates(nowMs: Int64 = .max, settleMs: Int64 = 0) -> [CandidateGroup] {
        let changed = table.refresh(nowMs: nowMs, settleMs: settleMs)
        for group in changed {
            for user in (marketUsers[marketKey(group.market)] ?? []).sorted(by: { ($0.partition, $0.user) < ($1.partition, $1.user) }) {
                enqueue(Work(user: user, group: group))
            }
        }
        return changed
    }

    private func marketKey(_ market: String?) -> ExactID? { market.map(ExactID.init) }

    private func enqueue(_ work: Work) {
        if queued.insert(work).inserted { queue.append(work) }
    }

    // MARK: Processing

    /// Applies purchases and returns what to publish: per changed user its history to the changelog and its
    /// recommendations; a dead letter per message that is not a valid purchase keyed by its user; then up to
    /// `recomputePerCall` queued recommendations.
    public func process(_ messages: [InputMessage], nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = []
        var changed: [UserRef] = [], seen = Set<UserRef>()
        for message in messages {
            positions.advance(past: message)
            do throws(ApplyError) {
                let purchase = try decodePurchase(message)
                let ref = UserRef(partition: message.partition, user: ExactID(purchase.userID))
                guard let at = UTCTimestamp.milliseconds(purchase.purchasedAt) else {
                    throw ApplyError(description: "purchased_at: not a UTC timestamp \(quoted(purchase.purchasedAt))")
                }
                guard at <= nowMs + options.futureToleranceMs else {
                    throw ApplyError(description: "purchased_at: \(purchase.purchasedAt) is more than \(options.futureToleranceMs / 3_600_000) hours after the member's clock (\(UTCTimestamp.string(nowMs)))")
                }
                var history = users[ref.partition]?[ref.user] ?? PurchaseHistory(user: purchase.userID)
                let before = history.market
                guard history.add(UserPurchase(item: purchase.itemID, market: purchase.market, atMs: at),
                                  limit: max(recommender.model.config.maxHistory, 1)) else { continue }
                users[ref.partition, default: [:]][ref.user] = history
                marketUsers[marketKey(before)]?.remove(ref)
                marketUsers[marketKey(history.market), default: []].insert(ref)
                if seen.insert(ref).inserted { changed.append(ref) }
            } catch {
                out.append(OutputEncoder.deadLetter(message, reason: error.description, cause: error.cause,
                                                    failedAt: UTCTimestamp.string(nowMs), consumer: options.consumer))
            }
        }
        let produced = UTCTimestamp.string(nowMs)
        for ref in changed {
            guard let history = users[ref.partition]?[ref.user] else { continue }
            out.append(OutputRecord(kind: .changelog, partition: ref.partition, key: Array(ref.user.value.utf8),
                                    value: HistoryCodec.encode(history, provenance: provenance(ref.partition)),
                                    statePartition: ref.partition))
            for group in table.groups(market: history.market) {
                queued.remove(Work(user: ref, group: group))
                out.append(recommendation(ref, history, group, trigger: .purchase, nowMs: nowMs, producedAt: produced))
            }
        }
        var budget = options.recomputePerCall
        let deadline = ContinuousClock.now + .milliseconds(options.recomputeBudgetMs)
        while budget > 0, ContinuousClock.now < deadline, let work = queue.first {
            queue.removeFirst()
            guard queued.remove(work) != nil, let history = users[work.user.partition]?[work.user.user],
                  marketKey(history.market) == marketKey(work.group.market) else { continue }
            out.append(recommendation(work.user, history, work.group, trigger: .candidates, nowMs: nowMs, producedAt: produced))
            budget -= 1
        }
        return out
    }

    /// A message dead-lettered without being applied (a poison pill); its partition's position moves past it.
    public func skip(_ message: InputMessage, reason: String, nowMs: Int64) -> OutputRecord {
        positions.advance(past: message)
        return OutputEncoder.poisonPill(message, reason: reason, nowMs: nowMs, consumer: options.consumer)
    }


    private func decodePurchase(_ message: InputMessage) throws(ApplyError) -> Purchase {
        let event: Event
        do { event = try decoder.decode(message.value) } catch { throw ApplyError(description: "\(error)") }
        guard case .purchase(let purchase) = event else {
            throw ApplyError(description: "schema: \(event.schema) is not an input of the recommendation role", cause: .notAnInput)
        }
        guard let key = message.key, key.elementsEqual(purchase.userID.utf8) else {
            throw ApplyError(description: "key: must equal user_id \(quoted(purchase.userID)), got \(message.key.map { quoted($0) } ?? "none")",
                             cause: .wrongKey)
        }
        return purchase
    }

    private func recommendation(_ ref: UserRef, _ history: PurchaseHistory, _ group: CandidateGroup,
                                trigger: Recommendation.Trigger, nowMs: Int64, producedAt: String) -> OutputRecord {
        let event = recommender.recommendation(history, group, candidates: table.candidates(group), trigger: trigger, atMs: nowMs,
                                               producedAt: producedAt)
        return OutputRecord(kind: .recommendation, partition: nil, key: Array(ref.user.value.utf8),
                            value: Event.recommendation(event).encoded(), statePartition: ref.partition)
    }

    private func provenance(_ partition: Int32) -> Provenance {
        Provenance(application: options.application, positions: [positions[partition]])
    }

    // MARK: Restoring

    /// Forgets partitions (revoked, or to be restored again after an aborted transaction).
    public func remove(partitions removed: some Sequence<Int32>) {
        for p in removed {
            for user in (users.removeValue(forKey: p) ?? [:]).values {
                marketUsers[marketKey(user.market)]?.remove(UserRef(partition: p, user: ExactID(user.user)))
            }
            positions.forget(p)
            committed[p] = nil
        }
        queued = queued.filter { users[$0.user.partition] != nil }
    }

    /// `committed`: the group's committed offset of the purchases topic in this partition; a record that carries a
    /// position beyond it was written by a transaction that did not commit, and is refused.
    public func startRestore(partition: Int32, committed: [Int64] = []) {
        remove(partitions: [partition])
        users[partition] = [:]
        self.committed[partition] = committed.first ?? 0
        positions[partition] = committed.first ?? 0
    }

    public func restore(partition: Int32, value: [UInt8]) throws {
        let (history, provenance) = try HistoryCodec.decode(value)
        try provenance.verify(application: options.application, committed: [committed[partition] ?? 0], topics: [options.purchases])
        let ref = UserRef(partition: partition, user: ExactID(history.user))
        if let old = users[partition]?[ref.user] { marketUsers[marketKey(old.market)]?.remove(ref) }
        users[partition, default: [:]][ref.user] = history
        marketUsers[marketKey(history.market), default: []].insert(ref)
    }

    /// Queues every user of the partition: what its previous owner had queued is lost.
    public func finishRestore(partition: Int32) { queueUsers(of: partition) }

    private func queueUsers(of partition: Int32) {
        for user in (users[partition] ?? [:]).keys.sorted() {
            let ref = UserRef(partition: partition, user: user)
            for group in table.groups(market: users[partition]?[user]?.market) { enqueue(Work(user: ref, group: group)) }
        }
    }

    // MARK: Model versions

    /// Serves `model` from the next recommendation on. When it scores differently from the one served (other sizes,
    /// markets or weights), every user is queued for every group of their market; a version that only renames the
    /// same weights (an item-model fine-tune of a combined file) queues nobody. Returns whether users were queued.
    @discardableResult
    public func swap(to model: BOPModel) -> Bool {
        let current = recommender.model
        recommender = Recommender(model: model, topK: options.topK)
        let same = current.config == model.config && current.markets.map { Array($0.utf8) } == model.markets.map { Array($0.utf8) }
            && current.repWidth == model.repWidth && current.values.elementsEqual(model.values) { $0.bitPattern == $1.bitPattern }
        guard !same else { return false }
        for partition in users.keys.sorted() { queueUsers(of: partition) }
        return true
    }
}

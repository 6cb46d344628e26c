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
    /// Users recomputed per `process` call for a candidate change or a restore, besides those who bought.
    public var recomputePerCall = 200

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
    public let recommender: Recommender
    public let table: CandidateTable
    private struct UserRef: Hashable { var partition: Int32; var user: String }
    private struct Work: Hashable { var user: UserRef; var group: CandidateGroup }
    private var users: [Int32: [String: PurchaseHistory]] = [:]
    /// Per partition, the next offset of the purchases topic (what its changelog records carry).
    private var positions: [Int32: Int64] = [:]
    private var committed: [Int32: Int64] = [:]
    private var marketUsers: [String?: Set<UserRef>] = [:]
    private var queue = FIFO<Work>()
    private var queued = Set<Work>()
    private let decoder = EventDecoder()
    private let formatter: ISO8601DateFormatter

    public init(model: BOPModel, options: UserProcessorOptions = UserProcessorOptions()) {
        self.options = options
        recommender = Recommender(model: model, topK: options.topK)
        table = CandidateTable(size: options.candidates)
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    }

    public var userCount: Int { users.values.reduce(0) { $0 + $1.count } }
    /// Recommendations waiting to be recomputed.
    public var pendingCount: Int { queued.count }

    public func history(partition: Int32, user: String) -> PurchaseHistory? { users[partition]?[user] }

    // MARK: Candidates

    /// Takes predictions read from `promo.predictions` (any partition); `refreshCandidates` applies them.
    public func apply(predictions: [PredictionEvent]) {
        for p in predictions { table.apply(p) }
    }

    /// Refreshes the candidate sets and queues the users of every group whose set changed; returns those groups.
    @discardableResult
    public func refreshCandidates() -> [CandidateGroup] {
        let changed = table.refresh()
        for group in changed {
            for user in (marketUsers[group.market] ?? []).sorted(by: { ($0.partition, $0.user) < ($1.partition, $1.user) }) {
                enqueue(Work(user: user, group: group))
            }
        }
        return changed
    }

    private func enqueue(_ work: Work) {
        if queued.insert(work).inserted { queue.append(work) }
    }

    // MARK: Processing

    /// Applies purchases and returns what to publish: per changed user its history to the changelog and its
    /// recommendations; a dead letter per message that is not a valid purchase keyed by its user; then up to
    /// `recomputePerCall` queued recommendations.
    public func process(_ messages: [InputMessage], nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = []
        // Per changed user, its latest purchase of the batch (the recommendation's `as_of`).
        var changed: [UserRef] = [], latest: [UserRef: (ms: Int64, text: String)] = [:]
        for message in messages {
            if message.topic == options.purchases { positions[message.partition] = max(positions[message.partition] ?? 0, message.offset + 1) }
            do throws(ApplyError) {
                let purchase = try decodePurchase(message)
                let ref = UserRef(partition: message.partition, user: purchase.userID)
                guard let at = UTCTimestamp.milliseconds(purchase.purchasedAt) else {
                    throw ApplyError(description: "purchased_at: not a UTC timestamp \(quoted(purchase.purchasedAt))")
                }
                var history = users[ref.partition]?[ref.user] ?? PurchaseHistory(user: ref.user)
                let before = history.market
                guard history.add(UserPurchase(item: purchase.itemID, market: purchase.market, atMs: at),
                                  limit: max(recommender.model.config.maxHistory, 1)) else { continue }
                users[ref.partition, default: [:]][ref.user] = history
                marketUsers[before]?.remove(ref)
                marketUsers[history.market, default: []].insert(ref)
                if latest[ref] == nil { changed.append(ref) }
                if at >= latest[ref]?.ms ?? .min { latest[ref] = (at, purchase.purchasedAt) }
            } catch {
                out.append(OutputEncoder.deadLetter(message, reason: error.description, cause: error.cause,
                                                    failedAt: timestamp(nowMs), consumer: options.consumer))
            }
        }
        let produced = timestamp(nowMs)
        for ref in changed {
            guard let history = users[ref.partition]?[ref.user] else { continue }
            out.append(OutputRecord(kind: .changelog, partition: ref.partition, key: Array(ref.user.utf8),
                                    value: HistoryCodec.encode(history, provenance: provenance(ref.partition)),
                                    statePartition: ref.partition))
            for group in table.groups(market: history.market) {
                queued.remove(Work(user: ref, group: group))
                out.append(recommendation(ref, history, group, trigger: .purchase, asOf: latest[ref]?.text ?? produced, producedAt: produced))
            }
        }
        var budget = options.recomputePerCall
        while budget > 0, let work = queue.first {
            queue.removeFirst()
            guard queued.remove(work) != nil, let history = users[work.user.partition]?[work.user.user],
                  history.market == work.group.market else { continue }
            out.append(recommendation(work.user, history, work.group, trigger: .candidates, asOf: produced, producedAt: produced))
            budget -= 1
        }
        return out
    }

    /// A message dead-lettered without being applied (a poison pill); its partition's position moves past it.
    public func skip(_ message: InputMessage, reason: String, nowMs: Int64) -> OutputRecord {
        if message.topic == options.purchases { positions[message.partition] = max(positions[message.partition] ?? 0, message.offset + 1) }
        return OutputEncoder.deadLetter(message, reason: reason, cause: .poisonPill, failedAt: timestamp(nowMs),
                                        consumer: options.consumer)
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
                                trigger: Recommendation.Trigger, asOf: String, producedAt: String) -> OutputRecord {
        let items = recommender.recommend(history, market: group.market, candidates: table.candidates(group))
        let event = Recommendation(userID: ref.user, market: group.market, promotionID: group.promotionID, items: items,
                                   modelVersion: max(recommender.model.version, 1), historyLength: recommender.historyLength(history),
                                   trigger: trigger, asOf: asOf, producedAt: producedAt)
        return OutputRecord(kind: .recommendation, partition: nil, key: Array(ref.user.utf8),
                            value: Event.recommendation(event).encoded(), statePartition: ref.partition)
    }

    private func provenance(_ partition: Int32) -> Provenance {
        Provenance(application: options.application, positions: [positions[partition] ?? 0])
    }

    func timestamp(_ ms: Int64) -> String { formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) }

    // MARK: Restoring

    /// Forgets partitions (revoked, or to be restored again after an aborted transaction).
    public func remove(partitions removed: some Sequence<Int32>) {
        for p in removed {
            for user in (users.removeValue(forKey: p) ?? [:]).values {
                marketUsers[user.market]?.remove(UserRef(partition: p, user: user.user))
            }
            positions[p] = nil
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
        if !provenance.application.isEmpty, !options.application.isEmpty, provenance.application != options.application {
            throw RestoreError.otherApplication(provenance.application, expected: options.application)
        }
        if let position = provenance.positions.first, position > committed[partition] ?? 0 {
            throw RestoreError.uncommitted(topic: options.purchases, position: position, committed: committed[partition] ?? 0)
        }
        let ref = UserRef(partition: partition, user: history.user)
        if let old = users[partition]?[history.user] { marketUsers[old.market]?.remove(ref) }
        users[partition, default: [:]][history.user] = history
        marketUsers[history.market, default: []].insert(ref)
    }

    /// Queues every user of the partition: what its previous owner had queued is lost.
    public func finishRestore(partition: Int32) {
        for user in (users[partition] ?? [:]).keys.sorted() {
            let ref = UserRef(partition: partition, user: user)
            for group in table.groups(market: users[partition]?[user]?.market) { enqueue(Work(user: ref, group: group)) }
        }
    }
}

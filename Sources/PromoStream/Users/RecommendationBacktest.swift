import Foundation
import PromoEvents

/// Scores recommendations against what each user bought on the promotion day: the recommendation role's backtest.
/// Each user's history is their purchases before the day; their list for a promotion is what the role would
/// publish at the day's start (the same `Recommender` and candidate table); a hit is a listed item the user bought
/// that day. Beside it, the same candidates ranked by predicted GMV alone (the list everyone would get).
public struct RecommendationBacktest: Sendable {
    /// Hit rate (users with at least one hit), precision, recall and NDCG at K, over users who bought on the day.
    public struct Figures: Sendable, Equatable {
        public var users = 0
        public var hitRate = 0.0, precision = 0.0, recall = 0.0, ndcg = 0.0

        public init() {}

        mutating func add(list: [String], bought: Set<ExactID>, k: Int) {
            let hits = list.prefix(k).enumerated().filter { bought.contains(ExactID($0.element)) }
            let ideal = (0..<min(bought.count, k)).reduce(0.0) { $0 + 1 / log2(Double($1) + 2) }
            users += 1
            hitRate += hits.isEmpty ? 0 : 1
            precision += Double(hits.count) / Double(max(k, 1))
            recall += Double(hits.count) / Double(max(bought.count, 1))
            ndcg += ideal > 0 ? hits.reduce(0.0) { $0 + 1 / log2(Double($1.offset) + 2) } / ideal : 0
        }

        var averaged: Figures {
            guard users > 0 else { return self }
            var f = self
            let n = Double(users)
            (f.hitRate, f.precision, f.recall, f.ndcg) = (hitRate / n, precision / n, recall / n, ndcg / n)
            return f
        }
    }

    /// Per promotion (and market): BOP's figures and the GMV ranking's.
    public struct Row: Sendable {
        public var group: CandidateGroup
        public var bop: Figures
        public var byGMV: Figures
    }

    public let recommender: Recommender

    public init(recommender: Recommender) { self.recommender = recommender }

    /// `dayStartMs`: the promotion day's first millisecond; purchases in the 24 hours from it are the truth, those
    /// before it the histories. Users without a purchase before the day, or none on it, are not scored.
    public func run(purchases: [Purchase], table: CandidateTable, dayStartMs: Int64) -> [Row] {
        let histories = PurchaseHistory.histories(purchases, limit: recommender.model.config.maxHistory, beforeMs: dayStartMs)
        var bought: [ExactID: Set<ExactID>] = [:]
        for p in purchases {
            guard let at = UTCTimestamp.milliseconds(p.purchasedAt), at >= dayStartMs, at - dayStartMs < 86_400_000 else { continue }
            bought[ExactID(p.userID), default: []].insert(ExactID(p.itemID))
        }
        var rows: [CandidateGroup: Row] = [:]
        let k = recommender.topK
        for user in bought.keys.sorted() {
            guard let history = histories[user], let day = bought[user] else { continue }
            for group in table.groups(market: history.market) {
                let candidates = table.candidates(group)
                let list = recommender.recommend(history, market: group.market, candidates: candidates).map(\.itemID)
                var row = rows[group] ?? Row(group: group, bop: Figures(), byGMV: Figures())
                row.bop.add(list: list, bought: day, k: k)
                row.byGMV.add(list: candidates.prefix(k).map(\.itemID), bought: day, k: k)
                rows[group] = row
            }
        }
        return rows.values.sorted { $0.group < $1.group }.map { Row(group: $0.group, bop: $0.bop.averaged, byGMV: $0.byGMV.averaged) }
    }
}

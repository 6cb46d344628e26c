import BOP
import Foundation
import PromoEvents

/// BOP.md's scoring of a user's history against a group's candidates: the top K by P(buy), ties by item id bytes.
/// The stream and `promo bop predict` both score through it, so that they agree to the bit.
public struct Recommender: Sendable {
    public let model: BOPModel
    let network: BOPNetwork<Float>
    public let topK: Int

    public init(model: BOPModel, topK: Int) {
        self.model = model
        network = BOPNetwork<Float>(model)
        self.topK = max(topK, 1)
    }

    /// The top items of `candidates` for a user with this history, offered in `market`. Candidates are scored in
    /// their id order, one batch, so that the same set gives the same bits whatever order it came in.
    public func recommend(_ history: PurchaseHistory, market: String?, candidates: [String]) -> [Recommendation.RecommendedItem] {
        let ordered = Set(candidates).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let purchases = history.purchases.map { Optional($0.item) }
        // (A weight file with non-finite values is refused when read; 0 keeps the order total regardless.)
        let probabilities = network.probabilities(ordered.map { model.sequence(purchases: purchases, candidate: $0, market: market) })
            .map { $0.isFinite ? $0 : 0 }
        let ranked = zip(ordered, probabilities).sorted { a, b in a.1 != b.1 ? a.1 > b.1 : a.0.utf8.lexicographicallyPrecedes(b.0.utf8) }
        return ranked.prefix(topK).map { Recommendation.RecommendedItem(itemID: $0.0, probability: $0.1) }
    }

    /// Purchases the scoring reads of this history (BOP.md: at most `max_history − 1`).
    public func historyLength(_ history: PurchaseHistory) -> Int { min(history.purchases.count, max(model.config.maxHistory - 1, 0)) }
}

extension Recommender {
    /// Each user's recommendation for every promotion with candidates in their market: what the recommendation
    /// role has published last once it has read the same purchases and predictions (`promo bop predict`).
    /// `asOf` is the user's latest purchase.
    public func recommendations(_ histories: [PurchaseHistory], table: CandidateTable, producedAt: String) -> [Recommendation] {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var out: [Recommendation] = []
        for history in histories.sorted(by: { $0.user.utf8.lexicographicallyPrecedes($1.user.utf8) }) {
            guard let last = history.purchases.last else { continue }
            let asOf = formatter.string(from: Date(timeIntervalSince1970: Double(last.atMs) / 1000))
            for group in table.groups(market: history.market) {
                out.append(Recommendation(userID: history.user, market: group.market, promotionID: group.promotionID,
                                          items: recommend(history, market: group.market, candidates: table.candidates(group)),
                                          modelVersion: max(model.version, 1), historyLength: historyLength(history),
                                          trigger: .purchase, asOf: asOf, producedAt: producedAt))
            }
        }
        return out
    }
}

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
        self.topK = min(max(topK, 1), Recommendation.maxItems)
    }

    /// The longest `max_history` served: a user's history is one changelog record, and 256 purchases with ids and
    /// markets of `Event.maxIDLength` characters stay under a Kafka message's default 1,000,000 bytes.
    public static let maxServedHistory = 256
    /// The most floats one candidate's pass may hold (16 MiB of them): its activations, n·(6d + d_ff), and one
    /// layer's attention weights, g·n². ACMR's sizes need 36,000.
    public static let maxPassFloats = 1 << 22

    /// Why `model` cannot be served (or nil): the recommendation role and `promo bop predict` refuse it.
    public static func servingProblem(_ model: BOPModel) -> String? {
        let c = model.config
        if c.maxHistory > maxServedHistory {
            return "max_history \(c.maxHistory) is above the \(maxServedHistory) a recommendation serves"
        }
        // (Validated sizes are below 2^24 each and n ≤ 256 here: no product overflows.)
        let floats = c.maxHistory * (6 * c.width + c.ffn) + c.heads * c.maxHistory * c.maxHistory
        if floats > maxPassFloats {
            return "a candidate's pass would hold \(floats) floats (max_history·(6·width + ffn) + heads·max_history²), above the \(maxPassFloats) a recommendation serves"
        }
        return nil
    }

    /// The top items of `candidates` for a user with this history, offered in `market`. Candidates are scored in
    /// their id order, one batch, so that the same set gives the same bits whatever order it came in. A candidate's
    /// `rep` enters its token when the model has `bop.rep.weight` of that width (BOP.md), and is ignored otherwise.
    public func recommend(_ history: PurchaseHistory, market: String?, candidates: [Candidate]) -> [Recommendation.RecommendedItem] {
        var seen = Set<ExactID>()
        let ordered = candidates.sorted { $0.itemID.utf8.lexicographicallyPrecedes($1.itemID.utf8) }
            .filter { seen.insert(ExactID($0.itemID)).inserted }
        let purchases = history.purchases.map { Optional($0.item) }
        // (A weight file with non-finite values is refused when read; 0 keeps the order total regardless.)
        let probabilities = network.probabilities(ordered.map {
            model.sequence(purchases: purchases, candidate: $0.itemID, market: market, rep: $0.rep)
        }).map { $0.isFinite ? $0 : 0 }
        let ranked = zip(ordered.map(\.itemID), probabilities).sorted { a, b in
            a.1 != b.1 ? a.1 > b.1 : a.0.utf8.lexicographicallyPrecedes(b.0.utf8)
        }
        return ranked.prefix(topK).map { Recommendation.RecommendedItem(itemID: $0.0, probability: $0.1) }
    }

    /// The user's recommendation for a group: `as_of` is their latest purchase for a purchase, `at` for a change
    /// of candidates.
    public func recommendation(_ history: PurchaseHistory, _ group: CandidateGroup, candidates: [Candidate],
                               trigger: Recommendation.Trigger, atMs: Int64, producedAt: String) -> Recommendation {
        let asOf = trigger == .purchase ? history.purchases.last?.atMs ?? atMs : atMs
        return Recommendation(userID: history.user, market: group.market, promotionID: group.promotionID,
                              items: recommend(history, market: group.market, candidates: candidates),
                              modelVersion: max(model.version, 1), historyLength: historyLength(history), trigger: trigger,
                              asOf: UTCTimestamp.string(asOf), producedAt: producedAt)
    }

    /// Purchases the scoring reads of this history (BOP.md: at most `max_history − 1`).
    public func historyLength(_ history: PurchaseHistory) -> Int { min(history.purchases.count, max(model.config.maxHistory - 1, 0)) }
}

extension Recommender {
    /// Each user's recommendation for every promotion with candidates in their market: what the recommendation
    /// role has published last once it has read the same purchases and predictions (`promo bop predict`).
    /// `asOf` is the user's latest purchase.
    public func recommendations(_ histories: [PurchaseHistory], table: CandidateTable, producedAt: String) -> [Recommendation] {
        var out: [Recommendation] = []
        for history in histories.sorted(by: { $0.user.utf8.lexicographicallyPrecedes($1.user.utf8) }) where !history.purchases.isEmpty {
            for group in table.groups(market: history.market) {
                out.append(recommendation(history, group, candidates: table.candidates(group), trigger: .purchase, atMs: 0,
                                          producedAt: producedAt))
            }
        }
        return out
    }
}

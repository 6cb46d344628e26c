import BOP
import DINOP
import Foundation
import PromoEvents
import PromoStream
import Testing

@Test("bop backtest: lists at the day's start scored against the day's purchases, BOP beside the GMV ranking")
func recommendationBacktest() throws {
    let model = try BOPModel.random(config: BOPConfig(width: 8, layers: 1, heads: 2, ffn: 16, maxHistory: 5, itemRows: 101),
                                    markets: ["de", "jp"], seed: 3)
    let table = CandidateTable(size: 4)
    for (i, item) in ["a", "b", "c", "d", "e"].enumerated() {
        table.apply(PredictionEvent(itemID: item, promotionID: "p1", modelVersion: 1, daysSeen: 1, gmv: Double(100 - i), bsp: 0.5,
                                    ss: 1, ssProbabilities: Array(repeating: 0.1, count: 10), producedAt: "2026-11-10T00:00:00Z",
                                    market: "de"))
    }
    table.refresh()
    func buy(_ user: String, _ item: String, _ at: String) -> Purchase { Purchase(userID: user, itemID: item, market: "de", purchasedAt: at) }
    let purchases = [
        buy("u1", "e", "2026-11-01T10:00:00Z"), buy("u1", "d", "2026-11-05T10:00:00Z"),
        buy("u1", "b", "2026-11-11T09:00:00Z"), buy("u1", "x", "2026-11-11T23:59:59.999Z"),
        buy("u1", "c", "2026-11-12T00:00:00Z"),  // the next day: not the truth, not the history
        buy("u2", "a", "2026-11-11T08:00:00Z"),  // no history: not scored
        buy("u3", "a", "2026-11-02T08:00:00Z"),  // nothing on the day: not scored
    ]
    let recommender = Recommender(model: model, topK: 2)
    let start = try #require(UTCTimestamp.milliseconds("2026-11-11T00:00:00Z"))
    let rows = RecommendationBacktest(recommender: recommender).run(purchases: purchases, table: table, dayStartMs: start)
    #expect(rows.count == 1 && rows.first?.group == CandidateGroup(promotionID: "p1", market: "de"))
    let row = try #require(rows.first)
    // By GMV the list is [a, b]: b is a hit at rank 2 of the 2 items bought.
    let ideal = 1 + 1 / log2(3.0)
    #expect(row.byGMV.users == 1 && row.byGMV.hitRate == 1 && row.byGMV.precision == 0.5 && row.byGMV.recall == 0.5)
    #expect(abs(row.byGMV.ndcg - (1 / log2(3.0)) / ideal) < 1e-12)
    // BOP's list, recomputed from u1's history before the day.
    let history = PurchaseHistory(user: "u1", purchases: [UserPurchase(item: "e", market: "de", atMs: start - 10 * 86_400_000 + 36_000_000),
                                                          UserPurchase(item: "d", market: "de", atMs: start - 6 * 86_400_000 + 36_000_000)])
    let list = recommender.recommend(history, market: "de", candidates: ["a", "b", "c", "d"].map { Candidate(itemID: $0) }).map(\.itemID)
    let hits = list.enumerated().filter { ["b", "x"].contains($0.element) }
    #expect(row.bop.users == 1 && row.bop.hitRate == (hits.isEmpty ? 0 : 1) && row.bop.precision == Double(hits.count) / 2)
    #expect(abs(row.bop.ndcg - hits.reduce(0.0) { $0 + 1 / log2(Double($1.offset) + 2) } / ideal) < 1e-12)
}

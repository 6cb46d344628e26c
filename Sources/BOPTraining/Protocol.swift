import DINOP
import Foundation

/// BOP.md's evaluation protocols: which interaction of each user is held out for validation and for test.
public enum HoldOutProtocol: String, Sendable, CaseIterable {
    /// ACMR's: a random pair held out; the model sees the user's other (training) interactions as history, in
    /// time order, whatever their dates.
    case random
    /// What a live service faces: the last interaction for test, the one before for validation (ties by item id
    /// bytes), history strictly before each: of earlier dates only.
    case timeOrdered = "time-ordered"
}

/// Where negatives (for training and for the rankings) are drawn from.
public enum NegativePool: String, Sendable, CaseIterable {
    /// BOP.md's: items of the user's market.
    case market
    /// ACMR's code (laowangzi/ACMR, `utils.py`: one item pool over every market loaded): items of any market, most of
    /// which the user's market never sold — an easier ranking, under which its Table 3 was measured.
    case allMarkets = "all-markets"
}

/// One held-out ranking: the user's history (oldest first), the held-out item and the 99 items of that market the
/// user never interacted with that it is ranked among.
public struct RankingCase: Sendable {
    public var user: String
    public var history: [String]
    public var item: String
    public var negatives: [String]
}

/// A training example's history and item: a purchase the model should predict from the user's other training
/// purchases (random protocol: the condition of its held-out items) or from the ones before it (time-ordered).
public struct TrainingPurchase: Sendable {
    public var user: String
    public var history: [String]
    public var item: String
}

/// One market's data under a protocol: training purchases, validation and test rankings, and the market's items.
public struct MarketSplit: Sendable {
    public let market: String
    public let training: [TrainingPurchase]
    public let validation: [RankingCase]
    public let test: [RankingCase]
    /// Every item of the market, sorted.
    public let items: [String]
    /// The items negatives are drawn from, sorted: the market's (BOP.md) or a wider pool (`NegativePool`).
    public let negativePool: [String]
    /// Each user's items (any of their interactions), for negative sampling.
    public let bought: [String: Set<String>]
    /// Training interactions per item: the popularity baseline's scores.
    public let popularity: [String: Int]

    /// Users with fewer than 3 interactions keep all of them for training (nothing to hold out). Negatives come from
    /// `pool` (sorted item ids; by default the market's items).
    public init(market: String, interactions: [Interaction], protocol: HoldOutProtocol, negatives: Int = 99,
                pool: [String]? = nil, seed: UInt64) {
        self.market = market
        var rng = SeededGenerator(seed: seed ^ fnv1a64("split-\(market)"))
        self.items = Array(Set(interactions.map(\.item))).sorted()
        let items = pool ?? self.items
        negativePool = items
        // Each user's interactions in time order, ties by item id bytes.
        var byUser: [String: [Interaction]] = [:]
        for i in interactions { byUser[i.user, default: []].append(i) }
        var training: [TrainingPurchase] = [], validation: [RankingCase] = [], test: [RankingCase] = []
        var bought: [String: Set<String>] = [:], popularity: [String: Int] = [:]
        for user in byUser.keys.sorted() {
            let ordered = (byUser[user] ?? []).sorted { a, b in
                a.time != b.time ? a.time < b.time : a.item.utf8.lexicographicallyPrecedes(b.item.utf8)
            }
            let sequence = ordered.map(\.item)
            // Time-ordered histories hold what was bought strictly before: XMarket dates are days, and a purchase
            // of the same day may have come after (its order among them is only the ids').
            var dayStart = Array(sequence.indices)
            for i in ordered.indices.dropFirst() where ordered[i].time == ordered[i - 1].time { dayStart[i] = dayStart[i - 1] }
            let mine = Set(sequence)
            bought[user] = mine
            func draw() -> [String] {
                var picked: [String] = [], seen = Set<String>()
                while picked.count < Swift.min(negatives, items.count - mine.count) {
                    let item = items[Int(rng.next() % UInt64(items.count))]
                    if !mine.contains(item) && seen.insert(item).inserted { picked.append(item) }
                }
                return picked
            }
            // Each training purchase is predicted under the condition its protocol's held-out items face: the user's
            // other training purchases (random: they hold later purchases too) or those strictly before it.
            func addTraining(_ kept: [Int]) {
                for (j, i) in kept.enumerated() {
                    let history = `protocol` == .random
                        ? (kept[..<j] + kept[(j + 1)...]).map { sequence[$0] } : kept.filter { $0 < dayStart[i] }.map { sequence[$0] }
                    training.append(TrainingPurchase(user: user, history: history, item: sequence[i]))
                    popularity[sequence[i], default: 0] += 1
                }
            }
            guard sequence.count >= 3 else {
                addTraining(Array(sequence.indices))
                continue
            }
            let (validationIndex, testIndex): (Int, Int)
            switch `protocol` {
            case .timeOrdered: (validationIndex, testIndex) = (sequence.count - 2, sequence.count - 1)
            case .random:
                let a = Int(rng.next() % UInt64(sequence.count))
                var b = Int(rng.next() % UInt64(sequence.count - 1))
                if b >= a { b += 1 }
                (validationIndex, testIndex) = (a, b)
            }
            let kept = sequence.indices.filter { $0 != validationIndex && $0 != testIndex }
            addTraining(kept)
            switch `protocol` {
            case .random:
                let trainingSequence = kept.map { sequence[$0] }
                validation.append(RankingCase(user: user, history: trainingSequence, item: sequence[validationIndex], negatives: draw()))
                test.append(RankingCase(user: user, history: trainingSequence, item: sequence[testIndex], negatives: draw()))
            case .timeOrdered:
                validation.append(RankingCase(user: user, history: Array(sequence[..<dayStart[validationIndex]]), item: sequence[validationIndex], negatives: draw()))
                test.append(RankingCase(user: user, history: Array(sequence[..<dayStart[testIndex]]), item: sequence[testIndex], negatives: draw()))
            }
        }
        self.training = training
        self.validation = validation
        self.test = test
        self.bought = bought
        self.popularity = popularity
    }
}

/// NDCG@5/10 and Recall@5/10 of held-out items over their rankings.
public struct RankingMetrics: Sendable, Equatable {
    public var ndcg5 = 0.0, ndcg10 = 0.0, recall5 = 0.0, recall10 = 0.0
    public var cases = 0

    public init() {}

    /// `ranks`: each held-out item's 0-based rank among its candidates (the number scored above it).
    public init(ranks: [Int]) {
        cases = ranks.count
        guard !ranks.isEmpty else { return }
        for rank in ranks {
            let gain = 1 / Foundation.log2(Double(rank) + 2)
            if rank < 5 { ndcg5 += gain; recall5 += 1 }
            if rank < 10 { ndcg10 += gain; recall10 += 1 }
        }
        let n = Double(ranks.count)
        (ndcg5, ndcg10, recall5, recall10) = (ndcg5 / n, ndcg10 / n, recall5 / n, recall10 / n)
    }

    /// The held-out item's rank: how many candidates score strictly above it, plus half of those that tie (so a
    /// constant scorer ranks it in the middle, not first).
    public static func rank(positive: Double, negatives: [Double]) -> Int {
        let above = negatives.filter { $0 > positive }.count, ties = negatives.filter { $0 == positive }.count
        return above + ties / 2
    }
}

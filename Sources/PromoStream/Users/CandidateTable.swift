import PromoEvents

/// A promotion's items in one market: what recommendations are chosen from.
public struct CandidateGroup: Hashable, Sendable, Comparable {
    public var promotionID: String
    /// nil: items of no market.
    public var market: String?

    public init(promotionID: String, market: String?) {
        (self.promotionID, self.market) = (promotionID, market)
    }

    // By bytes (`ExactID`); no market orders before every market.
    private var exact: (promotion: ExactID, market: ExactID?) { (ExactID(promotionID), market.map(ExactID.init)) }

    public static func == (a: Self, b: Self) -> Bool { a.exact == b.exact }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(exact.promotion)
        hasher.combine(exact.market)
    }

    public static func < (a: Self, b: Self) -> Bool {
        let (a, b) = (a.exact, b.exact)
        guard a.promotion == b.promotion else { return a.promotion < b.promotion }
        guard let bm = b.market else { return false }
        guard let am = a.market else { return true }
        return am < bm
    }
}

/// An item a recommendation may offer, with its DINOP `rep` as of its latest prediction (when the predictions
/// carry one: BOP.md's candidate-token term).
public struct Candidate: Hashable, Sendable {
    public var itemID: String
    public var rep: [Float]?

    public init(itemID: String, rep: [Float]? = nil) { (self.itemID, self.rep) = (itemID, rep) }

    public static func == (a: Self, b: Self) -> Bool { ExactID(a.itemID) == ExactID(b.itemID) && a.rep == b.rep }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ExactID(itemID))
        hasher.combine(rep)
    }
}

/// `promo.predictions` read as a table: each item's latest prediction (the highest `sequence`, else the latest
/// read), and per (promotion, market) the top `size` items by predicted GMV (ties by item id bytes): the candidates.
/// The top lists are refreshed on demand, so that a burst of predictions costs one sort per group; a refresh may
/// leave out the groups still taking predictions (the burst of a day's close in the item role), so that their users
/// are recomputed once the day is in, not at every refresh within it.
public final class CandidateTable {
    public let size: Int
    private struct Entry { var gmv: Double; var sequence: Int?; var rep: [Float]? }
    private struct ItemRef: Hashable { var promotionID: ExactID; var itemID: ExactID }
    private var entries: [CandidateGroup: [ExactID: Entry]] = [:]
    /// Where each item's latest prediction put it (an item's market may change with its profile).
    private var placement: [ItemRef: CandidateGroup] = [:]
    private var top: [CandidateGroup: [Candidate]] = [:]
    /// The groups with candidates, per market, in order: asked for every recommendation, so kept, not searched.
    private var marketGroups: [ExactID?: [CandidateGroup]] = [:]
    private var dirty = Set<CandidateGroup>()
    /// When each group first and last took a prediction since its last refresh (the caller's clock, ms).
    private var touched: [CandidateGroup: (first: Int64, last: Int64)] = [:]

    /// The most candidates per group: each is a scoring per user and recommendation.
    public static let largest = 10_000
    /// How many settle periods a group that keeps taking predictions waits at most.
    public static let maxSettles: Int64 = 10
    /// The longest settle period taken (a day), so that no time computed from it overflows.
    public static let longestSettleMs: Int64 = 86_400_000

    public init(size: Int) { self.size = min(max(size, 1), Self.largest) }

    /// Takes a prediction, read at `atMs`; returns false when it is older than the item's last one (a lower
    /// `sequence`) or its GMV is not finite.
    @discardableResult
    public func apply(_ p: PredictionEvent, atMs: Int64 = 0) -> Bool {
        guard p.gmv.isFinite else { return false }
        let item = ExactID(p.itemID), ref = ItemRef(promotionID: ExactID(p.promotionID), itemID: item)
        let group = CandidateGroup(promotionID: p.promotionID, market: p.market)
        if let previous = placement[ref] {
            if let old = entries[previous]?[item]?.sequence, let new = p.sequence, new < old { return false }
            if previous != group {
                entries[previous]?[item] = nil
                touch(previous, atMs)
            }
        }
        entries[group, default: [:]][item] = Entry(gmv: p.gmv, sequence: p.sequence, rep: p.rep?.map { Float($0) })
        placement[ref] = group
        touch(group, atMs)
        return true
    }

    private func touch(_ group: CandidateGroup, _ atMs: Int64) {
        dirty.insert(group)
        let seen = touched[group]
        touched[group] = (min(seen?.first ?? atMs, atMs), max(seen?.last ?? atMs, atMs))
    }

    /// Recomputes the top lists of groups that took predictions since the last refresh and none in the last
    /// `settleMs` before `nowMs`, or whose first such prediction is `settleMs` × `maxSettles` old (so that a steady
    /// trickle delays a group a bounded time); the others wait for a later refresh. With the defaults, every group.
    /// Returns the groups whose candidates changed: another set of items, or another `rep` of one (a new order of the
    /// same items changes no BOP score).
    public func refresh(nowMs: Int64 = .max, settleMs: Int64 = 0) -> [CandidateGroup] {
        let settle = min(max(settleMs, 0), Self.longestSettleMs)
        let settled = dirty.filter { group in
            guard let seen = touched[group] else { return true }
            return seen.last <= nowMs &- settle || seen.first <= nowMs &- settle * Self.maxSettles
        }
        guard !settled.isEmpty else { return [] }
        var changed: [CandidateGroup] = []
        for group in settled.sorted() {
            dirty.remove(group)
            touched[group] = nil
            let best = (entries[group] ?? [:]).sorted { a, b in
                a.value.gmv != b.value.gmv ? a.value.gmv > b.value.gmv : a.key < b.key
            }.prefix(size).map { Candidate(itemID: $0.key.value, rep: $0.value.rep) }
            if Set(best) != Set(top[group] ?? []) { changed.append(group) }
            top[group] = best.isEmpty ? nil : Array(best)
        }
        marketGroups = Dictionary(grouping: top.keys.sorted()) { $0.market.map(ExactID.init) }
        return changed
    }

    /// The candidates of a group as of the last refresh, by predicted GMV.
    public func candidates(_ group: CandidateGroup) -> [Candidate] { top[group] ?? [] }

    /// The groups of a market that have candidates, in order.
    public func groups(market: String?) -> [CandidateGroup] { marketGroups[market.map(ExactID.init)] ?? [] }

    public var itemCount: Int { placement.count }

    /// Groups whose new predictions wait to settle.
    public var unsettledCount: Int { dirty.count }
}

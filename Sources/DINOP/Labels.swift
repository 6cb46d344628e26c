/// Training targets of one item (MODEL.md's table of heads); nil where the label is unknown.
public struct ItemLabels: Sendable, Equatable, Codable {
    /// Promotion-day GMV, money scale.
    public var gmv: Double?
    public var bestSeller: Bool?
    /// Sale slot 1...10.
    public var slot: Int?
    public var joinedActivity: Bool?

    public init(gmv: Double? = nil, bestSeller: Bool? = nil, slot: Int? = nil, joinedActivity: Bool? = nil) {
        self.gmv = gmv
        self.bestSeller = bestSeller
        self.slot = slot
        self.joinedActivity = joinedActivity
    }
}

extension ItemLabels {
    /// Whether this item trains and scores `head`: it has the head's label, and for JA also an activity to score
    /// (the head's input is the activity's features).
    public func isLabelled(for head: Head, hasActivity: Bool) -> Bool {
        switch head {
        case .gmv: gmv != nil
        case .bsp: bestSeller != nil
        case .ss: slot != nil
        case .ja: joinedActivity != nil && hasActivity
        }
    }
}

/// The best-seller and sale-slot labels of MODEL.md, from a promotion's item GMVs.
public enum PromotionLabels {
    /// Item i is best-selling when the GMV of all items with GMV ≥ G_i sums to less than 20% of the total; its slot
    /// is R when that sum within its industry lies in ((R − 1)/10, R/10] of the industry's GMV. Items of equal GMV
    /// share the sum; an industry with no GMV puts all its items in slot 10.
    public static func compute(gmv: [Double], industry: [String]) -> (bestSeller: [Bool], slot: [Int]) {
        precondition(gmv.count == industry.count)
        let platform = atOrAbove(gmv, Array(gmv.indices))
        let total = gmv.reduce(0, +)
        let bestSeller = gmv.indices.map { platform[$0]! < 0.2 * total }
        var slot = [Int](repeating: 10, count: gmv.count)
        for members in Dictionary(grouping: gmv.indices, by: { industry[$0] }).values {
            let industryTotal = members.reduce(0) { $0 + gmv[$1] }
            guard industryTotal > 0, industryTotal.isFinite else { continue }
            let sums = atOrAbove(gmv, members)
            for i in members {
                let share = sums[i]! / industryTotal
                slot[i] = Swift.min(10, Swift.max(1, Int((share * 10).rounded(.up))))
            }
        }
        return (bestSeller, slot)
    }

    /// For each of `members`, the GMV sum of the members whose GMV is at least its own.
    private static func atOrAbove(_ gmv: [Double], _ members: [Int]) -> [Int: Double] {
        let sorted = members.sorted { gmv[$0] > gmv[$1] }
        var sums: [Int: Double] = [:]
        var running = 0.0
        var start = 0
        while start < sorted.count {
            var end = start
            while end < sorted.count && gmv[sorted[end]] == gmv[sorted[start]] {
                running += gmv[sorted[end]]
                end += 1
            }
            for k in start..<end { sums[sorted[k]] = running }
            start = end
        }
        return sums
    }
}

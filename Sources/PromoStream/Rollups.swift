import PromoEvents
import PromoFeatures

/// Predicted GMV summed per promotion over the platform, each industry and each seller, for one partition's
/// items (the paper's GMV at several granularities). A partition publishes its own sums, keyed
/// `<promotion_id>/<scope>/<id>/<partition>`; a reader adds the latest record of every partition.
struct RollupTable {
    struct Total {
        var gmv = 0.0
        var items = 0
    }

    /// By `<promotion_id>/<scope>/<id>`.
    private(set) var totals: [String: Total] = [:]
    private var parts: [String: (promotion: String, scope: String, id: String)] = [:]
    /// Sums changed since they were last published, and when that was.
    private var changed: Set<String> = []
    private var publishedAt: Int64 = .min

    /// What an item adds to the sums: its last predicted GMV and the industry and seller it belongs to.
    struct Contribution {
        var gmv: Double?
        var scopes: [(scope: String, id: String)]

        init(_ state: ItemState, fields: [String]) {
            gmv = state.lastGMV
            scopes = [("platform", "all")]
            guard gmv != nil else { return }
            for scope in ["industry", "seller"] {
                if let i = fields.firstIndex(of: scope), let id = state.sii[i], !id.isEmpty { scopes.append((scope, id)) }
            }
        }
    }

    /// Adds (`sign` 1) or takes away (−1) an item's contribution; returns the sums it touched.
    @discardableResult
    mutating func add(_ item: Contribution, promotion: String, sign: Int) -> [String] {
        guard let gmv = item.gmv else { return [] }
        return item.scopes.map { scope, id in
            let key = "\(promotion)/\(scope)/\(id)"
            parts[key] = (promotion, scope, id)
            var total = totals[key] ?? Total()
            total.items += sign
            total.gmv = total.items == 0 ? 0 : total.gmv + Double(sign) * gmv
            totals[key] = total
            changed.insert(key)
            return key
        }
    }

    mutating func markAllChanged() { changed = Set(totals.keys) }

    func isDue(nowMs: Int64, interval: Int64) -> Bool {
        !changed.isEmpty && (publishedAt == .min || nowMs - publishedAt >= interval)
    }

    /// One record per changed sum, in key order; the sums count as published.
    mutating func flush(partition: Int32, nowMs: Int64, timestamp: String) -> [OutputRecord] {
        defer {
            changed = []
            publishedAt = nowMs
        }
        return changed.sorted().map { record($0, partition: partition, timestamp: timestamp) }
    }

    func record(_ key: String, partition: Int32, timestamp: String) -> OutputRecord {
        let (promotion, scope, id) = parts[key]!
        let total = totals[key]!
        let event = Rollup(promotionID: promotion, scope: scope, id: id, partition: Int(partition), gmv: max(total.gmv, 0),
                           items: total.items, producedAt: timestamp)
        return OutputRecord(kind: .rollup, partition: nil, key: Array("\(key)/\(partition)".utf8),
                            value: Event.rollup(event).encoded())
    }
}

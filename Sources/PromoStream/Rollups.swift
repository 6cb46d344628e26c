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

    /// `<promotion_id>/<scope>/<id>`, kept apart so that updating a sum builds no text.
    struct Key: Hashable, Comparable {
        var promotion: String
        var scope: String
        var id: String

        static func < (a: Key, b: Key) -> Bool { (a.promotion, a.scope, a.id) < (b.promotion, b.scope, b.id) }
    }

    private(set) var totals: [Key: Total] = [:]
    /// Sums changed since they were last published, and when that was.
    private var changed: Set<Key> = []
    private var publishedAt: Int64 = .min

    /// Where the model config keeps the ids that name an item's industry and seller.
    struct Fields {
        var market: Int?
        var industry: Int?
        var seller: Int?

        init(_ siiFields: [String]) {
            market = siiFields.firstIndex(of: "market")
            industry = siiFields.firstIndex(of: "industry")
            seller = siiFields.firstIndex(of: "seller")
        }
    }

    /// What an item adds to the sums: its last predicted GMV and the market, industry and seller it belongs to.
    struct Contribution: Equatable {
        var gmv: Double?
        var market: String?
        var industry: String?
        var seller: String?

        init(_ state: ItemState, fields: Fields) {
            gmv = state.lastGMV
            guard gmv != nil else { return }
            func id(_ i: Int?) -> String? { i.flatMap { state.sii[$0] }.flatMap { $0.isEmpty ? nil : $0 } }
            market = id(fields.market)
            industry = id(fields.industry)
            seller = id(fields.seller)
        }

        func keys(promotion: String) -> [Key] {
            var keys = [Key(promotion: promotion, scope: "platform", id: "all")]
            if let market { keys.append(Key(promotion: promotion, scope: "market", id: market)) }
            if let industry { keys.append(Key(promotion: promotion, scope: "industry", id: industry)) }
            if let seller { keys.append(Key(promotion: promotion, scope: "seller", id: seller)) }
            return keys
        }
    }

    /// Adds (`sign` 1) or takes away (−1) an item's contribution.
    mutating func add(_ item: Contribution, promotion: String, sign: Int) {
        guard let gmv = item.gmv else { return }
        for key in item.keys(promotion: promotion) {
            update(key) { total in
                total.items += sign
                total.gmv = total.items == 0 ? 0 : total.gmv + Double(sign) * gmv
            }
        }
    }

    /// Moves an item's contribution from `before` to `after`: one update per sum when it stays in the same ones.
    mutating func replace(_ before: Contribution, with after: Contribution, promotion: String) {
        guard let old = before.gmv, let new = after.gmv, before.industry == after.industry, before.seller == after.seller else {
            add(before, promotion: promotion, sign: -1)
            add(after, promotion: promotion, sign: 1)
            return
        }
        guard old.bitPattern != new.bitPattern else { return }
        for key in after.keys(promotion: promotion) { update(key) { $0.gmv += new - old } }
    }

    private mutating func update(_ key: Key, _ body: (inout Total) -> Void) {
        body(&totals[key, default: Total()])
        changed.insert(key)
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

    func record(_ key: Key, partition: Int32, timestamp: String) -> OutputRecord {
        let total = totals[key]!
        let event = Rollup(promotionID: key.promotion, scope: key.scope, id: key.id, partition: Int(partition),
                           gmv: max(total.gmv, 0), items: total.items, producedAt: timestamp)
        // To the input's partition, like the changelog, not by key: members then never write to one partition of
        // the rollup topic at once, and the local broker defers a transaction's offset commit while another
        // transaction that wrote to the same partition is open (a killed member's stays open until it restarts).
        return OutputRecord(kind: .rollup, partition: partition, key: Array("\(key.promotion)/\(key.scope)/\(key.id)/\(partition)".utf8),
                            value: Event.rollup(event).encoded(), statePartition: partition)
    }
}

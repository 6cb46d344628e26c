import PromoEvents

/// One purchase as a user's history keeps it.
public struct UserPurchase: Sendable, Equatable {
    public var item: String
    public var market: String?
    /// `purchased_at` to the millisecond.
    public var atMs: Int64

    public init(item: String, market: String?, atMs: Int64) {
        (self.item, self.market, self.atMs) = (item, market, atMs)
    }

    /// BOP.md's order: by time, ties by the item id's bytes.
    static func precedes(_ a: UserPurchase, _ b: UserPurchase) -> Bool {
        a.atMs != b.atMs ? a.atMs < b.atMs : a.item.utf8.lexicographicallyPrecedes(b.item.utf8)
    }
}

/// A user's latest purchases in BOP.md's order, at most `limit` (the model's `max_history`): all that scoring reads.
public struct PurchaseHistory: Sendable, Equatable {
    public let user: String
    public private(set) var purchases: [UserPurchase] = []

    public init(user: String, purchases: [UserPurchase] = []) {
        self.user = user
        self.purchases = purchases
    }

    /// The market the user shops in now: their latest purchase's (nil: unlisted, or no purchase).
    public var market: String? { purchases.last?.market }

    /// Inserts a purchase in order and drops the oldest beyond `limit`. A purchase already held (same item, market
    /// and millisecond: the same event sent twice) changes nothing; returns whether the history changed.
    @discardableResult
    public mutating func add(_ purchase: UserPurchase, limit: Int) -> Bool {
        // Ids compare as bytes, as the model reads them (String's == would merge canonically equivalent ids).
        if purchases.contains(where: { $0.atMs == purchase.atMs && $0.item.utf8.elementsEqual(purchase.item.utf8)
                                       && ($0.market?.utf8).map { Array($0) } == (purchase.market?.utf8).map { Array($0) } }) {
            return false
        }
        let at = purchases.firstIndex { UserPurchase.precedes(purchase, $0) } ?? purchases.count
        // Older than every purchase kept, with the history full: it would be dropped at once.
        if at == 0, purchases.count >= limit { return false }
        purchases.insert(purchase, at: at)
        if purchases.count > limit { purchases.removeFirst(purchases.count - limit) }
        return true
    }
}

extension PurchaseHistory {
    /// Each user's history of these purchases (those before `beforeMs`, when given), as the role builds them.
    public static func histories(_ purchases: some Sequence<Purchase>, limit: Int, beforeMs: Int64? = nil) -> [ExactID: PurchaseHistory] {
        var histories: [ExactID: PurchaseHistory] = [:]
        for p in purchases {
            guard let at = UTCTimestamp.milliseconds(p.purchasedAt), at < beforeMs ?? .max else { continue }
            histories[ExactID(p.userID), default: PurchaseHistory(user: p.userID)].add(UserPurchase(item: p.itemID, market: p.market, atMs: at),
                                                                              limit: max(limit, 1))
        }
        return histories
    }
}

/// A user's history as a changelog record, keyed by user id: layout 1, the provenance (`Provenance`: application and
/// input positions) and the purchases.
enum HistoryCodec {
    static let layout: UInt8 = 1
    /// The most purchases a record may hold (a bound on what a corrupt record can make a restore allocate).
    static let largest = 1 << 16

    static func encode(_ history: PurchaseHistory, provenance: Provenance) -> [UInt8] {
        var w = ByteWriter()
        w.u8(layout)
        w.string(provenance.application)
        w.u8(UInt8(truncatingIfNeeded: min(provenance.positions.count, 255)))
        for position in provenance.positions.prefix(255) { w.i64(position) }
        w.string(history.user)
        w.u32(history.purchases.count)
        for p in history.purchases {
            w.string(p.item)
            w.optionalString(p.market)
            w.i64(p.atMs)
        }
        return w.buffer
    }

    static func decode(_ bytes: [UInt8]) throws -> (PurchaseHistory, Provenance) {
        var r = ByteReader(bytes)
        let v = try r.u8()
        guard v == layout else { throw StateCodecError("user history layout \(v), this build reads \(layout)") }
        let provenance = Provenance(application: try r.string(), positions: try (0..<Int(r.u8())).map { _ in try r.i64() })
        let user = try r.string()
        let count = try r.u32()
        guard count <= largest else { throw StateCodecError("a user history of \(count) purchases (at most \(largest))") }
        var purchases: [UserPurchase] = []
        for _ in 0..<count {
            purchases.append(UserPurchase(item: try r.string(), market: try r.optionalString(), atMs: try r.i64()))
        }
        guard r.atEnd else { throw StateCodecError("\(r.remaining) bytes after the user history") }
        // Not strictly: `add` keeps the same item bought at the same millisecond in two markets (a tie in BOP.md's order).
        guard zip(purchases, purchases.dropFirst()).allSatisfy({ !UserPurchase.precedes($1, $0) }) else {
            throw StateCodecError("purchases not in time order")
        }
        return (PurchaseHistory(user: user, purchases: purchases), provenance)
    }
}

import DINOP
import PromoEvents

/// One stage partition's industries, free of Kafka: the latest `f` of each item by day, each input partition's day
/// watermark per promotion, and the days closed so far. A promotion's day t closes when every input partition's
/// watermark has reached t, or when `graceMs` have passed since the partition first heard of day t (a record of
/// day t or later, or a watermark past it); then every item seen by t (one with a vector of a day ≤ t) gets its
/// `CompetitionContext`, from every item's `f` as of t. Days close in order. A vector of a day already closed is a
/// late day: it is kept for the next close, and the days closed stay as they were. Once the last pre-sale day has
/// closed the promotion is over: its items are forgotten (a changelog record without vectors says so) and later
/// vectors of it are late and dropped.
public struct IndustryDays: Sendable {
    public let width: Int, cooperation: Bool
    public let graceMs: Int64
    /// The last pre-sale day: its close ends the promotion.
    public let lastDay: Int

    struct Industry: Hashable { var promotion: String; var industry: String }
    struct ItemVectors: Sendable {
        var market: String
        var itemPartition: Int32
        /// By day, oldest first: the latest one of a day ≤ the promotion's closed day, and every later one.
        var vectors: [(day: Int, f: [Float], version: Int)] = []

        /// The `f` as of `day`: its latest of a day ≤ `day`.
        func asOf(_ day: Int) -> (day: Int, f: [Float], version: Int)? { vectors.last { $0.day <= day } }
    }
    struct Promotion: Sendable {
        var partitions: Int32 = 0
        var watermarks: [Int32: Int] = [:]
        var closed = 0
        /// When this stage partition first heard of each day not yet closed.
        var firstHeard: [Int: Int64] = [:]
        var industries: Set<String> = []
    }
    private var items: [Industry: [String: ItemVectors]] = [:]
    private var promotions: [String: Promotion] = [:]
    struct ItemRef: Hashable { var industry: Industry; var item: String }
    /// What changed since `takeChanges`: each is one changelog record.
    private var changedItems = Set<ItemRef>(), changedPromotions = Set<String>()
    /// Vectors of a day already closed, since the start.
    public private(set) var lateVectors = 0

    public init(width: Int, cooperation: Bool, graceMs: Int64, lastDay: Int = 20) {
        (self.width, self.cooperation, self.graceMs, self.lastDay) = (width, cooperation, graceMs, lastDay)
    }

    public var itemCount: Int { items.values.reduce(0) { $0 + $1.count } }

    /// The last day closed for `promotion` (0: none).
    public func closedDay(_ promotion: String) -> Int { promotions[promotion]?.closed ?? 0 }

    /// Takes an item's vector; returns false (and keeps nothing) when it has another width.
    @discardableResult
    public mutating func apply(_ vector: CompetitionVector, nowMs: Int64) -> Bool {
        guard vector.f.count == width, vector.day >= 1 else { return false }
        if closedDay(vector.promotion) >= lastDay {
            lateVectors += 1
            return true
        }
        let key = Industry(promotion: vector.promotion, industry: vector.industry)
        var item = items[key]?[vector.item] ?? ItemVectors(market: vector.market, itemPartition: vector.itemPartition)
        item.market = vector.market
        item.itemPartition = vector.itemPartition
        item.vectors.removeAll { $0.day == vector.day }
        item.vectors.append((vector.day, vector.f, vector.version))
        item.vectors.sort { $0.day < $1.day }
        items[key, default: [:]][vector.item] = item
        changedItems.insert(ItemRef(industry: key, item: vector.item))
        changedPromotions.insert(vector.promotion)
        var promotion = promotions[vector.promotion] ?? Promotion()
        promotion.industries.insert(vector.industry)
        if vector.day <= promotion.closed { lateVectors += 1 }
        hear(upTo: vector.day, &promotion, nowMs: nowMs)
        promotions[vector.promotion] = promotion
        return true
    }

    public mutating func apply(_ watermark: DayWatermark, nowMs: Int64) {
        guard watermark.partitions > 0, (0..<watermark.partitions).contains(watermark.partition) else { return }
        var promotion = promotions[watermark.promotion] ?? Promotion()
        promotion.partitions = max(promotion.partitions, watermark.partitions)
        promotion.watermarks[watermark.partition] = max(promotion.watermarks[watermark.partition] ?? 0, watermark.day)
        hear(upTo: watermark.day, &promotion, nowMs: nowMs)
        promotions[watermark.promotion] = promotion
        changedPromotions.insert(watermark.promotion)
    }

    /// Notes when each day up to `day` not yet closed was first heard of.
    private func hear(upTo day: Int, _ promotion: inout Promotion, nowMs: Int64) {
        guard day > promotion.closed else { return }
        for d in (promotion.closed + 1)...day where promotion.firstHeard[d] == nil { promotion.firstHeard[d] = nowMs }
    }

    /// The day every input partition has completed (0 before each has said).
    private func watermark(_ promotion: Promotion) -> Int {
        guard promotion.partitions > 0 else { return 0 }
        return (0..<promotion.partitions).map { promotion.watermarks[$0] ?? 0 }.min() ?? 0
    }

    /// Closes every day that is due, in order, and returns each closed day's contexts.
    public mutating func closeDue(nowMs: Int64) -> [(promotion: String, day: Int, contexts: [CompetitionContext])] {
        var closed: [(promotion: String, day: Int, contexts: [CompetitionContext])] = []
        for name in promotions.keys.sorted() {
            while var promotion = promotions[name] {
                let day = promotion.closed + 1
                let complete = watermark(promotion) >= day
                let graceOver = promotion.firstHeard[day].map { nowMs - $0 >= graceMs } ?? false
                guard complete || graceOver else { break }
                closed.append((name, day, contexts(promotion: name, industries: promotion.industries, day: day)))
                promotion.closed = day
                promotion.firstHeard[day] = nil
                promotions[name] = promotion
                changedPromotions.insert(name)
                if day >= lastDay {
                    evict(promotion: name, industries: promotion.industries)
                    break
                }
                prune(promotion: name, industries: promotion.industries, closed: day)
            }
        }
        return closed
    }

    /// Every seen item's context as of `day`, industry by industry (items in id order).
    private func contexts(promotion: String, industries: Set<String>, day: Int) -> [CompetitionContext] {
        var out: [CompetitionContext] = []
        for industry in industries.sorted() {
            let members = (items[Industry(promotion: promotion, industry: industry)] ?? [:])
                .compactMap { id, item in item.asOf(day).map { (id, item, $0) } }
                .sorted { $0.0 < $1.0 }
            guard !members.isEmpty else { continue }
            let f = members.flatMap { $0.2.f }
            let keys = members.map { CompetitionKey(promotion: promotion, market: $0.1.market, industry: industry) }
            let attended = CompetitionAttention(f: f, width: width, keys: keys, seen: keys.map { _ in true },
                                                cooperation: cooperation)
            let version = members.map { $0.2.version }.max() ?? 0
            for (row, member) in members.enumerated() {
                let range = (row * width)..<((row + 1) * width)
                out.append(CompetitionContext(item: member.0, promotion: promotion, day: day, a: Array(attended.a[range]),
                                              q: Array(attended.q[range]), version: version, itemPartition: member.1.itemPartition))
            }
        }
        return out
    }

    /// Forgets a finished promotion's items; each gets a changelog record without vectors.
    private mutating func evict(promotion: String, industries: Set<String>) {
        for industry in industries {
            let key = Industry(promotion: promotion, industry: industry)
            for id in (items.removeValue(forKey: key) ?? [:]).keys { changedItems.insert(ItemRef(industry: key, item: id)) }
        }
    }

    /// Keeps, of each item, its latest vector of a day ≤ `closed` and every later one.
    private mutating func prune(promotion: String, industries: Set<String>, closed: Int) {
        for industry in industries {
            let key = Industry(promotion: promotion, industry: industry)
            guard var group = items[key] else { continue }
            for (id, var item) in group {
                guard let last = item.vectors.lastIndex(where: { $0.day <= closed }), last > 0 else { continue }
                item.vectors.removeFirst(last)
                group[id] = item
                changedItems.insert(ItemRef(industry: key, item: id))
            }
            items[key] = group
        }
    }
}

extension IndustryDays {
    /// A changelog record: one item's vectors, or one promotion's watermarks and closed day.
    enum Record: Equatable {
        case item(promotion: String, industry: String, item: String, market: String, itemPartition: Int32,
                  vectors: [Vector])
        case promotion(name: String, partitions: Int32, watermarks: [Int32: Int], closed: Int, firstHeard: [Int: Int64],
                       industries: [String])

        struct Vector: Equatable { var day: Int; var f: [Float]; var version: Int }

        /// The changelog key: compaction keeps each item's and each promotion's latest.
        var key: [UInt8] {
            var w = ByteWriter()
            switch self {
            case .item(let promotion, let industry, let item, _, _, _):
                w.u8(UInt8(ascii: "i"))
                for s in [promotion, industry, item] { w.string(s) }
            case .promotion(let name, _, _, _, _, _):
                w.u8(UInt8(ascii: "p"))
                w.string(name)
            }
            return w.buffer
        }
    }

    /// The records of what changed since the last call, items in order, then promotions.
    mutating func takeChanges() -> [Record] {
        var records: [Record] = []
        for ref in changedItems.sorted(by: { ($0.industry.promotion, $0.industry.industry, $0.item) < ($1.industry.promotion, $1.industry.industry, $1.item) }) {
            // An item no longer kept (its promotion is over): a record without vectors, which compaction keeps small.
            let item = items[ref.industry]?[ref.item] ?? ItemVectors(market: "", itemPartition: 0)
            records.append(.item(promotion: ref.industry.promotion, industry: ref.industry.industry, item: ref.item,
                                 market: item.market, itemPartition: item.itemPartition,
                                 vectors: item.vectors.map { Record.Vector(day: $0.day, f: $0.f, version: $0.version) }))
        }
        for name in changedPromotions.sorted() {
            guard let p = promotions[name] else { continue }
            records.append(.promotion(name: name, partitions: p.partitions, watermarks: p.watermarks, closed: p.closed,
                                      firstHeard: p.firstHeard, industries: p.industries.sorted()))
        }
        changedItems = []
        changedPromotions = []
        return records
    }

    /// Takes a changelog record back; one that does not fit (another width) is refused.
    mutating func restore(_ record: Record) throws {
        switch record {
        case .item(let promotion, let industry, let item, let market, let itemPartition, let vectors):
            guard vectors.allSatisfy({ $0.f.count == width }) else {
                throw RestoreError.inconsistent("item \(quoted(item))'s f has another width than \(width)")
            }
            let key = Industry(promotion: promotion, industry: industry)
            guard !vectors.isEmpty else {
                items[key]?[item] = nil
                if items[key]?.isEmpty == true { items[key] = nil }
                return
            }
            let sorted = vectors.sorted { $0.day < $1.day }
            items[key, default: [:]][item] =
                ItemVectors(market: market, itemPartition: itemPartition, vectors: sorted.map { ($0.day, $0.f, $0.version) })
        case .promotion(let name, let partitions, let watermarks, let closed, let firstHeard, let industries):
            promotions[name] = Promotion(partitions: partitions, watermarks: watermarks, closed: closed, firstHeard: firstHeard,
                                         industries: Set(industries))
        }
    }
}

import DINOP
import Foundation
import PromoEvents

/// An item in a promotion: state and labels are per (promotion, item), as an item takes part in many promotions.
public struct ItemKey: Hashable, Sendable, Comparable {
    public var promotionID: String
    public var itemID: String

    public init(promotionID: String, itemID: String) {
        self.promotionID = promotionID
        self.itemID = itemID
    }

    // By bytes, as Kafka keys them (`ExactID`): canonically equivalent ids are two items.
    private var exact: (ExactID, ExactID) { (ExactID(promotionID), ExactID(itemID)) }

    public static func == (a: ItemKey, b: ItemKey) -> Bool { a.exact == b.exact }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(exact.0)
        hasher.combine(exact.1)
    }

    public static func < (a: ItemKey, b: ItemKey) -> Bool { a.exact < b.exact }
}

extension Event {
    /// The (promotion, item) an item's input or outcome is about; nil for other events.
    public var itemKey: ItemKey? {
        switch self {
        case .profile(let e): ItemKey(promotionID: e.promotionID, itemID: e.itemID)
        case .sales(let e): ItemKey(promotionID: e.promotionID, itemID: e.itemID)
        case .buyers(let e): ItemKey(promotionID: e.promotionID, itemID: e.itemID)
        case .activity(let e): ItemKey(promotionID: e.promotionID, itemID: e.itemID)
        case .outcome(let e): ItemKey(promotionID: e.promotionID, itemID: e.itemID)
        case .prediction, .announcement, .deadLetter, .rollup, .purchase, .recommendation: nil
        }
    }
}

/// Everything known of one item in one promotion, gathered from its events.
public struct ItemRecord: Sendable, Equatable {
    public var key: ItemKey
    public var profile: ItemProfile?
    /// Sales and buyer mix by pre-sale day; a later event for a day replaces the earlier one.
    public var sales: [Int: [String: Double]] = [:]
    public var buyers: [Int: [String: Double]] = [:]
    public var activity: ActivityOffer?
    public var outcome: Outcome?

    public init(key: ItemKey) { self.key = key }

    /// Days with a sales event, in increasing order; a day with buyers but no sales is not a day yet.
    public var days: [Int] { sales.keys.sorted() }

    public var industry: String { profile?.ids["industry"] ?? "" }

    public mutating func apply(_ event: Event) {
        switch event {
        case .profile(let e): profile = e
        case .sales(let e): sales[e.day] = e.sales
        case .buyers(let e): buyers[e.day] = e.buyers
        case .activity(let e): activity = e
        case .outcome(let e): outcome = e
        case .prediction, .announcement, .deadLetter, .rollup, .purchase, .recommendation: break
        }
    }
}

/// Gathers item events into records, in order of first appearance.
public struct ItemRecords: Sendable {
    public private(set) var records: [ItemRecord] = []
    private var index: [ItemKey: Int] = [:]

    public init() {}

    /// Applies an item event; returns false for events that are not about one item's inputs or outcome.
    @discardableResult
    public mutating func apply(_ event: Event) -> Bool {
        guard let key = event.itemKey else { return false }
        if let i = index[key] {
            records[i].apply(event)
        } else {
            index[key] = records.count
            var record = ItemRecord(key: key)
            record.apply(event)
            records.append(record)
        }
        return true
    }

    public subscript(key: ItemKey) -> ItemRecord? { index[key].map { records[$0] } }

    /// The records of event files, in order of first appearance; each rejected line goes to `rejected`.
    public static func read(_ files: [URL], decoder: EventDecoder,
                            rejected: (RejectedLine) -> Void) throws -> ItemRecords {
        var items = ItemRecords()
        for file in files {
            try EventFile.read(file, decoder: decoder, rejected: rejected) { event throws(EventError) in
                guard items.apply(event) else {
                    throw EventError(path: "schema", reason: "\(event.schema) is not an item's input or outcome (an output of the service?); skipped")
                }
            }
        }
        return items
    }
}

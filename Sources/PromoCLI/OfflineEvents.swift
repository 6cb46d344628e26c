import DINOP
import Foundation

/// The JSON events of one item gathered from event files: its profile, its days and an activity.
///
/// The event shapes (one JSON object per line, told apart by `type`):
/// - `item_profile`: `item_id`, one string per `sii_fields` entry, `sis` and `su` objects of named numbers;
/// - `daily_sales`: `item_id`, `day` (1-based pre-sale day), `sales` object;
/// - `daily_buyers`: `item_id`, `day`, `buyers` object (share of the day's buyers per bucket);
/// - `activity`: `item_id`, `activity_id`, `features` object.
/// Names the model does not know are ignored; names it knows but the event lacks are missing (normalised to 0).
public struct OfflineItem: Sendable {
    public var itemID: String
    public var ids: [String: String] = [:]
    public var sis: [String: Double] = [:]
    public var su: [String: Double] = [:]
    public var sales: [Int: [String: Double]] = [:]
    public var buyers: [Int: [String: Double]] = [:]
    public var activityID: String?
    public var activity: [String: Double]?

    /// Days with a sales event, in increasing order; a day with buyers but no sales is not a day yet.
    public var days: [Int] { sales.keys.sorted() }

    public func raw(_ mapper: FeatureMapper) -> RawItem {
        RawItem(
            sii: mapper.siiIDs(ids), sis: mapper.vector(.sis, sis), su: mapper.vector(.su, su),
            days: days.map { RawDay(dis: mapper.vector(.dis, sales[$0]!), du: buyers[$0].map { mapper.vector(.du, $0) }) },
            act: activity.map { mapper.vector(.act, $0) })
    }
}

/// A line of an event file that could not be used, and why.
public struct RejectedEvent: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var line: Int
    public var reason: String
    public var description: String { "\(source):\(line): \(reason)" }
}

/// Reads JSON-lines event files into items. A bad line is rejected with its reason; reading goes on.
public struct OfflineEventReader {
    public private(set) var items: [String: OfflineItem] = [:]
    /// Item ids in order of first appearance, so output order follows the input.
    public private(set) var order: [String] = []
    public private(set) var rejected: [RejectedEvent] = []
    let siiFields: [String]

    public init(siiFields: [String]) { self.siiFields = siiFields }

    public mutating func read(_ url: URL) throws {
        let text = try String(contentsOf: url, encoding: .utf8)
        var number = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            do {
                try apply(line: Substring(line))
            } catch let reason as EventProblem {
                rejected.append(RejectedEvent(source: url.lastPathComponent, line: number, reason: reason.message))
            }
        }
    }

    struct EventProblem: Error { let message: String }

    mutating func apply(line: Substring) throws {
        guard let object = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)), object.object != nil else {
            throw EventProblem(message: "not a JSON object")
        }
        guard let type = object["type"]?.string else { throw EventProblem(message: "type: missing") }
        guard let itemID = object["item_id"]?.string, !itemID.isEmpty else {
            throw EventProblem(message: "item_id: missing or not a string")
        }
        func numbers(_ key: String) throws -> [String: Double] {
            guard let value = object[key] else { return [:] }
            guard let map = value.object else { throw EventProblem(message: "\(key): not an object") }
            var out: [String: Double] = [:]
            for (name, raw) in map {
                guard let number = raw.number, Float(number).isFinite else {
                    throw EventProblem(message: "\(key).\(name): not a finite number within float32 range")
                }
                out[name] = number
            }
            return out
        }
        func day() throws -> Int {
            guard let day = object["day"]?.number, day >= 1, day == day.rounded(), day < 1e6 else {
                throw EventProblem(message: "day: not an integer ≥ 1")
            }
            return Int(day)
        }
        var item = items[itemID] ?? OfflineItem(itemID: itemID)
        switch type {
        case "item_profile":
            for field in siiFields {
                guard let value = object[field] else { continue }
                guard let id = value.string else { throw EventProblem(message: "\(field): not a string") }
                item.ids[field] = id
            }
            item.sis = try numbers("sis")
            item.su = try numbers("su")
        case "daily_sales":
            item.sales[try day()] = try numbers("sales")
        case "daily_buyers":
            item.buyers[try day()] = try numbers("buyers")
        case "activity":
            item.activityID = object["activity_id"]?.string
            item.activity = try numbers("features")
        default:
            throw EventProblem(message: "type: unknown event type \"\(type)\"")
        }
        if items[itemID] == nil { order.append(itemID) }
        items[itemID] = item
    }
}

import DINOP
import PromoFeatures

/// Everything the processor keeps for one item in one promotion: its inputs by the model's feature names, and
/// its incremental model state when it is hot.
///
/// Inputs are what a recomputation needs (a late or corrected day, a new model): the profile, the activity,
/// and every pre-sale day's sales and buyer vectors in one flat array (NaN marks a missing value).
public struct ItemState: Sendable, Equatable {
    public var key: ItemKey
    public var hasProfile = false
    /// One id per `sii_fields` entry of the model config.
    public var sii: [String?]
    public var sis: [Float]
    public var su: [Float]
    public var activityID: String?
    public var act: [Float]?
    /// Pre-sale days with any event, increasing.
    public internal(set) var dayNumbers: [UInt16] = []
    /// Per day: `DayFlags` bits.
    public internal(set) var dayFlags: [UInt8] = []
    /// `dayNumbers.count × (n_dis + n_u)`: each day's `dis` then `du`.
    public internal(set) var dayValues: [Float] = []
    /// When `waitingDay`, the latest sales day, arrived without its buyer profile (milliseconds, the processor's
    /// clock): the start of its grace period.
    public var pendingSince: Int64?
    public var waitingDay: Int?
    /// The item's last published sequence number.
    public var sequence = 0
    /// The last published GMV, for the rollups.
    public var lastGMV: Double?
    /// The model version of the last published prediction; after a model swap, items of older versions are
    /// recomputed in the background.
    public var predictedBy: Int?
    /// MARKETS.md `competition`: the last pre-sale day whose close published the item's prediction; the stage's
    /// answer for that day or an earlier one again (a re-close after a crash, a broker that shows aborted records)
    /// publishes nothing.
    public var closedDay: Int?
    /// The model state of the days applied so far; nil when cold (recomputed from the inputs on the next change).
    public var hot: HotState?

    struct DayFlags {
        static let sales: UInt8 = 1
        static let buyers: UInt8 = 2
    }

    public init(key: ItemKey, siiCount: Int, nSis: Int, nU: Int) {
        self.key = key
        sii = Array(repeating: nil, count: siiCount)
        sis = Array(repeating: .nan, count: nSis)
        su = Array(repeating: .nan, count: nU)
    }

    /// Moves the state out, leaving an empty one in its place (which allocates nothing): a move that copies none
    /// of its arrays, for states kept in tables and arrays.
    mutating func moveOut() -> ItemState {
        var moved = ItemState(key: ItemKey(promotionID: "", itemID: ""), siiCount: 0, nSis: 0, nU: 0)
        swap(&self, &moved)
        return moved
    }

    /// Days that have a sales event (a day with buyers only is not a day yet, as offline).
    public var salesDays: [Int] {
        zip(dayNumbers, dayFlags).compactMap { $0.1 & DayFlags.sales != 0 ? Int($0.0) : nil }
    }

    /// Sales days whose buyers have not come, in one pass over the days.
    var salesDaysWithoutBuyers: [Int] {
        zip(dayNumbers, dayFlags).compactMap { $0.1 & (DayFlags.sales | DayFlags.buyers) == DayFlags.sales ? Int($0.0) : nil }
    }

    func hasBuyers(day: Int) -> Bool {
        guard let i = dayNumbers.firstIndex(of: UInt16(day)) else { return false }
        return dayFlags[i] & DayFlags.buyers != 0
    }

    /// The `dis` and `du` of a day, or nil for a part that has not arrived.
    func inputs(day: Int, nDis: Int, nU: Int) -> (dis: [Float]?, du: [Float]?) {
        guard let i = dayNumbers.firstIndex(of: UInt16(day)) else { return (nil, nil) }
        let base = i * (nDis + nU)
        let dis = dayFlags[i] & DayFlags.sales != 0 ? Array(dayValues[base..<(base + nDis)]) : nil
        let du = dayFlags[i] & DayFlags.buyers != 0 ? Array(dayValues[(base + nDis)..<(base + nDis + nU)]) : nil
        return (dis, du)
    }

    /// The model's raw inputs for stepping through `days` (each with its sales).
    func rawItem(days: [Int], nDis: Int, nU: Int) -> RawItem {
        var raw = RawItem(sii: sii, sis: sis, su: su, days: [], act: act)
        raw.days.reserveCapacity(days.count)
        for day in days {
            let (dis, du) = inputs(day: day, nDis: nDis, nU: nU)
            raw.days.append(RawDay(dis: dis!, du: du))
        }
        return raw
    }

    /// Stores one part of a day; returns false when the stored part was already identical (a duplicate).
    mutating func store(day: Int, buyers: Bool, values: [Float], nDis: Int, nU: Int) -> Bool {
        let stride = nDis + nU, flag = buyers ? DayFlags.buyers : DayFlags.sales
        let index: Int
        if let i = dayNumbers.firstIndex(of: UInt16(day)) {
            index = i
        } else {
            index = dayNumbers.firstIndex { $0 > UInt16(day) } ?? dayNumbers.count
            dayNumbers.insert(UInt16(day), at: index)
            dayFlags.insert(0, at: index)
            dayValues.insert(contentsOf: repeatElement(Float.nan, count: stride), at: index * stride)
        }
        let start = index * stride + (buyers ? nDis : 0)
        let range = start..<(start + values.count)
        if dayFlags[index] & flag != 0, sameBits(dayValues[range], values) { return false }
        dayValues.replaceSubrange(range, with: values)
        dayFlags[index] |= flag
        return true
    }
}

/// `(T, h, m, s, acc)` of MODEL.md's incremental pooling, for the days up to `appliedThrough`.
public struct HotState: Sendable, Equatable {
    public var modelVersion: Int
    public var appliedDays: [UInt16]
    public var h: [Float]
    public var acc: [Float]
    public var maxScore: Float
    public var scoreSum: Float
}

/// Equal as stored bits, so NaN (a missing value) equals NaN.
func sameBits<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool where A.Element == Float, B.Element == Float {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// Works on a value in place: one dictionary access for several changes of an entry, and a state in an array
/// read without the defensive copy a shared read of it would make.
func inPlace<T, R>(_ value: inout T, _ body: (inout T) -> R) -> R { body(&value) }

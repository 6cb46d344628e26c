/// A `daily_sales/1` or `daily_buyers/1` event with its values in vocabulary order: what the stream processor
/// needs of the events it reads most, without a JSON tree or maps of names.
public struct DailyInput: Sendable, Equatable {
    public enum Part: Sendable { case sales, buyers }

    public var part: Part
    public var itemID: String
    public var promotionID: String
    public var day: Int
    public var date: String?
    public var buyerCount: Int?
    /// By `Vocabulary.sales` (sales) or `Vocabulary.buyerBuckets` (buyers) position; NaN where absent.
    public var values: [Double]

    /// The same event as the full decoder gives it.
    public var event: Event {
        let names = part == .sales ? Vocabulary.sales.map(\.0) : Vocabulary.buyerBuckets
        var map: [String: Double] = [:]
        for (name, value) in zip(names, values) where !value.isNaN { map[name] = value }
        switch part {
        case .sales: return .sales(DailySales(itemID: itemID, promotionID: promotionID, day: day, date: date, sales: map))
        case .buyers: return .buyers(DailyBuyers(itemID: itemID, promotionID: promotionID, day: day, buyers: map, buyerCount: buyerCount))
        }
    }
}

extension EventDecoder {
    /// Reads the common form of a daily event straight from its bytes: every field known and present once,
    /// no nulls, strings without escapes or non-ASCII bytes, values clearly within their ranges. Returns nil for
    /// anything else, including every invalid event; `decode` then reads it in full and names what is wrong.
    /// Whatever this returns, `decode` returns too (`DailyInput.event`), at a fraction of the cost.
    public func decodeDaily(_ bytes: [UInt8]) -> DailyInput? {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = DailyReader(cursor: JSONParser.Cursor(bytes: buffer), presaleDays: presaleDays)
            return reader.read()
        }
    }
}

private struct DailyReader {
    var cursor: JSONParser.Cursor
    let presaleDays: Int

    static let salesNames = Vocabulary.sales.map(\.0)
    static let salesRanges = Vocabulary.sales.map(\.1)
    static let buckets = Vocabulary.buyerBuckets
    /// Per bucket, its dimension's index in `Vocabulary.buyerDimensions`.
    static let bucketDimension = Vocabulary.buyerDimensions.enumerated().flatMap { i, d in d.buckets.map { _ in i } }

    mutating func read() -> DailyInput? {
        var schema: String?, itemID: String?, promotionID: String?, day: Int?, date: String?, buyerCount: Int?
        var values: [Double]?
        var part: DailyInput.Part?
        cursor.skipWhitespace()
        guard take(UInt8(ascii: "{")) else { return nil }
        var first = true
        while true {
            cursor.skipWhitespace()
            if take(UInt8(ascii: "}")) { break }
            if !first {
                guard take(UInt8(ascii: ",")) else { return nil }
                cursor.skipWhitespace()
            }
            first = false
            guard let key = plainString() else { return nil }
            cursor.skipWhitespace()
            guard take(UInt8(ascii: ":")) else { return nil }
            cursor.skipWhitespace()
            // A repeated field is a duplicate key, which the full parser refuses.
            switch key {
            case "schema":
                guard schema == nil, let s = plainString() else { return nil }
                switch s {
                case DailySales.schema: part = .sales
                case DailyBuyers.schema: part = .buyers
                default: return nil
                }
                schema = s
            case "item_id":
                guard itemID == nil, let s = plainString(), !s.isEmpty else { return nil }
                itemID = s
            case "promotion_id":
                guard promotionID == nil, let s = plainString(), !s.isEmpty else { return nil }
                promotionID = s
            case "day":
                guard day == nil, let n = number(), n == n.rounded(), n >= 1, n <= Double(presaleDays) else { return nil }
                day = Int(n)
            case "date":
                guard date == nil, let s = plainString() else { return nil }
                date = s
            case "buyer_count":
                guard buyerCount == nil, let n = number(), n == n.rounded(), n >= 0, n <= Double(Int32.max) else { return nil }
                buyerCount = Int(n)
            case "sales":
                guard values == nil, let v = namedValues(Self.salesNames) else { return nil }
                for (value, range) in zip(v, Self.salesRanges) where !value.isNaN && range.check(value) != nil { return nil }
                values = v
            case "buyers":
                guard values == nil, let v = namedValues(Self.buckets), Self.sharesClearlyValid(v) else { return nil }
                values = v
            default:
                return nil
            }
        }
        cursor.skipWhitespace()
        guard cursor.index == cursor.bytes.count, let part, let itemID, let promotionID, let day, let values else { return nil }
        // The fields of the other schema are unknown fields to this one; the full decoder ignores them.
        switch part {
        case .sales:
            guard buyerCount == nil, values.count == Self.salesNames.count else { return nil }
        case .buyers:
            guard date == nil, values.count == Self.buckets.count else { return nil }
        }
        return DailyInput(part: part, itemID: itemID, promotionID: promotionID, day: day, date: date,
                          buyerCount: buyerCount, values: values)
    }

    /// Each share a fraction, and each dimension that has any summing to 1 by a margin that no order of adding
    /// them up could change.
    static func sharesClearlyValid(_ values: [Double]) -> Bool {
        var sums = [Double](repeating: 0, count: Vocabulary.buyerDimensions.count)
        var present = [Bool](repeating: false, count: sums.count)
        for (i, value) in values.enumerated() where !value.isNaN {
            guard value >= 0, value <= 1 else { return false }
            sums[bucketDimension[i]] += value
            present[bucketDimension[i]] = true
        }
        return zip(sums, present).allSatisfy { sum, present in !present || abs(sum - 1) <= Vocabulary.shareTolerance - 1e-9 }
    }

    /// An object of numbers named by `names` (NaN for those absent); nil for another name, a repeated one, or a
    /// value that is not a finite float32 number.
    mutating func namedValues(_ names: [String]) -> [Double]? {
        guard take(UInt8(ascii: "{")) else { return nil }
        var values = [Double](repeating: .nan, count: names.count)
        var first = true
        while true {
            cursor.skipWhitespace()
            if take(UInt8(ascii: "}")) { return values }
            if !first {
                guard take(UInt8(ascii: ",")) else { return nil }
                cursor.skipWhitespace()
            }
            first = false
            guard let key = plainString(), let i = names.firstIndex(of: key), values[i].isNaN else { return nil }
            cursor.skipWhitespace()
            guard take(UInt8(ascii: ":")) else { return nil }
            cursor.skipWhitespace()
            guard let n = number() else { return nil }
            values[i] = n
        }
    }

    mutating func take(_ byte: UInt8) -> Bool {
        guard cursor.current == byte else { return false }
        cursor.index += 1
        return true
    }

    /// A string of printable ASCII without escapes.
    mutating func plainString() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = cursor.index
        while let byte = cursor.current {
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: cursor.bytes[start..<cursor.index]), as: UTF8.self)
                cursor.index += 1
                return text
            }
            guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\\") else { return nil }
            cursor.index += 1
        }
        return nil
    }

    /// A JSON number that float32 can hold.
    mutating func number() -> Double? {
        guard let byte = cursor.current, byte == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte),
              let n = try? cursor.number(), Fields.fitsFloat32(n) else { return nil }
        return n
    }
}

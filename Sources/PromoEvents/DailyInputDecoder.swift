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
        var part: DailyInput.Part?, itemID: String?, promotionID: String?, day: Int?, date: String?, buyerCount: Int?
        var values: [Double]?
        cursor.skipWhitespace()
        // A repeated field is a duplicate key, which the full parser refuses.
        let known = object { reader, key in
            switch key {
            case "schema":
                guard part == nil, let s = reader.plainString() else { return false }
                switch s {
                case DailySales.schema: part = .sales
                case DailyBuyers.schema: part = .buyers
                default: return false
                }
            case "item_id":
                guard itemID == nil, let s = reader.plainString(), !s.isEmpty, s.utf8.count <= Event.maxIDLength else { return false }
                itemID = s
            case "promotion_id":
                guard promotionID == nil, let s = reader.plainString(), !s.isEmpty, s.utf8.count <= Event.maxIDLength else { return false }
                promotionID = s
            case "day":
                guard day == nil, let n = reader.number(), n == n.rounded(), n >= 1, n <= Double(reader.presaleDays) else { return false }
                day = Int(n)
            case "date":
                guard date == nil, let s = reader.plainString() else { return false }
                date = s
            case "buyer_count":
                guard buyerCount == nil, let n = reader.number(), n == n.rounded(), n >= 0, n <= Double(Int32.max) else { return false }
                buyerCount = Int(n)
            case "sales":
                guard values == nil, let v = reader.namedValues(Self.salesNames) else { return false }
                for (value, range) in zip(v, Self.salesRanges) where !value.isNaN && range.check(value) != nil { return false }
                values = v
            case "buyers":
                guard values == nil, let v = reader.namedValues(Self.buckets), Self.sharesClearlyValid(v) else { return false }
                values = v
            default:
                return false
            }
            return true
        }
        guard known else { return nil }
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
        var values = [Double](repeating: .nan, count: names.count)
        let known = object { reader, key in
            guard let i = names.firstIndex(of: key), values[i].isNaN, let n = reader.number() else { return false }
            values[i] = n
            return true
        }
        return known ? values : nil
    }

    /// Reads an object, `member` reading each value after its key; false when the bytes are not an object or
    /// `member` declines a member.
    mutating func object(_ member: (inout DailyReader, String) -> Bool) -> Bool {
        guard take(UInt8(ascii: "{")) else { return false }
        var first = true
        while true {
            cursor.skipWhitespace()
            if take(UInt8(ascii: "}")) { return true }
            if !first {
                guard take(UInt8(ascii: ",")) else { return false }
                cursor.skipWhitespace()
            }
            first = false
            guard let key = plainString() else { return false }
            cursor.skipWhitespace()
            guard take(UInt8(ascii: ":")) else { return false }
            cursor.skipWhitespace()
            guard member(&self, key) else { return false }
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

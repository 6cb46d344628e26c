import Foundation

/// Why an event was refused: the first violation, by field path (`sales.units: must be ≥ 0, got -3`).
public struct EventError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Dotted path of the offending field; empty when the problem is the whole message.
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}

/// Strict decoding of event bytes (Topics/README.md): types and ranges are checked, unknown fields ignored.
public struct EventDecoder: Sendable {
    /// Days of the pre-sale window; a daily event's `day` must lie in `1...presaleDays`.
    public private(set) var presaleDays: Int

    /// `presaleDays` below 1 is taken as 1 (the commands refuse such a flag before they get here).
    public init(presaleDays: Int = 20) {
        self.presaleDays = max(presaleDays, 1)
    }

    public func decode(_ bytes: some Collection<UInt8>) throws(EventError) -> Event {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw EventError(path: "", reason: error.description)
        }
        return try decode(value)
    }

    public func decode(_ value: JSONValue) throws(EventError) -> Event {
        guard let map = value.object else { throw EventError(path: "", reason: "expected a JSON object, got \(value.kind)") }
        let fields = Fields(map: map, path: "")
        let schema = try fields.string("schema")
        switch schema {
        case ItemProfile.schema: return .profile(try profile(fields))
        case DailySales.schema: return .sales(try sales(fields))
        case DailyBuyers.schema: return .buyers(try buyers(fields))
        case ActivityOffer.schema: return .activity(try activity(fields))
        case Outcome.schema: return .outcome(try outcome(fields))
        case PredictionEvent.schema: return .prediction(try prediction(fields))
        case ModelAnnouncement.schema: return .announcement(try announcement(fields))
        case DeadLetter.schema: return .deadLetter(try deadLetter(fields))
        case Rollup.schema: return .rollup(try rollup(fields))
        case Purchase.schema: return .purchase(try purchase(fields))
        case Recommendation.schema: return .recommendation(try recommendation(fields))
        default: throw EventError(path: "schema", reason: "unsupported schema \(quoted(schema))")
        }
    }

    private func profile(_ f: Fields) throws(EventError) -> ItemProfile {
        var ids: [String: String] = [:]
        for name in ItemProfile.idFields {
            if let id = try f.optionalString(name) { ids[name] = try f.bounded(name, id) }
        }
        // Any other top-level string is a categorical id a model may name in `sii_fields` (e.g. `category`).
        for (name, value) in f.map where !ItemProfile.reservedFields.contains(name) {
            if let id = value.string { ids[name] = try f.bounded(name, id) }
        }
        return ItemProfile(
            itemID: try f.id("item_id"), promotionID: try f.id("promotion_id"), ids: ids,
            title: try f.optionalString("title"),
            sis: try f.optionalObject("sis").map { fields throws(EventError) in try fields.numbers(Vocabulary.history) } ?? [:],
            su: try f.optionalObject("su").map { fields throws(EventError) in try fields.shares() })
    }

    private func sales(_ f: Fields) throws(EventError) -> DailySales {
        DailySales(itemID: try f.id("item_id"), promotionID: try f.id("promotion_id"),
                   day: try day(f), date: try f.optionalString("date"),
                   sales: try f.object("sales").numbers(Vocabulary.sales))
    }

    private func buyers(_ f: Fields) throws(EventError) -> DailyBuyers {
        DailyBuyers(itemID: try f.id("item_id"), promotionID: try f.id("promotion_id"),
                    day: try day(f), buyers: try f.object("buyers").shares(),
                    buyerCount: try f.optionalInteger("buyer_count", in: 0...Int(Int32.max)))
    }

    private func activity(_ f: Fields) throws(EventError) -> ActivityOffer {
        ActivityOffer(itemID: try f.id("item_id"), promotionID: try f.id("promotion_id"),
                      activityID: try f.id("activity_id"),
                      features: try f.object("features").numbers(Vocabulary.activity))
    }

    private func outcome(_ f: Fields) throws(EventError) -> Outcome {
        Outcome(itemID: try f.id("item_id"), promotionID: try f.id("promotion_id"),
                gmv: try f.number("gmv", .nonNegative), units: try f.optionalNumber("units", .nonNegative),
                joinedActivity: try f.optionalBool("joined_activity"))
    }

    private func prediction(_ f: Fields) throws(EventError) -> PredictionEvent {
        let probabilities = try f.numberArray("ss_probs", .fraction)
        guard probabilities.count == 10 else {
            throw EventError(path: "ss_probs", reason: "must hold 10 probabilities, got \(probabilities.count)")
        }
        let ja = try f.optionalNumber("ja", .fraction), activityID = try f.optionalID("activity_id")
        guard (ja == nil) == (activityID == nil) else {
            throw EventError(path: ja == nil ? "ja" : "activity_id", reason: "required together with \(ja == nil ? "activity_id" : "ja")")
        }
        return PredictionEvent(
            itemID: try f.id("item_id"), promotionID: try f.id("promotion_id"),
            modelVersion: try f.integer("model_version", in: 1...Int.max), daysSeen: try f.integer("days_seen", in: 0...Int.max),
            gmv: try f.number("gmv", .nonNegative), bsp: try f.number("bsp", .fraction), ss: try f.integer("ss", in: 1...10),
            ssProbabilities: probabilities, ja: ja, activityID: activityID, producedAt: try f.nonEmptyString("produced_at"),
            asOfDay: try f.optionalInteger("as_of_day", in: 1...Int.max),
            sequence: try f.optionalInteger("sequence", in: 1...Int.max),
            daysWithoutBuyers: try f.optionalIntegerArray("days_without_buyers", in: 1...Int.max),
            market: try f.optionalID("market"), rep: try representation(f))
    }

    private func representation(_ f: Fields) throws(EventError) -> [Double]? {
        guard let value = f.map["rep"], value != .null else { return nil }
        // The length first: a huge array is refused before any of it is read.
        let count = value.array?.count ?? 0
        guard (1...PredictionEvent.largestRepresentation).contains(count) else {
            throw EventError(path: "rep", reason: "must be an array of 1 to \(PredictionEvent.largestRepresentation) numbers")
        }
        return try f.numberArray("rep", nil)
    }

    private func announcement(_ f: Fields) throws(EventError) -> ModelAnnouncement {
        let sha = try f.string("sha256")
        guard sha.utf8.count == 64, sha.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw EventError(path: "sha256", reason: "must be 64 lower-case hex digits")
        }
        let parent: Int? = f.map["parent"] == .null ? nil : try f.optionalInteger("parent", in: 1...Int.max)
        return ModelAnnouncement(
            version: try f.integer("version", in: 1...Int.max), parent: parent, sha256: sha,
            bytes: try f.integer("bytes", in: 1...Int.max), chunks: try f.integer("chunks", in: 1...Int.max),
            createdAt: try f.nonEmptyString("created_at"),
            metrics: try f.optionalObject("metrics").map { fields throws(EventError) in try fields.numbers([]) } ?? [:],
            trainedOn: try f.optionalString("trained_on"))
    }

    private func rollup(_ f: Fields) throws(EventError) -> Rollup {
        let scope = try f.string("scope")
        guard Rollup.scopes.contains(scope) else {
            throw EventError(path: "scope", reason: "must be one of \(Rollup.scopes.joined(separator: ", ")), got \(quoted(scope))")
        }
        return Rollup(promotionID: try f.id("promotion_id"), scope: scope, id: try f.id("id"),
                      partition: try f.integer("partition", in: 0...Int(Int32.max)), gmv: try f.number("gmv", .nonNegative),
                      items: try f.integer("items", in: 0...Int.max), producedAt: try f.nonEmptyString("produced_at"))
    }

    private func purchase(_ f: Fields) throws(EventError) -> Purchase {
        Purchase(userID: try f.id("user_id"), itemID: try f.id("item_id"), market: try f.optionalID("market"),
                 purchasedAt: try f.timestamp("purchased_at"))
    }

    private func recommendation(_ f: Fields) throws(EventError) -> Recommendation {
        let userID = try f.id("user_id"), market = try f.optionalID("market")
        let promotionID = try f.id("promotion_id")
        let items = try recommendedItems(f)
        let modelVersion = try f.integer("model_version", in: 1...Int.max)
        let historyLength = try f.integer("history_length", in: 0...Int.max)
        let triggerName = try f.string("trigger")
        guard let trigger = Recommendation.Trigger(rawValue: triggerName) else {
            let names = Recommendation.Trigger.allCases.map(\.rawValue).joined(separator: ", ")
            throw EventError(path: "trigger", reason: "must be one of \(names), got \(quoted(triggerName))")
        }
        return Recommendation(userID: userID, market: market, promotionID: promotionID, items: items,
                              modelVersion: modelVersion, historyLength: historyLength, trigger: trigger,
                              asOf: try f.timestamp("as_of"), producedAt: try f.timestamp("produced_at"))
    }

    /// `items`: at most `Recommendation.maxItems`, each item once, by probability descending (ties in any order).
    private func recommendedItems(_ f: Fields) throws(EventError) -> [Recommendation.RecommendedItem] {
        let value = try f.required("items")
        guard let elements = value.array else { throw EventError(path: "items", reason: "expected an array, got \(value.kind)") }
        guard elements.count <= Recommendation.maxItems else {
            throw EventError(path: "items", reason: "must hold at most \(Recommendation.maxItems) items, got \(elements.count)")
        }
        var items: [Recommendation.RecommendedItem] = []
        items.reserveCapacity(elements.count)
        var seen: [ExactID: Int] = [:]
        for (i, element) in elements.enumerated() {
            guard let map = element.object else {
                throw EventError(path: "items[\(i)]", reason: "expected an object, got \(element.kind)")
            }
            let entry = Fields(map: map, path: "items[\(i)]")
            let itemID = try entry.id("item_id")
            let probability = try entry.number("probability", .fraction)
            if let first = seen[ExactID(itemID)] {
                throw EventError(path: entry.child("item_id"), reason: "duplicates items[\(first)].item_id \(quoted(itemID))")
            }
            seen[ExactID(itemID)] = i
            if let previous = items.last, probability > previous.probability {
                throw EventError(path: entry.child("probability"),
                                 reason: "must be ≤ items[\(i - 1)].probability \(previous.probability) (items are sorted by probability, descending), got \(probability)")
            }
            items.append(Recommendation.RecommendedItem(itemID: itemID, probability: probability))
        }
        return items
    }

    private func deadLetter(_ f: Fields) throws(EventError) -> DeadLetter {
        func base64(_ name: String, _ text: String) throws(EventError) -> [UInt8] {
            guard let bytes = Data(base64Encoded: text) else { throw EventError(path: name, reason: "not valid base64") }
            return Array(bytes)
        }
        let key: [UInt8]? = f.map["key"] == .null ? nil : try f.optionalString("key").map { s throws(EventError) in try base64("key", s) }
        return DeadLetter(
            sourceTopic: try f.nonEmptyString("source_topic"), partition: try f.integer("partition", in: 0...Int(Int32.max)),
            offset: Int64(try f.integer("offset", in: 0...Int.max)), key: key, value: try base64("value", try f.string("value")),
            reason: try f.string("reason"), failedAt: try f.nonEmptyString("failed_at"), consumer: try f.string("consumer"),
            keyBytes: try f.optionalInteger("key_bytes", in: 0...Int.max), valueBytes: try f.optionalInteger("value_bytes", in: 0...Int.max))
    }

    private func day(_ f: Fields) throws(EventError) -> Int {
        let day = try f.integer("day", in: Int.min...Int.max)
        guard (1...presaleDays).contains(day) else {
            throw EventError(path: "day", reason: "must be within the pre-sale window 1...\(presaleDays), got \(day)")
        }
        return day
    }
}

/// The fields of one JSON object, read with their path for error messages.
struct Fields {
    let map: [String: JSONValue]
    let path: String

    /// Field names come from the input: quoted when they are not plain.
    func child(_ name: String) -> String {
        let shown = name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") } ? name : quoted(name)
        return path.isEmpty ? shown : "\(path).\(shown)"
    }

    func required(_ name: String) throws(EventError) -> JSONValue {
        guard let value = map[name], value != .null else { throw EventError(path: child(name), reason: "required") }
        return value
    }

    func string(_ name: String) throws(EventError) -> String {
        let value = try required(name)
        guard let s = value.string else { throw EventError(path: child(name), reason: "expected a string, got \(value.kind)") }
        return s
    }

    func nonEmptyString(_ name: String) throws(EventError) -> String {
        let s = try string(name)
        guard !s.isEmpty else { throw EventError(path: child(name), reason: "must not be empty") }
        return s
    }

    func optionalString(_ name: String) throws(EventError) -> String? {
        guard let value = map[name], value != .null else { return nil }
        return try string(name)
    }

    func optionalNonEmptyString(_ name: String) throws(EventError) -> String? {
        guard let value = map[name], value != .null else { return nil }
        return try nonEmptyString(name)
    }

    /// An id: not empty, at most `Event.maxIDLength` characters.
    func id(_ name: String) throws(EventError) -> String { try bounded(name, try nonEmptyString(name)) }

    func optionalID(_ name: String) throws(EventError) -> String? {
        guard let value = map[name], value != .null else { return nil }
        return try id(name)
    }

    /// Ids end up in keys, state records and outputs, each of which must stay one Kafka message.
    func bounded(_ name: String, _ value: String) throws(EventError) -> String {
        // (Counting stops past the bound: a huge id costs no more than a short one.)
        guard value.unicodeScalars.prefix(Event.maxIDLength + 1).count > Event.maxIDLength else { return value }
        throw EventError(path: child(name), reason: "at most \(Event.maxIDLength) characters, got \(value.unicodeScalars.count)")
    }

    /// An RFC 3339 timestamp in UTC, as the schemas' pattern has it: `2026-10-28T16:05:12.418Z` (the fraction of a
    /// second optional), a real date and time of day.
    func timestamp(_ name: String) throws(EventError) -> String {
        let s = try string(name)
        guard Self.isUTCTimestamp(s) else {
            throw EventError(path: child(name), reason: "must be an RFC 3339 UTC timestamp like 2026-10-28T16:05:12.418Z, got \(quoted(s))")
        }
        return s
    }

    static func isUTCTimestamp(_ text: String) -> Bool {
        let b = Array(text.utf8)
        guard b.count >= 20, b[b.count - 1] == UInt8(ascii: "Z") else { return false }
        func isDigit(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) }
        func number(_ range: Range<Int>) -> Int? {
            var n = 0
            for i in range {
                guard isDigit(b[i]) else { return nil }
                n = n * 10 + Int(b[i] - 0x30)
            }
            return n
        }
        guard b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19) else { return false }
        // Between the seconds and the `Z`: nothing, or `.` and at least one digit.
        let fraction = b[19..<(b.count - 1)]
        if let dot = fraction.first {
            guard dot == UInt8(ascii: "."), fraction.count >= 2, fraction.dropFirst().allSatisfy(isDigit) else { return false }
        }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        // Second 60 is RFC 3339's leap second.
        return (1...12).contains(month) && (1...days[month - 1]).contains(day) && hour < 24 && minute < 60 && second <= 60
    }

    func optionalBool(_ name: String) throws(EventError) -> Bool? {
        guard let value = map[name], value != .null else { return nil }
        guard case .bool(let b) = value else {
            throw EventError(path: child(name), reason: "expected a boolean, got \(value.kind)")
        }
        return b
    }

    func object(_ name: String) throws(EventError) -> Fields {
        let value = try required(name)
        guard let map = value.object else { throw EventError(path: child(name), reason: "expected an object, got \(value.kind)") }
        return Fields(map: map, path: child(name))
    }

    func optionalObject(_ name: String) throws(EventError) -> Fields? {
        guard let value = map[name], value != .null else { return nil }
        return try object(name)
    }

    /// Rounds to a finite float32 (float32's own shortest digits of its largest value, 3.4028235e38, are above it as a
    /// Double, and still read back as that value).
    static func fitsFloat32(_ n: Double) -> Bool { n.isFinite && Float(n).isFinite }

    /// A finite number that float32 can hold (the model computes in float32).
    static func finite(_ value: JSONValue, path: @autoclosure () -> String) throws(EventError) -> Double {
        guard let n = value.number else { throw EventError(path: path(), reason: "expected a number, got \(value.kind)") }
        guard Self.fitsFloat32(n) else {
            throw EventError(path: path(), reason: "must be a finite number within float32 range, got \(n)")
        }
        return n
    }

    func number(_ name: String, _ range: Vocabulary.Range) throws(EventError) -> Double {
        let n = try Self.finite(try required(name), path: child(name))
        if let problem = range.check(n) { throw EventError(path: child(name), reason: problem) }
        return n
    }

    func optionalNumber(_ name: String, _ range: Vocabulary.Range) throws(EventError) -> Double? {
        guard let value = map[name], value != .null else { return nil }
        return try number(name, range)
    }

    func integer(_ name: String, in bounds: ClosedRange<Int>) throws(EventError) -> Int {
        try Self.integer(try required(name), path: child(name), in: bounds)
    }

    static func integer(_ value: JSONValue, path: String, in bounds: ClosedRange<Int>) throws(EventError) -> Int {
        guard let n = value.number else { throw EventError(path: path, reason: "expected an integer, got \(value.kind)") }
        guard n.isFinite, n == n.rounded(), abs(n) < 9_007_199_254_740_992 else {
            throw EventError(path: path, reason: "expected an integer, got \(n)")
        }
        let i = Int(n)
        guard bounds.contains(i) else {
            let lower = bounds.lowerBound == Int.min ? "" : "≥ \(bounds.lowerBound)"
            let upper = bounds.upperBound == Int.max ? "" : "≤ \(bounds.upperBound)"
            throw EventError(path: path, reason: "must be \([lower, upper].filter { !$0.isEmpty }.joined(separator: " and ")), got \(i)")
        }
        return i
    }

    func optionalIntegerArray(_ name: String, in bounds: ClosedRange<Int>) throws(EventError) -> [Int]? {
        guard let value = map[name], value != .null else { return nil }
        guard let elements = value.array else { throw EventError(path: child(name), reason: "expected an array, got \(value.kind)") }
        var out: [Int] = []
        for (i, element) in elements.enumerated() {
            out.append(try Self.integer(element, path: "\(child(name))[\(i)]", in: bounds))
        }
        return out
    }

    func optionalInteger(_ name: String, in bounds: ClosedRange<Int>) throws(EventError) -> Int? {
        guard let value = map[name], value != .null else { return nil }
        return try integer(name, in: bounds)
    }

    func numberArray(_ name: String, _ range: Vocabulary.Range?) throws(EventError) -> [Double] {
        let value = try required(name)
        guard let elements = value.array else { throw EventError(path: child(name), reason: "expected an array, got \(value.kind)") }
        var out: [Double] = []
        for (i, element) in elements.enumerated() {
            let path = "\(child(name))[\(i)]"
            let n = try Self.finite(element, path: path)
            if let problem = range?.check(n) { throw EventError(path: path, reason: problem) }
            out.append(n)
        }
        return out
    }

    /// Named numbers: known names checked against their range (a non-number is an error); unknown names kept
    /// when they are finite numbers and ignored otherwise (a later minor version may add them).
    func numbers(_ known: [(String, Vocabulary.Range)]) throws(EventError) -> [String: Double] {
        var out: [String: Double] = [:]
        for (name, range) in known {
            if let n = try optionalNumber(name, range) { out[name] = n }
        }
        // Unknown names exist only when the known ones did not account for every entry.
        guard map.count > out.count else { return out }
        for (name, value) in map where !known.contains(where: { $0.0 == name }) {
            if let n = value.number, Self.fitsFloat32(n) { out[name] = n }
        }
        return out
    }

    /// Bucket shares: each within [0, 1], and those of each dimension present summing to 1.
    private static let knownDimensions: [Substring] = Vocabulary.buyerDimensions.map { Substring($0.dimension) }
    private static let knownDimensionSet = Set(knownDimensions)

    /// Shares by bucket name, checked per known dimension, in sorted order: floating-point sums depend on the order
    /// of adding, and a dictionary's order differs from process to process, so a sum at the tolerance would be
    /// accepted by one member and refused by another (found by fuzzing). Sorted, every process adds the same way
    /// and reports the same first violation.
    func shares() throws(EventError) -> [String: Double] {
        try shares(names: map.keys.sorted())
    }

    private func shares(names: some Sequence<String>) throws(EventError) -> [String: Double] {
        var out: [String: Double] = [:]
        out.reserveCapacity(map.count)
        var sums: [Substring: Double] = [:]
        for name in names {
            let value = map[name]!
            if value == .null { continue }
            // A name outside the known dimensions (a later minor version's field) is carried when it is a finite
            // number and ignored otherwise; only the known dimensions' shares can be checked.
            let dimension = Vocabulary.dimension(of: name)
            guard Self.knownDimensionSet.contains(dimension) else {
                if let n = value.number, Self.fitsFloat32(n) { out[name] = n }
                continue
            }
            var n = try Self.finite(value, path: child(name))
            // A share rounded above 1 (1.000001 from a spreadsheet) is a 1, within the tolerance the sums have.
            if n > 1, n <= 1 + Vocabulary.shareTolerance { n = 1 }
            if let problem = Vocabulary.Range.fraction.check(n) { throw EventError(path: child(name), reason: problem) }
            out[name] = n
            sums[dimension, default: 0] += n
        }
        for dimension in Self.knownDimensions where sums[dimension] != nil {
            let sum = sums[dimension]!
            guard abs(sum - 1) <= Vocabulary.shareTolerance else {
                throw EventError(path: child(String(dimension)),
                                 reason: "shares must sum to 1 (±\(Vocabulary.shareTolerance)), got \(sum)")
            }
        }
        return out
    }
}

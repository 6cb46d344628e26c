import Foundation
import PromoEvents
#if canImport(Darwin)
import CoreFoundation
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The real Taobao 11.11 (2016) cosmetics scrape as promo-stream events (the data's README.md describes it).
///
/// The file holds one snapshot per item and scrape date (2016/11/05 … 2016/11/14) of a running `sale_count`
/// and that day's price. Windows, relative to the promotion day P = 2016-11-11:
/// - pre-sale: the snapshots P−6 … P−1 (11/05 … 11/10) give 5 pre-sale days; day d (1…5) is the counter
///   difference from snapshot P−7+d to snapshot P−6+d and is dated by the later one (day 1 = 11/05→11/06,
///   dated 2016-11-06; day 5 = 11/09→11/10, dated 2016-11-10). Its price is the later snapshot's price.
/// - promotion day: counter at 11/12 (the first snapshot after 11.11, which holds the whole day) minus the
///   counter at 11/10. Without an 11/12 counter the 11/11 snapshot is used: it is scraped during 11.11, so it
///   is a lower bound (on this file the median item gains 156 by the 11/11 scrape and 198 by 11/12).
///   Price: the 11/11 price; without an 11/11 snapshot the lowest price seen 11/10 … 11/12 (promotion prices
///   are cuts, so the lowest is the likeliest 11.11 price).
/// Unknown stays unknown: a negative difference (a counter reset) or a missing snapshot leaves units and GMV
/// absent, never zero; the data has no buyer demographics (no `daily_buyers`) and no 90-day history.
/// What the item had before the pre-sale — the counter and the review count of its P−6 (11/05) snapshot — goes into
/// the profile's `sis` as `sale_count` and `comment_count` (names of the source's columns, not of the default
/// model's features: a feature config takes them, see the README's recipe).
public struct TaobaoImport: Sendable {
    public static let defaultPath = "../shared/data/taobao-double11-2016/taobao_double11_cosmetics_2016.gbk.csv"
    /// Overrides `defaultPath` when set and non-empty.
    public static let environmentVariable = "PROMO_TAOBAO_CSV"
    public static let promotionDate = CivilDate(year: 2016, month: 11, day: 11)
    public static let presaleDays = 5

    /// The path to read: an explicit one, else `$PROMO_TAOBAO_CSV`, else `defaultPath` (relative to the working directory).
    public static func resolvedPath(_ explicit: String?) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let env = ProcessInfo.processInfo.environment[environmentVariable], !env.isEmpty { return env }
        return defaultPath
    }

    public enum ImportError: Error, Sendable, Equatable, CustomStringConvertible {
        case unreadable(path: String)
        case noGBKConverter
        case missingColumn(String)

        public var description: String {
            switch self {
            case .unreadable(let path): "cannot read \(path)"
            case .noGBKConverter: "this platform cannot convert GBK to UTF-8"
            case .missingColumn(let name): "the header lacks the column \(name)"
            }
        }
    }

    /// One scrape of one item.
    public struct Snapshot: Sendable, Equatable {
        public var date: CivilDate
        public var title: String
        public var price: Double
        /// The running sales counter; nil when the scrape left it empty (three stores never show it).
        public var saleCount: Int?
        /// The review counter; nil when empty or when the file has no `comment_count` column.
        public var commentCount: Int?
        public var store: String
    }

    /// One pre-sale day with something known: units nil when the difference is unknown or negative.
    public struct PresaleDay: Sendable, Equatable {
        public var day: Int
        public var date: CivilDate
        public var units: Int?
        public var price: Double
    }

    public struct PromotionDay: Sendable, Equatable {
        public var units: Int
        public var price: Double
        /// The snapshot whose counter closed the day: 11/12, or 11/11 (a lower bound).
        public var closedBy: CivilDate
        public var gmv: Double { Double(units) * price }
    }

    public struct Item: Sendable, Equatable {
        public var id: String
        /// Title and store as on the first snapshot.
        public var title: String
        public var store: String
        public var industry: String
        /// By date, one per scraped day.
        public var snapshots: [Snapshot]
        public var presale: [PresaleDay]
        /// nil when it cannot be measured: the item can be predicted but not scored.
        public var outcome: PromotionDay?
    }

    public struct Rejection: Sendable, Equatable, CustomStringConvertible {
        /// 1-based line of the file (the header is line 1).
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public struct Summary: Sendable, Equatable {
        public var items = 0
        /// Data lines read (the header not counted).
        public var rows = 0
        public var rejectedRows = 0
        /// The first few rejections, in file order.
        public var rejections: [Rejection] = []
        /// Exact repeats of a row already read (the scrape holds some); skipped, not rejected.
        public var duplicateRows = 0
        public var rowsWithoutCount = 0
        public var itemsWithOutcome = 0
        /// Outcomes closed by the 11/11 snapshot for want of an 11/12 counter (lower bounds).
        public var outcomesClosedOnPromotionDay = 0
        /// Negative pre-sale counter differences, left missing.
        public var negativeDifferences = 0
        /// Negative 11/10 → close jumps: those items get no outcome.
        public var negativeOutcomeJumps = 0
        public var medianPresaleDailyUnits: Double?
        public var medianPromotionDayUnits: Double?
    }

    /// Items by id.
    public let items: [Item]
    public let summary: Summary

    /// How many rejections `summary.rejections` keeps.
    static let keptRejections = 10

    public static func load(path: String) throws -> TaobaoImport {
        guard let data = FileManager.default.contents(atPath: path) else { throw ImportError.unreadable(path: path) }
        return try parse(Array(data))
    }

    /// Parses the GBK bytes of the CSV. Lines are split on raw bytes, which is safe: GBK's second bytes are
    /// ≥ 0x40, so never `\n`, `,` or `"`; each line is decoded alone so a bad one costs only itself.
    static func parse(_ bytes: [UInt8]) throws -> TaobaoImport {
        guard let gbk = GBK() else { throw ImportError.noGBKConverter }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard let headerBytes = lines.first, let header = gbk.decode(Array(headerBytes.dropTrailingCR)) else {
            throw ImportError.missingColumn("update_time")
        }
        let names = csvFields(header).map { $0.trimmingCharacters(in: .whitespaces) }
        func column(_ name: String) throws -> Int {
            guard let i = names.firstIndex(of: name) else { throw ImportError.missingColumn(name) }
            return i
        }
        let (dateColumn, idColumn, titleColumn, priceColumn, countColumn, storeColumn) =
            (try column("update_time"), try column("id"), try column("title"), try column("price"),
             try column("sale_count"), try column("店名"))
        let commentColumn = names.firstIndex(of: "comment_count")

        var summary = Summary()
        var snapshots: [String: [CivilDate: Snapshot]] = [:]
        func reject(_ line: Int, _ reason: String) {
            summary.rejectedRows += 1
            if summary.rejections.count < keptRejections { summary.rejections.append(Rejection(line: line, reason: reason)) }
        }
        for (index, raw) in lines.enumerated().dropFirst() {
            let line = index + 1
            let trimmed = raw.dropTrailingCR
            if trimmed.isEmpty { continue }
            summary.rows += 1
            guard let text = gbk.decode(Array(trimmed)) else { reject(line, "not valid GBK"); continue }
            let fields = csvFields(text)
            guard fields.count == names.count else {
                reject(line, "expected \(names.count) columns, got \(fields.count)"); continue
            }
            guard let date = CivilDate(parsing: fields[dateColumn]) else {
                reject(line, "update_time: not a valid date \"\(fields[dateColumn])\""); continue
            }
            let id = fields[idColumn].trimmingCharacters(in: .whitespaces)
            guard !id.isEmpty else { reject(line, "id: empty"); continue }
            // The events require price > 0.
            guard let price = Double(fields[priceColumn].trimmingCharacters(in: .whitespaces)), price.isFinite, price > 0 else {
                reject(line, "price: expected a number > 0, got \"\(fields[priceColumn])\""); continue
            }
            let countText = fields[countColumn].trimmingCharacters(in: .whitespaces)
            var count: Int?
            if !countText.isEmpty {
                guard let n = Int(countText), n >= 0 else {
                    reject(line, "sale_count: expected an integer ≥ 0, got \"\(countText)\""); continue
                }
                count = n
            }
            // An unreadable review count is unknown, not a reason to lose the row's sales.
            let comments = commentColumn.flatMap { Int(fields[$0].trimmingCharacters(in: .whitespaces)) }.flatMap { $0 >= 0 ? $0 : nil }
            let snapshot = Snapshot(date: date, title: fields[titleColumn].trimmingCharacters(in: .whitespaces),
                                    price: price, saleCount: count, commentCount: comments,
                                    store: fields[storeColumn].trimmingCharacters(in: .whitespaces))
            if let earlier = snapshots[id]?[date] {
                if earlier == snapshot { summary.duplicateRows += 1 } else {
                    reject(line, "a second, different snapshot of \(id) on \(date.iso)")
                }
                continue
            }
            if count == nil { summary.rowsWithoutCount += 1 }
            snapshots[id, default: [:]][date] = snapshot
        }

        var items: [Item] = []
        var presaleUnits: [Int] = []
        var promotionUnits: [Int] = []
        for (id, byDate) in snapshots.sorted(by: { $0.key < $1.key }) {
            let series = byDate.values.sorted { $0.date < $1.date }
            let presale = presaleDays(byDate, negatives: &summary.negativeDifferences)
            let outcome = promotionDay(byDate, negatives: &summary.negativeOutcomeJumps)
            presaleUnits += presale.compactMap(\.units)
            if let outcome {
                promotionUnits.append(outcome.units)
                if outcome.closedBy == promotionDate { summary.outcomesClosedOnPromotionDay += 1 }
            }
            let first = series[0]
            items.append(Item(id: id, title: first.title, store: first.store, industry: industry(forTitle: first.title),
                              snapshots: series, presale: presale, outcome: outcome))
        }
        summary.items = items.count
        summary.itemsWithOutcome = promotionUnits.count
        summary.medianPresaleDailyUnits = median(presaleUnits)
        summary.medianPromotionDayUnits = median(promotionUnits)
        return TaobaoImport(items: items, summary: summary)
    }

    /// The pre-sale days with anything known (see the type's comment for the window).
    static func presaleDays(_ byDate: [CivilDate: Snapshot], negatives: inout Int) -> [PresaleDay] {
        var days: [PresaleDay] = []
        for day in 1...presaleDays {
            let date = promotionDate.adding(days: day - presaleDays - 1)
            // Without the day's own snapshot neither price nor a difference is known: no event.
            guard let later = byDate[date] else { continue }
            var units: Int?
            if let end = later.saleCount, let start = byDate[date.adding(days: -1)]?.saleCount {
                if end >= start { units = end - start } else { negatives += 1 }
            }
            days.append(PresaleDay(day: day, date: date, units: units, price: later.price))
        }
        return days
    }

    static func promotionDay(_ byDate: [CivilDate: Snapshot], negatives: inout Int) -> PromotionDay? {
        let before = promotionDate.adding(days: -1), after = promotionDate.adding(days: 1)
        guard let start = byDate[before]?.saleCount else { return nil }
        guard let (closedBy, end) = [after, promotionDate].lazy
            .compactMap({ date in byDate[date]?.saleCount.map { (date, $0) } }).first else { return nil }
        guard end >= start else { negatives += 1; return nil }
        let price = byDate[promotionDate]?.price ?? [before, after].compactMap { byDate[$0]?.price }.min()!
        return PromotionDay(units: end - start, price: price, closedBy: closedBy)
    }

    /// The events of every item, by item id: `item_profile/1`, `daily_sales/1` by day, then `outcome/1` if measured.
    /// Decodable with `EventDecoder(presaleDays: TaobaoImport.presaleDays)`.
    public func events(promotionID: String = "double11-2016") -> [Event] {
        var events: [Event] = []
        events.reserveCapacity(items.count * (Self.presaleDays + 2))
        for item in items {
            var ids = ["market": "cn", "industry": item.industry]
            if !item.store.isEmpty { ids["seller"] = item.store; ids["brand"] = item.store }
            // The price, and the counters as they stood before the pre-sale; the buyer mix stays missing.
            var sis = ["price": item.snapshots[0].price]
            if let before = item.snapshots.first(where: { $0.date == Self.promotionDate.adding(days: -Self.presaleDays - 1) }) {
                if let count = before.saleCount { sis["sale_count"] = Double(count) }
                if let comments = before.commentCount { sis["comment_count"] = Double(comments) }
            }
            events.append(.profile(ItemProfile(itemID: item.id, promotionID: promotionID, ids: ids,
                                               title: item.title.isEmpty ? nil : item.title, sis: sis, su: nil)))
            for day in item.presale {
                var sales = ["price": day.price]
                if let units = day.units { sales["units"] = Double(units); sales["gmv"] = Double(units) * day.price }
                events.append(.sales(DailySales(itemID: item.id, promotionID: promotionID, day: day.day,
                                                date: day.date.iso, sales: sales)))
            }
            if let outcome = item.outcome {
                events.append(.outcome(Outcome(itemID: item.id, promotionID: promotionID, gmv: outcome.gmv,
                                               units: Double(outcome.units))))
            }
        }
        return events
    }

    /// Cosmetics categories by title keyword, the first matching entry winning (titles name several products,
    /// so bundles, perfume, men's care and the specific kinds come before the generic skincare words). Titles
    /// are matched lower-cased.
    static let industryKeywords: [(industry: String, keywords: [String])] = [
        ("set", ["套装", "套盒", "礼盒", "组合", "套组", "件套", "礼包", "部曲"]),
        ("perfume", ["香水", "香氛"]),
        ("mens_care", ["男士", "男用"]),
        ("mask", ["面膜", "睡眠膜", "眼膜", "膜贴"]),
        ("cleanser", ["洁面", "洗面", "卸妆", "洁颜", "洁肤", "磨砂", "去角质"]),
        ("makeup_lips", ["口红", "唇膏", "唇彩", "唇釉", "唇蜜", "唇笔"]),
        ("makeup_eyes", ["眼线", "睫毛", "眼影", "眉"]),
        ("makeup_base", ["bb", "cc霜", "粉底", "气垫", "遮瑕", "粉饼", "散粉", "蜜粉", "妆前", "腮红", "定妆", "修容", "隔离"]),
        ("sun_care", ["防晒"]),
        ("body_care", ["护手", "手霜", "手膜", "身体", "润体", "沐浴", "足"]),
        ("hair_care", ["洗发", "护发", "发膜", "染发", "润发"]),
        // Skincare: toners and creams by their specific names first, since "精华" (serum) and "水" also
        // appear in cream and toner names ("精华霜", "精华水") and "补水" (hydrating) is in most titles.
        ("skincare_toner", ["爽肤水", "化妆水", "柔肤水", "精华水", "紧肤水", "保湿水", "润肤水", "神仙水", "天才水", "喷雾"]),
        ("skincare_cream", ["眼霜", "面霜", "乳液", "精华霜", "乳霜", "晚霜", "日霜"]),
        ("skincare_serum", ["精华", "肌底液", "安瓶", "原液"]),
        ("skincare_cream", ["霜", "乳", "露", "啫喱", "凝胶", "油", "膏"]),
        ("skincare_toner", ["水"]),
    ]

    /// The title's category by `industryKeywords`, `other` when none matches.
    public static func industry(forTitle title: String) -> String {
        let title = title.lowercased()
        return industryKeywords.first { $0.keywords.contains { title.contains($0) } }?.industry ?? "other"
    }

    /// Comma-separated fields; double quotes protect commas and `""` is a quote (a field cannot span lines).
    static func csvFields(_ line: String) -> [String] {
        var fields: [String] = [], field = "", quoted = false
        var chars = line.makeIterator()
        while let c = chars.next() {
            if quoted {
                if c == "\"" {
                    guard let next = chars.next() else { quoted = false; break }
                    if next == "\"" { field.append("\"") } else { quoted = false; if next == "," { fields.append(field); field = "" } else { field.append(next) } }
                } else { field.append(c) }
            } else if c == "\"" && field.isEmpty { quoted = true }
            else if c == "," { fields.append(field); field = "" }
            else { field.append(c) }
        }
        fields.append(field)
        return fields
    }

    static func median(_ values: [Int]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted(), mid = sorted.count / 2
        return sorted.count % 2 == 1 ? Double(sorted[mid]) : Double(sorted[mid - 1] + sorted[mid]) / 2
    }
}

/// GBK ⇄ UTF-8. Foundation on Linux has no GBK, so glibc's iconv does it there; Darwin's Foundation has
/// GB 18030 (a superset of GBK). A converter is not thread-safe: one per parse.
final class GBK {
    #if canImport(Darwin)
    private static let encoding = String.Encoding(rawValue: CFStringConvertEncodingToNSStringEncoding(
        CFStringEncoding(CFStringEncodings.GB_18030_2000.rawValue)))

    init?() {}
    func decode(_ bytes: [UInt8]) -> String? { String(bytes: bytes, encoding: Self.encoding) }
    func encode(_ text: String) -> [UInt8]? { text.data(using: Self.encoding).map { Array($0) } }
    #else
    private let decoder: iconv_t, encoder: iconv_t

    init?() {
        let decoder = iconv_open("UTF-8", "GBK"), encoder = iconv_open("GBK", "UTF-8")
        let failed = { (cd: iconv_t?) in cd == nil || Int(bitPattern: cd) == -1 }
        guard !failed(decoder), !failed(encoder) else {
            if !failed(decoder) { iconv_close(decoder) }
            if !failed(encoder) { iconv_close(encoder) }
            return nil
        }
        (self.decoder, self.encoder) = (decoder!, encoder!)
    }

    deinit {
        iconv_close(decoder)
        iconv_close(encoder)
    }

    /// nil when the bytes are not valid GBK (including a truncated final character).
    func decode(_ bytes: [UInt8]) -> String? { Self.convert(bytes, decoder).map { String(decoding: $0, as: UTF8.self) } }
    /// nil when the text has a character GBK lacks.
    func encode(_ text: String) -> [UInt8]? { Self.convert(Array(text.utf8), encoder) }

    private static func convert(_ input: [UInt8], _ cd: iconv_t) -> [UInt8]? {
        iconv(cd, nil, nil, nil, nil)  // reset the shift state after a failed call
        // GBK → UTF-8 grows at most 3/2 (2 bytes → 3); UTF-8 → GBK shrinks.
        var input = input.map { CChar(bitPattern: $0) }
        var output = [CChar](repeating: 0, count: input.count * 2 + 16)
        let produced: Int? = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                var inPointer = inBuffer.baseAddress, outPointer = outBuffer.baseAddress
                var inLeft = inBuffer.count, outLeft = outBuffer.count
                let status = iconv(cd, &inPointer, &inLeft, &outPointer, &outLeft)
                return status == -1 || inLeft != 0 ? nil : outBuffer.count - outLeft
            }
        }
        guard let produced else { return nil }
        return output[..<produced].map { UInt8(bitPattern: $0) }
    }
    #endif
}

extension ArraySlice<UInt8> {
    /// The line without a Windows `\r` ending.
    fileprivate var dropTrailingCR: ArraySlice<UInt8> { last == 0x0D ? dropLast() : self }
}

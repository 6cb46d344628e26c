/// RFC 3339 UTC timestamps as the events carry them (`2026-10-28T16:05:12.418Z`), as milliseconds since 1970.
public enum UTCTimestamp {
    /// The instant to the millisecond (a finer fraction is cut off); nil when `text` is not such a timestamp.
    public static func milliseconds(_ text: String) -> Int64? {
        guard Fields.isUTCTimestamp(text) else { return nil }
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64 { range.reduce(0) { $0 * 10 + Int64(b[$1] - 0x30) } }
        let days = Int64(CivilDate(year: Int(number(0..<4)), month: Int(number(5..<7)), day: Int(number(8..<10))).daysSinceEpoch)
        var ms = ((days * 24 + number(11..<13)) * 60 + number(14..<16)) * 60_000 + number(17..<19) * 1000
        // The fraction's first three digits, padded: ".4" is 400 ms.
        let fraction = b[19..<(b.count - 1)].dropFirst()
        for (i, digit) in fraction.prefix(3).enumerated() { ms += Int64(digit - 0x30) * [100, 10, 1][i] }
        return ms
    }

    /// `2026-10-28T16:05:12.418Z`: the form every timestamp the service writes takes.
    public static func string(_ ms: Int64) -> String {
        let (day, msOfDay) = (ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000, ((ms % 86_400_000) + 86_400_000) % 86_400_000)
        let date = CivilDate(daysSinceEpoch: Int(day))
        let (y, m, d) = (Int64(date.year), Int64(date.month), Int64(date.day))
        func pad(_ v: Int64, _ width: Int) -> String {
            let text = String(v)
            return String(repeating: "0", count: max(width - text.count, 0)) + text
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(msOfDay / 3_600_000, 2)):\(pad(msOfDay / 60_000 % 60, 2)):"
            + "\(pad(msOfDay / 1000 % 60, 2)).\(pad(msOfDay % 1000, 3))Z"
    }
}

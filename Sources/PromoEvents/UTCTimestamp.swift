/// RFC 3339 UTC timestamps as the events carry them (`2026-10-28T16:05:12.418Z`), as milliseconds since 1970.
public enum UTCTimestamp {
    /// The instant to the millisecond (a finer fraction is cut off); nil when `text` is not such a timestamp.
    public static func milliseconds(_ text: String) -> Int64? {
        guard Fields.isUTCTimestamp(text) else { return nil }
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64 { range.reduce(0) { $0 * 10 + Int64(b[$1] - 0x30) } }
        let (year, month, day) = (number(0..<4), number(5..<7), number(8..<10))
        // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        var ms = ((days * 24 + number(11..<13)) * 60 + number(14..<16)) * 60_000 + number(17..<19) * 1000
        // The fraction's first three digits, padded: ".4" is 400 ms.
        let fraction = b[19..<(b.count - 1)].dropFirst()
        for (i, digit) in fraction.prefix(3).enumerated() { ms += Int64(digit - 0x30) * [100, 10, 1][i] }
        return ms
    }

    /// `2026-10-28T16:05:12.418Z`: the form every timestamp the service writes takes.
    public static func string(_ ms: Int64) -> String {
        let (day, msOfDay) = (ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000, ((ms % 86_400_000) + 86_400_000) % 86_400_000)
        // Howard Hinnant's civil_from_days.
        let z = day + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let d = dayOfYear - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yearOfEra + era * 400 + (m <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ width: Int) -> String {
            let text = String(v)
            return String(repeating: "0", count: max(width - text.count, 0)) + text
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(msOfDay / 3_600_000, 2)):\(pad(msOfDay / 60_000 % 60, 2)):"
            + "\(pad(msOfDay / 1000 % 60, 2)).\(pad(msOfDay % 1000, 3))Z"
    }
}

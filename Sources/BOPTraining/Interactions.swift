import Foundation
import PromoEvents

/// One purchase (a rating, in XMarket): who, what, when, in which market.
public struct Interaction: Sendable, Equatable {
    public var user: String
    public var item: String
    /// Seconds since 1970, or a date's day number: only the order matters.
    public var time: Int
    public var market: String

    public init(user: String, item: String, time: Int, market: String) {
        (self.user, self.item, self.time, self.market) = (user, item, time, market)
    }
}

/// The XMarket files (`<market>_5core.txt`: a header `userId itemId rate date`, then space-separated rows).
public enum XMarket {
    public static let markets = ["ca", "de", "fr", "in", "jp", "mx", "uk"]

    /// The interactions of each market found in `folder`, in file order. A row that does not parse is reported
    /// (`file:line: why`) and skipped.
    public static func load(_ folder: URL, markets: [String] = XMarket.markets,
                            rejected: (String) -> Void = { _ in }) throws -> [String: [Interaction]] {
        var result: [String: [Interaction]] = [:]
        for market in markets {
            let file = folder.appendingPathComponent("\(market)_5core.txt")
            guard let text = try? String(contentsOf: file, encoding: .utf8) else {
                throw BOPDataError("cannot read \(file.path)")
            }
            var rows: [Interaction] = []
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if number == 0 && fields.first == "userId" { continue }
                if fields.isEmpty { continue }
                guard fields.count >= 4, let date = CivilDate(parsing: String(fields[3])) else {
                    rejected("\(file.lastPathComponent):\(number + 1): expected `userId itemId rate YYYY-MM-DD`")
                    continue
                }
                rows.append(Interaction(user: String(fields[0]), item: String(fields[1]), time: date.daysSinceEpoch, market: market))
            }
            result[market] = rows
        }
        return result
    }
}

public struct BOPDataError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

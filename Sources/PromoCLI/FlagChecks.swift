import ArgumentParser

/// Flags are input like events: a value a command cannot use is refused up front with the flag's name and the
/// range it takes, instead of trapping later (a zero batch in `stride`, seconds that overflow when turned into
/// milliseconds, a pre-sale window that makes an empty range).
enum FlagCheck {
    /// Days of a pre-sale window: item states keep day numbers in 16 bits.
    static let presaleDays = 1...1000
    /// Any layer size: larger ones could not be allocated on a serving machine anyway.
    static let layerSize = 1...16384

    static func inRange<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ flag: String) throws {
        guard range.contains(value) else {
            throw ValidationError("\(flag) must be within \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }

    static func atLeast<T: Comparable>(_ value: T, _ lower: T, _ flag: String) throws {
        guard value >= lower else { throw ValidationError("\(flag) must be at least \(lower), got \(value)") }
    }

    /// A finite number in `range` (NaN and infinities fail every comparison, so they are named explicitly).
    static func finite(_ value: Double, _ range: ClosedRange<Double>, _ flag: String) throws {
        guard value.isFinite, range.contains(value) else {
            throw ValidationError("\(flag) must be a number within \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }

    /// A share strictly between 0 and 1 (0 allowed when `zero`).
    static func share(_ value: Double, _ flag: String, zero: Bool = false) throws {
        guard value.isFinite, value < 1, zero ? value >= 0 : value > 0 else {
            throw ValidationError("\(flag) must be a share \(zero ? "≥ 0" : "> 0") and < 1, got \(value)")
        }
    }

    /// Seconds that become milliseconds in an Int64 (up to about a century).
    static func seconds(_ value: Double, _ flag: String, positive: Bool = false) throws {
        guard value.isFinite, positive ? value > 0 : value >= 0, value <= 3e9 else {
            throw ValidationError("\(flag) must be a number of seconds \(positive ? "> 0" : "≥ 0") and at most 3e9, got \(value)")
        }
    }
}

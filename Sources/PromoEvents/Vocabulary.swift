/// The named numbers events carry, in their canonical order, and the range each must lie in.
public enum Vocabulary {
    public enum Range: Sendable {
        case nonNegative, positive, fraction

        func check(_ value: Double) -> String? {
            switch self {
            case .nonNegative: value >= 0 ? nil : "must be ≥ 0, got \(value)"
            case .positive: value > 0 ? nil : "must be > 0, got \(value)"
            case .fraction: (0...1).contains(value) ? nil : "must be within [0, 1], got \(value)"
            }
        }
    }

    /// `item_profile.sis`: the 90 days before pre-sale.
    public static let history: [(String, Range)] = [
        ("gmv_90d", .nonNegative), ("units_90d", .nonNegative), ("price", .positive),
        ("orders_90d", .nonNegative), ("favourites_90d", .nonNegative),
    ]

    /// `daily_sales.sales`.
    public static let sales: [(String, Range)] = [
        ("gmv", .nonNegative), ("units", .nonNegative), ("orders", .nonNegative), ("deposits", .nonNegative),
        ("cart_adds", .nonNegative), ("favourites", .nonNegative), ("views", .nonNegative), ("price", .positive),
        ("discount", .fraction),
    ]

    /// `activity.features`.
    public static let activity: [(String, Range)] = [
        ("discount_depth", .fraction), ("min_price", .nonNegative), ("duration_days", .nonNegative),
        ("fee", .nonNegative),
    ]

    /// Demographic buckets by dimension; an item's or a day's shares within each dimension sum to 1.
    public static let buyerDimensions: [(dimension: String, buckets: [String])] = [
        ("age", ["age_18_24", "age_25_34", "age_35_49", "age_50_plus"]),
        ("gender", ["gender_f", "gender_m"]),
        ("power", ["power_low", "power_mid", "power_high"]),
        ("city", ["city_tier1", "city_tier2", "city_tier3"]),
    ]

    public static let buyerBuckets: [String] = buyerDimensions.flatMap(\.buckets)

    /// How far a dimension's shares may sum from 1.
    public static let shareTolerance = 0.01

    /// The dimension of a bucket name: the text before its first `_`.
    public static func dimension(of bucket: String) -> Substring {
        bucket.prefix { $0 != "_" }
    }
}

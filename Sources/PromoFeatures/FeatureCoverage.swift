import DINOP
import PromoEvents

/// Which of a model config's inputs the events actually supply: a feature no event carries is a typo or a
/// converter's gap, and a model trained on it sees only missing values.
public enum FeatureCoverage {
    /// The config's names (`sii_fields` entries and `<group>.<name>` features) that no record supplies, in config order.
    public static func unsupplied(_ config: ModelConfig, in records: [ItemRecord]) -> [String] {
        var seen: [FeatureGroup: Set<String>] = [:]
        var ids: Set<String> = []
        for record in records {
            if let profile = record.profile {
                ids.formUnion(profile.ids.keys)
                seen[.sis, default: []].formUnion(profile.sis.keys)
                if let su = profile.su { seen[.su, default: []].formUnion(su.keys) }
            }
            for day in record.sales.values { seen[.dis, default: []].formUnion(day.keys) }
            for day in record.buyers.values { seen[.du, default: []].formUnion(day.keys) }
            if let activity = record.activity { seen[.act, default: []].formUnion(activity.features.keys) }
        }
        var missing = config.siiFields.filter { !ids.contains($0) }
        for group in FeatureGroup.allCases {
            missing += config.names(group).filter { !(seen[group]?.contains($0) ?? false) }.map { "\(group.rawValue).\($0)" }
        }
        return missing
    }
}

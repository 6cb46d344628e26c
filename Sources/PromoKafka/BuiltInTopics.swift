extension TopicSpec {
    /// The specs of `Topics/topics/` compiled in, so that `promo topics` works wherever the binary is (a container,
    /// a package install) without the repository. A test holds them equal to the files, which stay the interface.
    public static func builtIn(group: String = "promo-stream") -> [TopicSpec] {
        let delete = ["cleanup.policy": "delete", "min.insync.replicas": "2"]
        let compact = ["cleanup.policy": "compact", "min.insync.replicas": "2", "retention.ms": "-1"]
        let threeYears = "94608000000"
        let compactedTable = compact.merging(["min.compaction.lag.ms": "3600000", "segment.ms": "86400000"]) { $1 }
        var changelog = TopicSpec(name: "\(group).state-changelog", partitions: 12, replicationFactor: 3, config: compactedTable)
        changelog.isInternal = true
        let week = delete.merging(["retention.ms": "604800000"]) { $1 }
        var vectors = TopicSpec(name: "\(group).competition-vectors", partitions: 12, replicationFactor: 3, config: week)
        var contexts = TopicSpec(name: "\(group).competition-contexts", partitions: 12, replicationFactor: 3, config: week)
        (vectors.isInternal, contexts.isInternal) = (true, true)
        return [
            TopicSpec(name: "promo.activities", partitions: 12, replicationFactor: 3, config: delete.merging(["retention.ms": threeYears]) { $1 }),
            TopicSpec(name: "promo.daily-buyers", partitions: 12, replicationFactor: 3, config: delete.merging(["retention.ms": threeYears]) { $1 }),
            TopicSpec(name: "promo.daily-sales", partitions: 12, replicationFactor: 3, config: delete.merging(["retention.ms": threeYears]) { $1 }),
            TopicSpec(name: "promo.dead-letter", partitions: 12, replicationFactor: 3, config: delete.merging(["retention.ms": "2592000000"]) { $1 }),
            TopicSpec(name: "promo.item-profiles", partitions: 12, replicationFactor: 3, config: compactedTable),
            TopicSpec(name: "promo.models", partitions: 1, replicationFactor: 3,
                      config: compactedTable.merging(["max.message.bytes": "1114112"]) { $1 }),
            TopicSpec(name: "promo.outcomes", partitions: 12, replicationFactor: 3, config: delete.merging(["retention.ms": threeYears]) { $1 }),
            TopicSpec(name: "promo.predictions", partitions: 12, replicationFactor: 3, config: delete.merging(["retention.ms": "7776000000"]) { $1 }),
            TopicSpec(name: "promo.purchases", partitions: 12, replicationFactor: 3, config: delete.merging(["retention.ms": "7776000000"]) { $1 }),
            TopicSpec(name: "promo.recommendations", partitions: 12, replicationFactor: 3, config: delete.merging(["retention.ms": "2592000000"]) { $1 }),
            TopicSpec(name: "promo.rollups", partitions: 12, replicationFactor: 3, config: compact),
            changelog,
            vectors,
            contexts,
        ]
    }
}

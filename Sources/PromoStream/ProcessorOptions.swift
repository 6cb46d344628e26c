public struct ProcessorOptions: Sendable {
    /// Days of the pre-sale window; daily events outside `1...presaleDays` are dead letters.
    public var presaleDays = 20
    /// How long the latest day waits for its buyer profile before it is applied without one (milliseconds).
    public var gracePeriodMs: Int64 = 2 * 3600 * 1000
    /// Named in dead letters: `<group>/<member>` (Topics/README.md).
    public var consumer = "promo"
    /// The application (consumer group) that changelog records name; a restore refuses records of another one.
    public var application = ""
    /// The input topics in the order changelog records list their positions (`Provenance`); messages of other
    /// topics do not move positions.
    public var inputTopics: [String] = []
    /// Items stepped together per GEMM.
    public var batchRows = 512
    /// How often a partition publishes the rollup sums that changed (milliseconds).
    public var rollupIntervalMs: Int64 = 1_000
    /// Items kept whole in memory; beyond this the least recently changed are kept compactly (their inputs only)
    /// and recomputed from their stored days when they change again.
    public var hotItems = 200_000
    /// After a model swap, at most this many items of older versions are recomputed per `process` call, besides
    /// the items the call's messages change (which are recomputed anyway).
    public var recomputePerCall = 1_000
    /// MARKETS.md `competition`: the industry stage's answers (`CompetitionContext`), an input topic of a model with
    /// that extension (listed in `inputTopics` too, so that changelog records carry its position).
    public var competitionContexts = "promo-stream.competition-contexts"
    /// Threads of a `ShardedProcessor`: partition p is processed by shard p mod `threads`.
    public var threads = 1

    public init() {}
}

/// What travels between the item role and the industry stage (MARKETS.md `competition` in the stream). The item
/// role sends each item's `f` as of its latest applied day, and each input partition's day watermark; the stage
/// answers, for every item of its groups at a day's close, the attended vectors the heads need.

/// Item `item`'s `f` as of pre-sale day `day` (its days ≤ `day` applied), computed by model `version`.
public struct CompetitionVector: Sendable, Equatable {
    public var item: String
    public var promotion: String
    /// The raw market and industry ids (the empty string when missing), as MARKETS.md groups them.
    public var market: String
    public var industry: String
    public var day: Int
    public var f: [Float]
    public var version: Int
    /// The input partition that owns the item: where the stage's answer goes.
    public var itemPartition: Int32

    public init(item: String, promotion: String, market: String, industry: String, day: Int, f: [Float], version: Int,
                itemPartition: Int32) {
        (self.item, self.promotion, self.market, self.industry) = (item, promotion, market, industry)
        (self.day, self.f, self.version, self.itemPartition) = (day, f, version, itemPartition)
    }
}

/// Input partition `partition` (of `partitions`) has applied every event of `promotion` dated up to `day`: it has
/// applied an event of a later day, and a partition brings a promotion's days in order. Sent to every stage
/// partition, since any of them may hold items of it.
public struct DayWatermark: Sendable, Equatable {
    public var promotion: String
    public var partition: Int32
    public var partitions: Int32
    public var day: Int

    public init(promotion: String, partition: Int32, partitions: Int32, day: Int) {
        (self.promotion, self.partition, self.partitions, self.day) = (promotion, partition, partitions, day)
    }
}

/// The stage's answer for one item at the close of `day`: `a = Σ_j β_ij f_j` over its group (so that
/// `c = θ f + (1 − θ) a` with the model's θ) and `q` over its neighbours, both from every item's `f` as of `day`.
public struct CompetitionContext: Sendable, Equatable {
    public var item: String
    public var promotion: String
    public var day: Int
    public var a: [Float], q: [Float]
    /// The newest model version among the `f`s it was computed from.
    public var version: Int
    public var itemPartition: Int32

    public init(item: String, promotion: String, day: Int, a: [Float], q: [Float], version: Int, itemPartition: Int32) {
        (self.item, self.promotion, self.day, self.a, self.q) = (item, promotion, day, a, q)
        (self.version, self.itemPartition) = (version, itemPartition)
    }
}

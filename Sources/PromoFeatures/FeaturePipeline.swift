import DINOP
import PromoEvents

/// Events → the model's raw vectors, by the feature names in the model config (MODEL.md, "Inputs of one item").
/// A name the config lists but the events lack is missing (NaN, normalised to 0); names the model lacks are ignored.
public struct FeaturePipeline: Sendable {
    public let mapper: FeatureMapper
    /// Remove the buyer profiles (`su`, `du`), as in the paper's DINOP-u ablation.
    public var withoutBuyerProfiles = false

    public init(config: ModelConfig) { mapper = FeatureMapper(config: config) }

    /// The item's inputs as of `throughDay` (all days when nil).
    public func raw(_ record: ItemRecord, throughDay: Int? = nil) -> RawItem {
        let profile = record.profile
        let ids = profile?.ids ?? [:]
        let days = record.days.filter { throughDay == nil || $0 <= throughDay! }
        let keepBuyers = !withoutBuyerProfiles
        return RawItem(
            sii: mapper.siiIDs(ids),
            sis: mapper.vector(.sis, profile?.sis ?? [:]),
            su: mapper.vector(.su, keepBuyers ? profile?.su ?? [:] : [:]),
            days: days.map { day in
                RawDay(dis: mapper.vector(.dis, record.sales[day]!),
                       du: keepBuyers ? record.buyers[day].map { mapper.vector(.du, $0) } : nil)
            },
            act: record.activity.map { mapper.vector(.act, $0.features) })
    }
}

extension ItemRecord {
    /// Where the item competes (MARKETS.md `competition`): its promotion and raw market and industry ids.
    public var competitionKey: CompetitionKey {
        CompetitionKey(promotion: key.promotionID, market: profile?.ids["market"], industry: profile?.ids["industry"])
    }
}

extension FeaturePipeline {
    /// The model's predictions for records, in order, from their days up to `asOfDay` (all when nil); with
    /// `representation`, each with its `rep` (what the stream publishes when the file carries `bop.rep.weight`).
    /// With MARKETS.md's `competition`, each item's prediction reads the other records of its group and industry
    /// as of the same day.
    public func predictions(_ model: DINOPModel, for records: [ItemRecord], representation: Bool = false,
                            asOfDay: Int? = nil) -> [Prediction] {
        let network = Network(model.parameters)
        var scorer = Scorer(network: network, capacity: 256)
        let items = records.map { network.encode(raw($0, throughDay: asOfDay)) }
        guard model.config.has(extension: ModelExtension.competition) else {
            return scorer.predict(items, representation: representation)
        }
        return scorer.predict(competing: zip(items, records).map { (item: $0, key: $1.competitionKey) },
                              representation: representation)
    }
}

/// Training labels of a promotion's items, from their outcomes (MODEL.md's label rules for BSP and SS).
public enum OutcomeLabels {
    /// Labels per record, in order; records without an outcome get no labels and take no part in BSP / SS.
    public static func labels(_ records: [ItemRecord]) -> [ItemLabels] {
        var out = [ItemLabels](repeating: ItemLabels(), count: records.count)
        for members in Dictionary(grouping: records.indices.filter { records[$0].outcome != nil },
                                  by: { records[$0].key.promotionID }).values {
            let gmv = members.map { records[$0].outcome!.gmv }
            let (best, slot) = PromotionLabels.compute(gmv: gmv, industry: members.map { records[$0].industry })
            for (k, i) in members.enumerated() {
                let joined = records[i].activity == nil ? nil : records[i].outcome!.joinedActivity
                out[i] = ItemLabels(gmv: gmv[k], bestSeller: best[k], slot: slot[k], joinedActivity: joined)
            }
        }
        return out
    }
}

extension PredictionEvent {
    /// The event of a model's prediction for an item; a head the model lacks reads as its uninformed value.
    public init(_ p: Prediction, key: ItemKey, modelVersion: Int, activityID: String?, producedAt: String,
                asOfDay: Int? = nil, sequence: Int? = nil, daysWithoutBuyers: [Int]? = nil, market: String? = nil) {
        self.init(itemID: key.itemID, promotionID: key.promotionID, modelVersion: modelVersion,
                  daysSeen: p.daysSeen, gmv: p.gmv ?? 0, bsp: p.bsp ?? 0, ss: p.slot ?? 10,
                  ssProbabilities: p.slotProbabilities ?? Array(repeating: 0.1, count: 10), ja: p.ja,
                  activityID: p.ja == nil ? nil : activityID, producedAt: producedAt,
                  asOfDay: asOfDay, sequence: sequence, daysWithoutBuyers: daysWithoutBuyers,
                  market: market.flatMap { $0.isEmpty ? nil : $0 }, rep: p.rep)
    }
}

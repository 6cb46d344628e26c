import DINOP
import Foundation

/// A small generated promotion for the demo: items whose promotion-day GMV follows their pre-sale sales and
/// the young-buyer share of their pre-sale days. (The full promotion-world generator replaces this.)
public struct DemoPromotion {
    public var items: [OfflineItem] = []
    public var outcomeGMV: [Double] = []
    public var joined: [Bool] = []

    public init(items count: Int, days: Int, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let industries = ["beauty", "electronics", "apparel", "food", "home"]
        for i in 0..<count {
            var item = OfflineItem(itemID: "item-\(i)")
            let industry = industries[i % industries.count]
            item.ids = ["market": "cn", "industry": industry, "seller": "seller-\(rng.next() % 200)",
                        "brand": "brand-\(rng.next() % 60)"]
            let popularity = 1.2 * rng.normal()
            let price = exp(3.5 + 0.7 * rng.normal())
            let youth = rng.unit()
            item.sis = ["gmv_90d": 90 * price * exp(1 + popularity), "units_90d": 90 * exp(1 + popularity),
                        "price": price, "orders_90d": 80 * exp(1 + popularity), "favourites_90d": 30 * exp(popularity)]
            item.su = Self.buyers(youth: youth, rng: &rng)
            var presale = 0.0, youthSignal = 0.0
            for day in 1...days {
                let units = (exp(1 + popularity + 0.1 * Double(day) + 0.4 * rng.normal())).rounded()
                let dayYouth = min(max(youth + 0.2 * rng.normal(), 0), 1)
                item.sales[day] = ["gmv": units * price, "units": units, "orders": (units * 0.9).rounded(),
                                   "deposits": (units * 0.3).rounded(), "cart_adds": (units * 3).rounded(),
                                   "favourites": (units * 1.5).rounded(), "views": (units * 40).rounded(),
                                   "price": price, "discount": 0.1 + 0.2 * rng.unit()]
                if rng.unit() < 0.9 { item.buyers[day] = Self.buyers(youth: dayYouth, rng: &rng) }
                presale += units * price
                youthSignal += dayYouth - 0.5
            }
            let depth = 0.05 + 0.5 * rng.unit()
            if rng.unit() < 0.5 {
                item.activityID = "act-\(i)"
                item.activity = ["discount_depth": depth, "min_price": price * (1 - depth), "duration_days": 3,
                                 "fee": 10 * rng.unit()]
            }
            items.append(item)
            outcomeGMV.append(20 * presale / Double(days) * exp(1.5 * youthSignal / Double(days) + 0.2 * rng.normal()))
            joined.append(depth > 0.3 && popularity > -0.5)
        }
    }

    static func buyers(youth: Double, rng: inout SeededGenerator) -> [String: Double] {
        let young = youth * 0.8, rest = (1 - young) / 3
        let female = 0.3 + 0.4 * rng.unit(), low = 0.2 + 0.3 * rng.unit(), tier1 = 0.1 + 0.4 * rng.unit()
        return ["age_18_24": young, "age_25_34": rest, "age_35_49": rest, "age_50_plus": rest,
                "gender_f": female, "gender_m": 1 - female,
                "power_low": low, "power_mid": (1 - low) * 0.7, "power_high": (1 - low) * 0.3,
                "city_tier1": tier1, "city_tier2": (1 - tier1) / 3, "city_tier3": 2 * (1 - tier1) / 3]
    }

    /// Training examples with the labels of MODEL.md.
    public func examples(_ mapper: FeatureMapper) -> [TrainingExample] {
        let (bestSeller, slot) = PromotionLabels.compute(gmv: outcomeGMV, industry: items.map { $0.ids["industry"] ?? "" })
        return items.indices.map { i in
            TrainingExample(item: items[i].raw(mapper), labels: ItemLabels(
                gmv: outcomeGMV[i], bestSeller: bestSeller[i], slot: slot[i],
                joinedActivity: items[i].activity == nil ? nil : joined[i]))
        }
    }

    /// The items' events as JSON lines, as `promo predict` reads them.
    public func eventLines() -> [String] {
        func json(_ object: [String: Any]) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        var lines: [String] = []
        for item in items {
            var profile: [String: Any] = ["type": "item_profile", "item_id": item.itemID, "sis": item.sis, "su": item.su]
            for (field, id) in item.ids { profile[field] = id }
            lines.append(json(profile))
            for day in item.days {
                lines.append(json(["type": "daily_sales", "item_id": item.itemID, "day": day, "sales": item.sales[day]!]))
                if let buyers = item.buyers[day] {
                    lines.append(json(["type": "daily_buyers", "item_id": item.itemID, "day": day, "buyers": buyers]))
                }
            }
            if let activity = item.activity {
                lines.append(json(["type": "activity", "item_id": item.itemID, "activity_id": item.activityID ?? "",
                                   "features": activity]))
            }
        }
        return lines
    }
}

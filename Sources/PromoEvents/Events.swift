/// The events of promo-stream's topics (Topics/README.md). Numbers in named maps are by feature name; a name
/// absent from a map is *missing* (the model takes its mean), never zero.

/// The static profile of an item in a promotion (topic `promo.item-profiles`, compacted by item).
public struct ItemProfile: Sendable, Equatable {
    public static let schema = "item_profile/1"
    /// The categorical fields an item profile carries, in the model's default `sii_fields` order.
    public static let idFields = ["market", "industry", "seller", "brand"]
    /// Top-level fields that are not categorical ids; every other top-level string is one (`ids`).
    public static let reservedFields: Set<String> = ["schema", "item_id", "promotion_id", "title", "sis", "su"]

    public var itemID: String
    public var promotionID: String
    /// `market`, `industry`, `seller`, `brand`, and any other top-level string field (a converter's own category,
    /// say): an absent field is unknown.
    public var ids: [String: String]
    public var title: String?
    /// 90-day sales before pre-sale, by name (`gmv_90d`, `units_90d`, `orders_90d`, `favourites_90d`, `price`).
    public var sis: [String: Double]
    /// The share of the item's buyers per demographic bucket; nil when unknown.
    public var su: [String: Double]?

    public init(itemID: String, promotionID: String, ids: [String: String] = [:], title: String? = nil,
                sis: [String: Double] = [:], su: [String: Double]? = nil) {
        self.itemID = itemID
        self.promotionID = promotionID
        self.ids = ids
        self.title = title
        self.sis = sis
        self.su = su
    }
}

/// One item's sales on one pre-sale day (topic `promo.daily-sales`).
public struct DailySales: Sendable, Equatable {
    public static let schema = "daily_sales/1"
    public var itemID: String
    public var promotionID: String
    /// 1-based day of the pre-sale window.
    public var day: Int
    public var date: String?
    public var sales: [String: Double]

    public init(itemID: String, promotionID: String, day: Int, date: String? = nil, sales: [String: Double]) {
        self.itemID = itemID
        self.promotionID = promotionID
        self.day = day
        self.date = date
        self.sales = sales
    }
}

/// The demographic mix of one item's buyers on one pre-sale day (topic `promo.daily-buyers`).
public struct DailyBuyers: Sendable, Equatable {
    public static let schema = "daily_buyers/1"
    public var itemID: String
    public var promotionID: String
    public var day: Int
    /// Share per bucket; shares within a dimension sum to 1.
    public var buyers: [String: Double]
    public var buyerCount: Int?

    public init(itemID: String, promotionID: String, day: Int, buyers: [String: Double], buyerCount: Int? = nil) {
        self.itemID = itemID
        self.promotionID = promotionID
        self.day = day
        self.buyers = buyers
        self.buyerCount = buyerCount
    }
}

/// A promotional activity offered to an item, for the join-activity prediction (topic `promo.activities`).
public struct ActivityOffer: Sendable, Equatable {
    public static let schema = "activity/1"
    public var itemID: String
    public var promotionID: String
    public var activityID: String
    public var features: [String: Double]

    public init(itemID: String, promotionID: String, activityID: String, features: [String: Double]) {
        self.itemID = itemID
        self.promotionID = promotionID
        self.activityID = activityID
        self.features = features
    }
}

/// What happened on the promotion day (topic `promo.outcomes`): the training and evaluation labels.
public struct Outcome: Sendable, Equatable {
    public static let schema = "outcome/1"
    public var itemID: String
    public var promotionID: String
    /// The promotion day's GMV, money scale.
    public var gmv: Double
    public var units: Double?
    public var joinedActivity: Bool?

    public init(itemID: String, promotionID: String, gmv: Double, units: Double? = nil, joinedActivity: Bool? = nil) {
        self.itemID = itemID
        self.promotionID = promotionID
        self.gmv = gmv
        self.units = units
        self.joinedActivity = joinedActivity
    }
}

/// A refreshed prediction for one item (topic `promo.predictions`).
public struct PredictionEvent: Sendable, Equatable {
    public static let schema = "prediction/1"
    public var itemID: String
    public var promotionID: String
    public var modelVersion: Int
    public var daysSeen: Int
    public var gmv: Double
    public var bsp: Double
    public var ss: Int
    public var ssProbabilities: [Double]
    public var ja: Double?
    public var activityID: String?
    /// RFC 3339, UTC.
    public var producedAt: String
    /// The latest pre-sale day the prediction has seen (the service's "as of"); nil before any day.
    public var asOfDay: Int?
    /// Counts the item's predictions from one producer: a consumer keeps the highest it has seen.
    public var sequence: Int?
    /// Days applied without their buyer profile (after the grace period, or closed by a later day): their
    /// buyer features took the missing-value default. Empty when every day had one.
    public var daysWithoutBuyers: [Int]?
    /// The item's market (its profile's `market` id), when it has one: for per-market views downstream.
    public var market: String?
    /// The item's DINOP representation (MODEL.md `rep`) as of this prediction, when the serving model carries
    /// BOP.md's `bop.rep.weight`: the recommendation role adds it to the item's candidate token. Float32 values: they
    /// are written in float32's shortest digits.
    public var rep: [Double]?

    /// The most entries `rep` may hold: a prediction stays one modest message.
    public static let largestRepresentation = 16_384

    public init(itemID: String, promotionID: String, modelVersion: Int, daysSeen: Int, gmv: Double, bsp: Double,
                ss: Int, ssProbabilities: [Double], ja: Double? = nil, activityID: String? = nil, producedAt: String,
                asOfDay: Int? = nil, sequence: Int? = nil, daysWithoutBuyers: [Int]? = nil, market: String? = nil,
                rep: [Double]? = nil) {
        self.itemID = itemID
        self.promotionID = promotionID
        self.modelVersion = modelVersion
        self.daysSeen = daysSeen
        self.gmv = gmv
        self.bsp = bsp
        self.ss = ss
        self.ssProbabilities = ssProbabilities
        self.ja = ja
        self.activityID = activityID
        self.producedAt = producedAt
        self.asOfDay = asOfDay
        self.sequence = sequence
        self.daysWithoutBuyers = daysWithoutBuyers
        self.market = market
        self.rep = rep
    }
}

/// A new model version on `promo.models`; the weight file follows in `chunks` messages.
public struct ModelAnnouncement: Sendable, Equatable {
    public static let schema = "model_announcement/1"
    public var version: Int
    public var parent: Int?
    /// Lower-case hex SHA-256 of the weight file.
    public var sha256: String
    public var bytes: Int
    public var chunks: Int
    public var createdAt: String
    public var metrics: [String: Double]
    public var trainedOn: String?

    public init(version: Int, parent: Int?, sha256: String, bytes: Int, chunks: Int, createdAt: String,
                metrics: [String: Double] = [:], trainedOn: String? = nil) {
        self.version = version
        self.parent = parent
        self.sha256 = sha256
        self.bytes = bytes
        self.chunks = chunks
        self.createdAt = createdAt
        self.metrics = metrics
        self.trainedOn = trainedOn
    }
}

/// Predicted GMV summed over one partition's items in a scope (topic `promo.rollups`): the platform, an industry or
/// a seller of a promotion. A reader adds the latest record of every partition for the scope's total.
public struct Rollup: Sendable, Equatable {
    public static let schema = "rollup/1"
    public static let scopes = ["platform", "market", "industry", "seller"]
    public var promotionID: String
    public var scope: String
    /// The industry or seller id; `all` for the platform.
    public var id: String
    public var partition: Int
    public var gmv: Double
    public var items: Int
    public var producedAt: String

    public init(promotionID: String, scope: String, id: String, partition: Int, gmv: Double, items: Int, producedAt: String) {
        self.promotionID = promotionID
        self.scope = scope
        self.id = id
        self.partition = partition
        self.gmv = gmv
        self.items = items
        self.producedAt = producedAt
    }
}

/// An input that could not be used, kept with its raw bytes and where it came from (topic `promo.dead-letter`).
public struct DeadLetter: Sendable, Equatable {
    public static let schema = "dead_letter/1"
    /// The most bytes of the input's value and key a dead letter carries: an input topic may take messages larger
    /// than the dead-letter topic's 1,000,000 bytes, and base64 grows them by a third.
    public static let maxCarriedValue = 524_288, maxCarriedKey = 16_384
    public var sourceTopic: String
    public var partition: Int
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var reason: String
    public var failedAt: String
    public var consumer: String
    /// The input's full sizes where `key` or `value` holds only their first `maxCarriedKey` / `maxCarriedValue`
    /// bytes; nil where they hold all of it.
    public var keyBytes: Int?, valueBytes: Int?

    public init(sourceTopic: String, partition: Int, offset: Int64, key: [UInt8]?, value: [UInt8], reason: String,
                failedAt: String, consumer: String, keyBytes: Int? = nil, valueBytes: Int? = nil) {
        self.sourceTopic = sourceTopic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.reason = reason
        self.failedAt = failedAt
        self.consumer = consumer
        self.keyBytes = keyBytes
        self.valueBytes = valueBytes
    }

    /// The dead letter of an input, cut to what it may carry.
    public static func carrying(sourceTopic: String, partition: Int, offset: Int64, key: [UInt8]?, value: [UInt8],
                                reason: String, failedAt: String, consumer: String) -> DeadLetter {
        let keyCut = (key?.count ?? 0) > maxCarriedKey, valueCut = value.count > maxCarriedValue
        return DeadLetter(sourceTopic: sourceTopic, partition: partition, offset: offset,
                          key: keyCut ? key.map { Array($0.prefix(maxCarriedKey)) } : key,
                          value: valueCut ? Array(value.prefix(maxCarriedValue)) : value, reason: reason, failedAt: failedAt,
                          consumer: consumer, keyBytes: keyCut ? key?.count : nil, valueBytes: valueCut ? value.count : nil)
    }
}

/// A user's purchase of an item (topic `promo.purchases`, keyed by user): the input of the BOP recommendation
/// stream (BOP.md), whose history of a user is their purchases in time order.
public struct Purchase: Sendable, Equatable {
    public static let schema = "purchase/1"
    public var userID: String
    public var itemID: String
    /// The market the item was bought in (a market id as in an item profile); nil when unknown (unlisted).
    public var market: String?
    /// When the purchase was made: RFC 3339, UTC, with milliseconds.
    public var purchasedAt: String

    public init(userID: String, itemID: String, market: String? = nil, purchasedAt: String) {
        self.userID = userID
        self.itemID = itemID
        self.market = market
        self.purchasedAt = purchasedAt
    }
}

/// A user's top recommended items for a promotion in a market (topic `promo.recommendations`, keyed by user): the
/// output of the BOP recommendation stream.
public struct Recommendation: Sendable, Equatable {
    public static let schema = "recommendation/1"
    /// The most items one recommendation lists: with ids of `Event.maxIDLength` characters, each written in up
    /// to 6 bytes (a control character's `\u00XX`), 500 items stay under a Kafka message's default 1,000,000 bytes.
    public static let maxItems = 500

    /// A recommended item and the model's probability that the user buys it through the promotion.
    public struct RecommendedItem: Sendable, Equatable {
        public var itemID: String
        /// P(buy), in [0, 1].
        public var probability: Double

        public init(itemID: String, probability: Double) {
            self.itemID = itemID
            self.probability = probability
        }
    }

    /// What made the stream recompute the user's recommendation.
    public enum Trigger: String, Sendable, CaseIterable {
        /// The user bought something: their history changed.
        case purchase
        /// The promotion's candidate items changed at a day's close.
        case candidates
    }

    public var userID: String
    /// The market the items are offered in (a market id as in an item profile); nil when unknown (unlisted).
    public var market: String?
    public var promotionID: String
    /// At most `maxItems`, by probability descending, each item once.
    public var items: [RecommendedItem]
    public var modelVersion: Int
    /// How many of the user's purchases the scoring used.
    public var historyLength: Int
    public var trigger: Trigger
    /// The time of the purchase or candidate change the recommendation reflects: RFC 3339, UTC.
    public var asOf: String
    /// RFC 3339, UTC.
    public var producedAt: String

    public init(userID: String, market: String? = nil, promotionID: String, items: [RecommendedItem], modelVersion: Int,
                historyLength: Int, trigger: Trigger, asOf: String, producedAt: String) {
        self.userID = userID
        self.market = market
        self.promotionID = promotionID
        self.items = items
        self.modelVersion = modelVersion
        self.historyLength = historyLength
        self.trigger = trigger
        self.asOf = asOf
        self.producedAt = producedAt
    }
}

/// Any event of the interface.
public enum Event: Sendable, Equatable {
    /// The longest id of any event (`item_id`, `promotion_id`, `user_id`, `activity_id`, `market` and a profile's
    /// other ids), in characters (Unicode scalars): ids become keys, state records and parts of outputs, and each
    /// must stay within one Kafka message.
    public static let maxIDLength = 256

    case profile(ItemProfile)
    case sales(DailySales)
    case buyers(DailyBuyers)
    case activity(ActivityOffer)
    case outcome(Outcome)
    case prediction(PredictionEvent)
    case announcement(ModelAnnouncement)
    case deadLetter(DeadLetter)
    case rollup(Rollup)
    case purchase(Purchase)
    case recommendation(Recommendation)

    /// The item the event is about, which is also its Kafka key; nil for events not about one item.
    public var itemID: String? {
        switch self {
        case .profile(let e): e.itemID
        case .sales(let e): e.itemID
        case .buyers(let e): e.itemID
        case .activity(let e): e.itemID
        case .outcome(let e): e.itemID
        case .prediction(let e): e.itemID
        case .announcement, .deadLetter, .rollup, .purchase, .recommendation: nil
        }
    }

    /// The key the event is produced with, by which its topic is partitioned: the item for item events, the user
    /// for `purchase/1` and `recommendation/1`; nil for events whose key is not one of their fields (a model
    /// announcement's is `model`, a dead letter's the original key, a rollup's names its partition).
    public var partitionKey: String? {
        switch self {
        case .purchase(let e): e.userID
        case .recommendation(let e): e.userID
        case .profile, .sales, .buyers, .activity, .outcome, .prediction: itemID
        case .announcement, .deadLetter, .rollup: nil
        }
    }

    public var schema: String {
        switch self {
        case .profile: ItemProfile.schema
        case .sales: DailySales.schema
        case .buyers: DailyBuyers.schema
        case .activity: ActivityOffer.schema
        case .outcome: Outcome.schema
        case .prediction: PredictionEvent.schema
        case .announcement: ModelAnnouncement.schema
        case .deadLetter: DeadLetter.schema
        case .rollup: Rollup.schema
        case .purchase: Purchase.schema
        case .recommendation: Recommendation.schema
        }
    }
}

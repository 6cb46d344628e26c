import Foundation

extension Event {
    /// The event as one line of JSON (no trailing newline), fields in a fixed order.
    public func encoded() -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("schema", schema)
        switch self {
        case .profile(let e):
            w.item(e.itemID, e.promotionID)
            for name in ItemProfile.idFields { if let id = e.ids[name] { w.field(name, id) } }
            for (name, id) in e.ids.sorted(by: { $0.key < $1.key })
            where !ItemProfile.idFields.contains(name) && !ItemProfile.reservedFields.contains(name) {
                w.field(name, id)
            }
            if let title = e.title { w.field("title", title) }
            w.numbers("sis", e.sis, order: Vocabulary.history.map(\.0))
            if let su = e.su { w.numbers("su", su, order: Vocabulary.buyerBuckets) }
        case .sales(let e):
            w.item(e.itemID, e.promotionID)
            w.field("day", e.day)
            if let date = e.date { w.field("date", date) }
            w.numbers("sales", e.sales, order: Vocabulary.sales.map(\.0))
        case .buyers(let e):
            w.item(e.itemID, e.promotionID)
            w.field("day", e.day)
            w.numbers("buyers", e.buyers, order: Vocabulary.buyerBuckets)
            if let count = e.buyerCount { w.field("buyer_count", count) }
        case .activity(let e):
            w.item(e.itemID, e.promotionID)
            w.field("activity_id", e.activityID)
            w.numbers("features", e.features, order: Vocabulary.activity.map(\.0))
        case .outcome(let e):
            w.item(e.itemID, e.promotionID)
            w.field("gmv", e.gmv)
            if let units = e.units { w.field("units", units) }
            if let joined = e.joinedActivity { w.field("joined_activity", joined) }
        case .prediction(let e):
            w.item(e.itemID, e.promotionID)
            w.field("model_version", e.modelVersion)
            w.field("days_seen", e.daysSeen)
            w.field("gmv", e.gmv)
            w.field("bsp", e.bsp)
            w.field("ss", e.ss)
            w.key("ss_probs")
            w.beginArray()
            e.ssProbabilities.forEach { w.number($0) }
            w.endArray()
            if let ja = e.ja { w.field("ja", ja) }
            if let activity = e.activityID { w.field("activity_id", activity) }
            w.field("produced_at", e.producedAt)
            if let day = e.asOfDay { w.field("as_of_day", day) }
            if let sequence = e.sequence { w.field("sequence", sequence) }
            if let days = e.daysWithoutBuyers {
                w.key("days_without_buyers")
                w.beginArray()
                days.forEach { w.number(Double($0)) }
                w.endArray()
            }
            if let market = e.market { w.field("market", market) }
            if let rep = e.rep {
                w.key("rep")
                w.beginArray()
                rep.forEach { w.number(Float($0)) }
                w.endArray()
            }
        case .announcement(let e):
            w.field("version", e.version)
            w.key("parent")
            if let parent = e.parent { w.integer(Int64(parent)) } else { w.null() }
            w.field("sha256", e.sha256)
            w.field("bytes", e.bytes)
            w.field("chunks", e.chunks)
            w.field("created_at", e.createdAt)
            if !e.metrics.isEmpty { w.numbers("metrics", e.metrics, order: []) }
            if let trainedOn = e.trainedOn { w.field("trained_on", trainedOn) }
        case .deadLetter(let e):
            w.field("source_topic", e.sourceTopic)
            w.field("partition", e.partition)
            w.key("offset")
            w.integer(e.offset)
            w.key("key")
            if let key = e.key { w.string(Data(key).base64EncodedString()) } else { w.null() }
            w.field("value", Data(e.value).base64EncodedString())
            w.field("reason", e.reason)
            w.field("failed_at", e.failedAt)
            w.field("consumer", e.consumer)
            if let n = e.keyBytes { w.field("key_bytes", n) }
            if let n = e.valueBytes { w.field("value_bytes", n) }
        case .rollup(let e):
            w.field("promotion_id", e.promotionID)
            w.field("scope", e.scope)
            w.field("id", e.id)
            w.field("partition", e.partition)
            w.field("gmv", e.gmv)
            w.field("items", e.items)
            w.field("produced_at", e.producedAt)
        case .purchase(let e):
            w.field("user_id", e.userID)
            w.field("item_id", e.itemID)
            if let market = e.market { w.field("market", market) }
            w.field("purchased_at", e.purchasedAt)
        case .recommendation(let e):
            w.field("user_id", e.userID)
            if let market = e.market { w.field("market", market) }
            w.field("promotion_id", e.promotionID)
            w.key("items")
            w.beginArray()
            for item in e.items {
                w.beginObject()
                w.field("item_id", item.itemID)
                w.field("probability", item.probability)
                w.endObject()
            }
            w.endArray()
            w.field("model_version", e.modelVersion)
            w.field("history_length", e.historyLength)
            w.field("trigger", e.trigger.rawValue)
            w.field("as_of", e.asOf)
            w.field("produced_at", e.producedAt)
        }
        w.endObject()
        return w.bytes
    }
}

extension JSONWriter {
    fileprivate mutating func item(_ itemID: String, _ promotionID: String) {
        field("item_id", itemID)
        field("promotion_id", promotionID)
    }
}

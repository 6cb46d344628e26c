import Foundation
import PromoEvents
import Testing

// purchase/1 and recommendation/1: the user-keyed events of the BOP recommendation role.

let purchase = #"{"schema":"purchase/1","user_id":"A2FQ7Y3X0K8M4L","item_id":"B00ZV9RDKK","market":"de","purchased_at":"2026-07-08T09:14:27.512Z"}"#

let recommendation = #"{"schema":"recommendation/1","user_id":"A2FQ7Y3X0K8M4L","market":"de","promotion_id":"prime-day-2026","items":[{"item_id":"B01DFKC2SO","probability":0.61},{"item_id":"B00NH11KIK","probability":0.47},{"item_id":"B07FZ8S74R","probability":0.32}],"model_version":2,"history_length":7,"trigger":"purchase","as_of":"2026-07-08T09:14:27.512Z","produced_at":"2026-07-08T09:14:27.806Z"}"#

/// `json` with `from` replaced by `to`; records an issue when `from` is not there (the variant would be the original).
func variant(of json: String, _ from: String, _ to: String) -> String {
    #expect(json.contains(from), "\(from) is not in the event")
    return json.replacingOccurrences(of: from, with: to)
}

@Test("purchase/1 decodes its fields; an absent or null market is unlisted (nil); the key is the user")
func purchaseDecodes() throws {
    guard case .purchase(let p) = try EventDecoder().decode(Array(purchase.utf8)) else {
        Issue.record("not a purchase")
        return
    }
    #expect(p == Purchase(userID: "A2FQ7Y3X0K8M4L", itemID: "B00ZV9RDKK", market: "de", purchasedAt: "2026-07-08T09:14:27.512Z"))
    let event = Event.purchase(p)
    #expect(event.schema == "purchase/1")
    #expect(event.partitionKey == "A2FQ7Y3X0K8M4L")
    #expect(event.itemID == nil, "itemID is the item key of item events only")
    for unlisted in [variant(of: purchase, #","market":"de""#, ""), variant(of: purchase, #""market":"de""#, #""market":null"#)] {
        guard case .purchase(let p) = try EventDecoder().decode(Array(unlisted.utf8)) else {
            Issue.record("not a purchase: \(unlisted)")
            continue
        }
        #expect(p.market == nil)
    }
}

@Test("purchase/1 refuses a missing user, an empty id or market, and a timestamp that is not RFC 3339 UTC")
func purchaseRefusals() {
    func bad(_ from: String, _ to: String) -> String? { refusal(variant(of: purchase, from, to)) }
    #expect(refusal(purchase) == nil)
    #expect(bad(#""user_id":"A2FQ7Y3X0K8M4L","#, "") == "user_id: required")
    #expect(bad(#""user_id":"A2FQ7Y3X0K8M4L""#, #""user_id":"""#) == "user_id: must not be empty")
    #expect(bad(#""user_id":"A2FQ7Y3X0K8M4L""#, #""user_id":42"#) == "user_id: expected a string, got a number")
    #expect(bad(#""item_id":"B00ZV9RDKK","#, "") == "item_id: required")
    #expect(bad(#""market":"de""#, #""market":"""#) == "market: must not be empty")
    #expect(bad(#","purchased_at":"2026-07-08T09:14:27.512Z""#, "") == "purchased_at: required")
    let notUTC = [
        "2026-07-08 09:14:27.512Z", "2026-07-08T09:14:27.512", "2026-07-08T09:14:27.512+02:00", "2026-07-08",
        "2026-07-08T09:14:27.Z", "2026-02-30T09:14:27Z", "2026-13-08T09:14:27Z", "2026-07-08T24:00:00Z",
        "2026-07-08T09:60:00Z", "2026-07-08t09:14:27z", "2026-7-8T9:14:27Z", "", "１２３４-07-08T09:14:27Z",
    ]
    for text in notUTC {
        #expect(bad("2026-07-08T09:14:27.512Z", text)
                == "purchased_at: must be an RFC 3339 UTC timestamp like 2026-10-28T16:05:12.418Z, got \(quoted(text))", "\(text)")
    }
    for text in ["2026-07-08T09:14:27Z", "2028-02-29T00:00:00.000Z", "2026-12-31T23:59:60.999999Z", "2000-02-29T12:00:00.5Z"] {
        #expect(bad("2026-07-08T09:14:27.512Z", text) == nil, "\(text)")
    }
    #expect(bad("2026-07-08T09:14:27.512Z", "2100-02-29T00:00:00Z")?.hasPrefix("purchased_at: must be an RFC 3339") == true)
}

@Test("recommendation/1 decodes its fields, in order, with its trigger")
func recommendationDecodes() throws {
    guard case .recommendation(let r) = try EventDecoder().decode(Array(recommendation.utf8)) else {
        Issue.record("not a recommendation")
        return
    }
    #expect(r.userID == "A2FQ7Y3X0K8M4L" && r.market == "de" && r.promotionID == "prime-day-2026")
    #expect(r.items == [.init(itemID: "B01DFKC2SO", probability: 0.61), .init(itemID: "B00NH11KIK", probability: 0.47),
                        .init(itemID: "B07FZ8S74R", probability: 0.32)])
    #expect(r.modelVersion == 2 && r.historyLength == 7 && r.trigger == .purchase)
    #expect(r.asOf == "2026-07-08T09:14:27.512Z" && r.producedAt == "2026-07-08T09:14:27.806Z")
    #expect(Event.recommendation(r).partitionKey == "A2FQ7Y3X0K8M4L")
    #expect(Event.recommendation(r).itemID == nil)

    // An empty list, equal probabilities (ties in any order), the other trigger, no market: all valid.
    let empty = variant(of: recommendation, #""items":[{"item_id":"B01DFKC2SO","probability":0.61},{"item_id":"B00NH11KIK","probability":0.47},{"item_id":"B07FZ8S74R","probability":0.32}]"#, #""items":[]"#)
    let tied = variant(of: recommendation, "0.47", "0.61")
    let candidates = variant(of: recommendation, #""trigger":"purchase""#, #""trigger":"candidates""#)
    let unlisted = variant(of: recommendation, #""market":"de","#, "")
    for json in [empty, tied, candidates, unlisted] { #expect(refusal(json) == nil, "\(json)") }
    if case .recommendation(let r)? = try? EventDecoder().decode(Array(candidates.utf8)) { #expect(r.trigger == .candidates) }
    if case .recommendation(let r)? = try? EventDecoder().decode(Array(empty.utf8)) { #expect(r.items.isEmpty) }
    if case .recommendation(let r)? = try? EventDecoder().decode(Array(unlisted.utf8)) { #expect(r.market == nil) }
}

@Test("recommendation/1 refuses unsorted items, a repeated item, a probability outside [0, 1] and an unknown trigger")
func recommendationRefusals() {
    func bad(_ from: String, _ to: String) -> String? { refusal(variant(of: recommendation, from, to)) }
    #expect(bad("0.32", "0.52")
            == "items[2].probability: must be ≤ items[1].probability 0.47 (items are sorted by probability, descending), got 0.52")
    #expect(bad("0.61", "0.3")
            == "items[1].probability: must be ≤ items[0].probability 0.3 (items are sorted by probability, descending), got 0.47")
    #expect(bad(#""item_id":"B07FZ8S74R""#, #""item_id":"B01DFKC2SO""#)
            == #"items[2].item_id: duplicates items[0].item_id "B01DFKC2SO""#)
    #expect(bad("0.61", "1.2") == "items[0].probability: must be within [0, 1], got 1.2")
    #expect(bad("0.32", "-0.1") == "items[2].probability: must be within [0, 1], got -0.1")
    #expect(bad("0.32", "NaN")?.hasPrefix("items[2].probability: must be a finite number") == true)
    #expect(bad("0.32", "true") == "items[2].probability: expected a number, got a boolean")
    #expect(bad(#","probability":0.32"#, "") == "items[2].probability: required")
    #expect(bad(#""item_id":"B07FZ8S74R""#, #""item_id":"""#) == "items[2].item_id: must not be empty")
    #expect(bad(#"{"item_id":"B07FZ8S74R","probability":0.32}"#, #""B07FZ8S74R""#) == "items[2]: expected an object, got a string")
    #expect(bad(#""trigger":"purchase""#, #""trigger":"restock""#) == #"trigger: must be one of purchase, candidates, got "restock""#)
    #expect(bad(#""trigger":"purchase""#, #""trigger":"Purchase""#) == #"trigger: must be one of purchase, candidates, got "Purchase""#)
    #expect(bad(#","trigger":"purchase""#, "") == "trigger: required")
    #expect(bad(#""model_version":2"#, #""model_version":0"#) == "model_version: must be ≥ 1, got 0")
    #expect(bad(#""history_length":7"#, #""history_length":-1"#) == "history_length: must be ≥ 0, got -1")
    #expect(bad(#""history_length":7"#, #""history_length":7.5"#) == "history_length: expected an integer, got 7.5")
    #expect(bad(#""user_id":"A2FQ7Y3X0K8M4L","#, "") == "user_id: required")
    #expect(bad(#""promotion_id":"prime-day-2026","#, "") == "promotion_id: required")
    #expect(bad(#""as_of":"2026-07-08T09:14:27.512Z""#, #""as_of":"yesterday""#)
            == #"as_of: must be an RFC 3339 UTC timestamp like 2026-10-28T16:05:12.418Z, got "yesterday""#)
    #expect(bad("2026-07-08T09:14:27.806Z", "2026-07-08T11:14:27.806+02:00")?.hasPrefix("produced_at: must be an RFC 3339") == true)

    // At most 500 items.
    func items(_ count: Int) -> String {
        let list = (0..<count).map { #"{"item_id":"B\#($0)","probability":\#(Double(count - $0) / Double(count))}"# }
        return recommendation.replacing(#/"items":\[[^\]]*\]/#, with: #""items":[\#(list.joined(separator: ","))]"#)
    }
    #expect(refusal(items(500)) == nil)
    #expect(refusal(items(501)) == "items: must hold at most 500 items, got 501")
    #expect(bad(#""items":["#, #""items":"x","old":["#) == "items: expected an array, got a string")
}

@Test("purchase/1 and recommendation/1 encode to bytes that decode to the same event")
func userEventsRoundTrip() throws {
    let decoder = EventDecoder()
    let events: [Event] = [
        .purchase(Purchase(userID: "A2FQ7Y3X0K8M4L", itemID: "B00ZV9RDKK", market: "de", purchasedAt: "2026-07-08T09:14:27.512Z")),
        .purchase(Purchase(userID: "u \"quoted\" \u{1}", itemID: "B00ZV9RDKK", purchasedAt: "2026-07-08T09:14:27Z")),
        .recommendation(Recommendation(
            userID: "A2FQ7Y3X0K8M4L", market: "de", promotionID: "prime-day-2026",
            items: [.init(itemID: "B01DFKC2SO", probability: 1), .init(itemID: "B00NH11KIK", probability: 0.1 + 0.2),
                    .init(itemID: "B07FZ8S74R", probability: 0.1 + 0.2), .init(itemID: "B00JM5GW10", probability: 1e-7),
                    .init(itemID: "B0756CYWWD", probability: 0)],
            modelVersion: 2, historyLength: 0, trigger: .candidates, asOf: "2026-07-08T00:00:00.000Z",
            producedAt: "2026-07-08T00:00:01.250Z")),
        .recommendation(Recommendation(userID: "u", promotionID: "p", items: [], modelVersion: 1, historyLength: 49,
                                       trigger: .purchase, asOf: "2026-07-08T09:14:27.512Z", producedAt: "2026-07-08T09:14:27.512Z")),
    ]
    for event in events {
        let bytes = event.encoded()
        #expect(try decoder.decode(bytes) == event, "\(String(decoding: bytes, as: UTF8.self))")
        #expect(try decoder.decode(bytes).encoded() == bytes, "encoding is deterministic")
    }
    // The field order of the encoding, and an absent market left out rather than null.
    #expect(String(decoding: events[0].encoded(), as: UTF8.self)
            == #"{"schema":"purchase/1","user_id":"A2FQ7Y3X0K8M4L","item_id":"B00ZV9RDKK","market":"de","purchased_at":"2026-07-08T09:14:27.512Z"}"#)
    #expect(String(decoding: events[3].encoded(), as: UTF8.self)
            == #"{"schema":"recommendation/1","user_id":"u","promotion_id":"p","items":[],"model_version":1,"history_length":49,"trigger":"purchase","as_of":"2026-07-08T09:14:27.512Z","produced_at":"2026-07-08T09:14:27.512Z"}"#)
    // The example files' bytes, re-encoded, are the compact form of the same JSON.
    #expect(refusal(recommendation) == nil && refusal(purchase) == nil)
    if let event = try? decoder.decode(Array(recommendation.utf8)) {
        #expect(String(decoding: event.encoded(), as: UTF8.self) == recommendation)
    }
    if let event = try? decoder.decode(Array(purchase.utf8)) {
        #expect(String(decoding: event.encoded(), as: UTF8.self) == purchase)
    }
}

@Test("UTC timestamps: milliseconds and back, leap days, the fraction cut to milliseconds, years 0000 to 9999")
func utcTimestamps() {
    for text in ["1970-01-01T00:00:00.000Z", "2000-02-29T23:59:59.999Z", "2026-11-11T00:00:00.000Z", "0000-01-01T00:00:00.000Z",
                 "9999-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"] {
        #expect(UTCTimestamp.milliseconds(text).map(UTCTimestamp.string) == text)
    }
    #expect(UTCTimestamp.milliseconds("1970-01-01T00:00:01Z") == 1000)
    #expect(UTCTimestamp.milliseconds("1970-01-01T00:00:00.4189Z") == 418)
    #expect(UTCTimestamp.milliseconds("1969-12-31T23:59:59.999Z") == -1)
    #expect(UTCTimestamp.milliseconds("2026-02-29T00:00:00Z") == nil && UTCTimestamp.milliseconds("2026-11-11") == nil)
}

@Test("prediction/1's rep: float32 values come back bit for bit; an empty, oversized or non-numeric rep is refused")
func predictionRepresentation() throws {
    var rng = SystemRandomNumberGenerator()
    let rep = (0..<300).map { _ in Double(Float.random(in: -1e4...1e4, using: &rng)) } + [Double(Float.leastNonzeroMagnitude), Double(Float.greatestFiniteMagnitude), 0]
    let event = PredictionEvent(itemID: "i", promotionID: "p", modelVersion: 1, daysSeen: 2, gmv: 3, bsp: 0.5, ss: 4,
                                ssProbabilities: Array(repeating: 0.1, count: 10), producedAt: "2026-11-01T00:00:00Z",
                                rep: rep)
    guard case .prediction(let back) = try EventDecoder().decode(Event.prediction(event).encoded()) else {
        Issue.record("not a prediction")
        return
    }
    #expect(back.rep.map { $0.map { Float($0).bitPattern } } == rep.map { Float($0).bitPattern })
    let without = PredictionEvent(itemID: "i", promotionID: "p", modelVersion: 1, daysSeen: 2, gmv: 3, bsp: 0.5, ss: 4,
                                  ssProbabilities: Array(repeating: 0.1, count: 10), producedAt: "2026-11-01T00:00:00Z")
    #expect(!String(decoding: Event.prediction(without).encoded(), as: UTF8.self).contains("rep"), "no rep field without one")

    let json = String(decoding: Event.prediction(without).encoded(), as: UTF8.self).dropLast()
    for (rep, path) in [("[]", "rep"), ("3", "rep"), (#"[1,"2"]"#, "rep[1]"), ("[1,1e39]", "rep[1]"),
                        ("[" + Array(repeating: "0", count: PredictionEvent.largestRepresentation + 1).joined(separator: ",") + "]", "rep")] {
        #expect(throws: EventError.self) { try EventDecoder().decode(Array((json + #","rep":\#(rep)}"#).utf8)) }
        do { _ = try EventDecoder().decode(Array((json + #","rep":\#(rep)}"#).utf8)) } catch {
            #expect(error.path == path, "\(rep.prefix(20)): \(error)")
        }
    }
    guard case .prediction(let null) = try EventDecoder().decode(Array((json + #","rep":null}"#).utf8)) else { return }
    #expect(null.rep == nil)
}

import DINOP
import Foundation
import PromoEvents
import Testing

let topics = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Topics")

func files(_ folder: String) throws -> [URL] {
    let url = topics.appendingPathComponent(folder)
    return try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasSuffix(".json") }.sorted()
        .map { url.appendingPathComponent($0) }
}

@Test("every schema has an example, and each example decodes and encodes back to the same event")
func examplesDecode() throws {
    let schemas = try files("schemas").map { $0.lastPathComponent.replacingOccurrences(of: ".schema.json", with: "") }
    let examples = try files("examples").map { $0.lastPathComponent.replacingOccurrences(of: ".json", with: "") }
    #expect(schemas.count == 11)
    #expect(Set(schemas) == Set(examples))
    let decoder = EventDecoder(presaleDays: 20)
    for url in try files("examples") {
        let event = try decoder.decode(try Data(contentsOf: url))
        #expect(event.schema.replacingOccurrences(of: "/", with: ".") + ".json" == url.lastPathComponent)
        #expect(try decoder.decode(event.encoded()) == event, "\(url.lastPathComponent) round trip")
    }
}

@Test("each invalid example is rejected naming the field its file says")
func invalidExamplesRejected() throws {
    let decoder = EventDecoder(presaleDays: 20)
    let invalid = try files("examples/invalid")
    #expect(invalid.count >= 6)
    for url in invalid {
        let wrapper = try JSONParser.parse(try Data(contentsOf: url))
        let expected = try #require(wrapper["violation"]?.string)
        let event = try #require(wrapper["event"])
        #expect(throws: EventError.self) { try decoder.decode(event) }
        do {
            _ = try decoder.decode(event)
        } catch {
            #expect(error.path == expected, "\(url.lastPathComponent): \(error)")
        }
    }
}

/// Decodes `json` expecting a refusal; returns the message.
func refusal(_ json: String, presaleDays: Int = 20) -> String? {
    do {
        _ = try EventDecoder(presaleDays: presaleDays).decode(Array(json.utf8))
        return nil
    } catch {
        return error.description
    }
}

let sales = #"{"schema":"daily_sales/1","item_id":"i1","promotion_id":"p","day":3,"sales":{"gmv":12.5,"units":1,"price":12.5}}"#

@Test("decoding refuses each kind of bad input with a message naming the field")
func refusalsNameTheField() {
    func variant(_ from: String, _ to: String) -> String {
        precondition(sales.contains(from))
        return sales.replacingOccurrences(of: from, with: to)
    }
    #expect(refusal(sales) == nil)
    #expect(refusal(variant(#""units":1"#, #""units":"1""#)) == "sales.units: expected a number, got a string")
    #expect(refusal(variant(#""units":1"#, #""units":true"#)) == "sales.units: expected a number, got a boolean")
    #expect(refusal(variant(#""item_id":"i1","#, "")) == "item_id: required")
    #expect(refusal(variant(#","sales":{"gmv":12.5,"units":1,"price":12.5}"#, "")) == "sales: required")
    #expect(refusal(variant(#""units":1"#, #""units":-2"#)) == "sales.units: must be ≥ 0, got -2.0")
    #expect(refusal(variant(#""gmv":12.5"#, #""gmv":NaN"#))?.hasPrefix("sales.gmv: must be a finite number") == true)
    #expect(refusal(variant(#""gmv":12.5"#, #""gmv":1e999"#))?.hasPrefix("sales.gmv: must be a finite number") == true)
    #expect(refusal(variant(#""gmv":12.5"#, #""gmv":-Infinity"#))?.hasPrefix("sales.gmv: must be a finite number") == true)
    #expect(refusal(variant(#""gmv":12.5"#, #""gmv":1e39"#))?.hasPrefix("sales.gmv: must be a finite number within float32") == true)
    #expect(refusal(variant(#""day":3"#, #""day":21"#)) == "day: must be within the pre-sale window 1...20, got 21")
    #expect(refusal(variant(#""day":3"#, #""day":0"#)) == "day: must be within the pre-sale window 1...20, got 0")
    #expect(refusal(sales, presaleDays: 2) == "day: must be within the pre-sale window 1...2, got 3")
    #expect(refusal(variant(#""day":3"#, #""day":3.5"#)) == "day: expected an integer, got 3.5")
    #expect(refusal(variant(#""price":12.5"#, #""price":0"#)) == "sales.price: must be > 0, got 0.0")
    #expect(refusal(variant(#""schema":"daily_sales/1""#, #""schema":"daily_sales/2""#)) == #"schema: unsupported schema "daily_sales/2""#)
    #expect(refusal(#"{"a":1,"a":2}"#)?.contains("duplicate key") == true)
    #expect(refusal("[1]") == "expected a JSON object, got an array")
    #expect(refusal(#"{"schema":"daily_sales/1""#)?.hasPrefix("not valid JSON") == true)

    let buyers = #"{"schema":"daily_buyers/1","item_id":"i1","promotion_id":"p","day":1,"buyers":{"age_18_24":0.5,"age_25_34":0.3,"gender_f":0.6,"gender_m":0.4}}"#
    #expect(refusal(buyers) == "buyers.age: shares must sum to 1 (±0.01), got 0.8")
    #expect(refusal(buyers.replacingOccurrences(of: "0.3", with: "0.5")) == nil)
    #expect(refusal(buyers.replacingOccurrences(of: #""gender_f":0.6"#, with: #""gender_f":1.6"#))
            == "buyers.gender_f: must be within [0, 1], got 1.6")
}

@Test("unknown fields are ignored, unknown numbers in named maps are carried, missing optional fields stay missing")
func evolutionRules() throws {
    let extended = sales.replacingOccurrences(of: #""day":3"#, with: #""day":3,"channel":{"x":[1]}"#)
        .replacingOccurrences(of: #""units":1"#, with: #""units":1,"live_stream_views":40,"note":"x""#)
    guard case .sales(let event) = try EventDecoder().decode(Array(extended.utf8)) else {
        Issue.record("not a sales event")
        return
    }
    #expect(event.sales == ["gmv": 12.5, "units": 1, "price": 12.5, "live_stream_views": 40])
    #expect(event.sales["orders"] == nil)
    #expect(event.date == nil)

    // In a buyer mix, names outside the known dimensions are carried unchecked; a new bucket of a known dimension
    // is a share of it.
    let buyers = #"{"schema":"daily_buyers/1","item_id":"i","promotion_id":"p","day":1,"buyers":{"gender_f":0.5,"gender_m":0.5,"count":57,"region_north":0.4,"flag":"x"}}"#
    guard case .buyers(let mix) = try EventDecoder().decode(Array(buyers.utf8)) else {
        Issue.record("not a buyers event")
        return
    }
    #expect(mix.buyers == ["gender_f": 0.5, "gender_m": 0.5, "count": 57, "region_north": 0.4])
    #expect(refusal(buyers.replacingOccurrences(of: #""gender_m":0.5"#, with: #""gender_m":0.3,"gender_x":0.3"#))
            == "buyers.gender: shares must sum to 1 (±0.01), got 1.1")
}

@Test("the parser reads what JSON allows and the writer's output parses back")
func parserAndWriter() throws {
    let value = try JSONParser.parse(#" {"s":"a\"b\\\u00e9\ud83d\ude00\n","n":[-0.5e2,0,12345678901234567,true,false,null]} "#)
    #expect(value["s"] == .string("a\"b\\é😀\n"))
    #expect(value["n"] == .array([.number(-50), .number(0), .number(12345678901234567), .bool(true), .bool(false), .null]))
    for bad in ["{\"a\":01}", "{\"a\":1,}", "{\"a\":\"\u{01}\"}", "[1] x", "{\"a\":tru}", "\"\\ud800\""] {
        #expect(throws: JSONSyntaxError.self, "\(bad)") { try JSONParser.parse(bad) }
    }
    var w = JSONWriter()
    w.beginObject()
    w.field("text", "quote \" backslash \\ newline \n tab \t")
    w.field("big", 1e300)
    w.field("small", 1.5e-7)
    w.field("integral", 42.0)
    w.endObject()
    let parsed = try JSONParser.parse(w.bytes)
    #expect(parsed["text"] == .string("quote \" backslash \\ newline \n tab \t"))
    #expect(parsed["big"] == .number(1e300))
    #expect(parsed["small"] == .number(1.5e-7))
    #expect(String(decoding: w.bytes, as: UTF8.self).contains(#""integral":42"#))
}

@Test("the daily fast path reads what the full decoder reads, and declines whatever it would refuse or read otherwise")
func dailyFastPathAgrees() throws {
    let decoder = EventDecoder(presaleDays: 20)
    /// Whatever the fast path returns, the full decoder returns the same event; whatever it refuses, the fast path
    /// declines. Returns whether the fast path read it.
    func agree(_ json: String) -> Bool {
        let bytes = Array(json.utf8)
        let full = Result { () throws(EventError) in try decoder.decode(bytes) }
        guard let fast = decoder.decodeDaily(bytes) else { return false }
        #expect((try? full.get()) == fast.event, "\(json)")
        return true
    }
    let buyers = #"{"schema":"daily_buyers/1","item_id":"i1","promotion_id":"p","day":1,"buyers":{"age_18_24":0.5,"age_25_34":0.5,"gender_f":0.6,"gender_m":0.4},"buyer_count":12}"#
    for url in try files("examples") where url.lastPathComponent.hasPrefix("daily_") {
        #expect(agree(try String(contentsOf: url, encoding: .utf8)), "\(url.lastPathComponent) in the common form")
    }
    // The common forms: read by the fast path.
    let common: [String] = [sales, buyers, " \n" + sales + "\n", sales.replacingOccurrences(of: ",", with: " ,\t"),
                 sales.replacingOccurrences(of: #""sales":{"#, with: #""sales":{"orders":3,"discount":0.1,"#),
                 sales.replacingOccurrences(of: #""day":3,"#, with: #""day":3,"date":"2026-10-24","#),
                 #"{"sales":{},"day":20,"promotion_id":"p","item_id":"x","schema":"daily_sales/1"}"#,
                 sales.replacingOccurrences(of: "12.5", with: "1.25e1"), sales.replacingOccurrences(of: "12.5", with: "-0.0e0").replacingOccurrences(of: #""price":-0.0e0"#, with: #""price":1"#)]
    for json in common {
        #expect(agree(json), "\(json)")
    }
    // Everything else: declined (and the full decoder refuses it or reads it its own way).
    let declined: [String] = [
        sales.replacingOccurrences(of: #""units":1"#, with: #""units":null"#),
        sales.replacingOccurrences(of: #""units":1"#, with: #""units":1,"live_stream_views":4"#),
        sales.replacingOccurrences(of: #""day":3"#, with: #""day":3,"channel":"app""#),
        sales.replacingOccurrences(of: #""units":1"#, with: #""units":1,"units":2"#),
        sales.replacingOccurrences(of: #""day":3"#, with: #""day":3,"day":4"#),
        sales.replacingOccurrences(of: #""i1""#, with: #""i\u0031""#),
        sales.replacingOccurrences(of: #""i1""#, with: #""ï1""#),
        sales.replacingOccurrences(of: #""i1""#, with: #""""#),
        sales.replacingOccurrences(of: "12.5", with: "NaN"), sales.replacingOccurrences(of: "12.5", with: "1e39"),
        sales.replacingOccurrences(of: "12.5", with: "-Infinity"), sales.replacingOccurrences(of: "12.5", with: "012"),
        sales.replacingOccurrences(of: #""units":1"#, with: #""units":-1"#),
        sales.replacingOccurrences(of: #""price":12.5"#, with: #""price":0"#),
        sales.replacingOccurrences(of: #""gmv":12.5"#, with: #""discount":1.5"#),
        sales.replacingOccurrences(of: #""day":3"#, with: #""day":21"#), sales.replacingOccurrences(of: #""day":3"#, with: #""day":3.5"#),
        sales.replacingOccurrences(of: #""day":3"#, with: #""day":"3""#),
        sales.replacingOccurrences(of: #""day":3,"#, with: ""), sales.replacingOccurrences(of: "daily_sales/1", with: "daily_sales/2"),
        sales.replacingOccurrences(of: "daily_sales/1", with: "daily_buyers/1"),
        sales.replacingOccurrences(of: #""day":3"#, with: #""day":3,"buyer_count":4"#),
        buyers.replacingOccurrences(of: #""day":1"#, with: #""day":1,"date":"x""#),
        buyers.replacingOccurrences(of: "0.6", with: "0.61"), // 1.01: on the tolerance, where the order of adding matters
        buyers.replacingOccurrences(of: "0.6", with: "0.7"), buyers.replacingOccurrences(of: "age_18_24", with: "age_99"),
        buyers.replacingOccurrences(of: #""buyer_count":12"#, with: #""buyer_count":-1"#),
    ] + [sales + "x", sales + "{}", String(sales.dropLast()), "[1]", "", "{}", #"{"schema":"outcome/1"}"#]
    for json in declined { #expect(!agree(json), "\(json)") }

    // Random events, valid and not: whatever the fast path reads agrees with the full decoder.
    var random = SeededGenerator(seed: 11)
    var read = 0
    for _ in 0..<2_000 {
        let names = Vocabulary.sales.map(\.0).shuffled(using: &random).prefix(Int.random(in: 0...9, using: &random))
        let values = names.map { name in
            let choices: [Double] = [.random(in: -1...2, using: &random), Double(Int.random(in: 0...100_000, using: &random)), 0, 1]
            let n = choices[Int.random(in: 0...3, using: &random)]
            return "\"\(name)\":\(n)"
        }
        let json = #"{"schema":"daily_sales/1","item_id":"i","promotion_id":"p","day":\#(Int.random(in: -1...22, using: &random)),"sales":{\#(values.joined(separator: ","))}}"#
        if agree(json) { read += 1 }
    }
    #expect(read > 100, "the fast path read \(read) of 2,000 random events")
}

@Test("the writer formats numbers as Swift's shortest round-trip text, integers without a fraction")
func writerNumbers() throws {
    var random = SeededGenerator(seed: 12)
    for i in 0..<100_000 {
        let value: Double = switch i % 3 {
        case 0: Double(Float.random(in: 0...1, using: &random))
        case 1: .random(in: -1e20...1e20, using: &random)
        default: Double(bitPattern: random.next())
        }
        guard value.isFinite else { continue }
        var writer = JSONWriter()
        writer.number(value)
        let integral = value == value.rounded() && abs(value) < 9_007_199_254_740_992
        let expected = integral ? String(Int64(value)) : value.description
        #expect(String(decoding: writer.bytes, as: UTF8.self) == expected)
        #expect(try JSONParser.parse(writer.bytes).number == value)
    }
}

@Test("the parser reads every decimal number as strtod does")
func parserNumbersMatchStrtod() throws {
    var random = SeededGenerator(seed: 13)
    func digits(_ count: Int) -> String { String((0..<count).map { _ in "0123456789".randomElement(using: &random)! }) }
    for i in 0..<100_000 {
        var text = (i % 2 == 0 ? "" : "-") + String(Int.random(in: 0...99_999_999, using: &random)).prefix(Int.random(in: 1...8, using: &random))
        if i % 5 != 0 { text += "." + digits(Int.random(in: 1...12, using: &random)) }
        if i % 7 == 0 { text += "e" + String(Int.random(in: -30...30, using: &random)) }
        let parsed = try #require(try JSONParser.parse(text).number)
        #expect(parsed.bitPattern == strtod(text, nil).bitPattern, "\(text)")
    }
}

@Test("a share rounded above 1 (up to the sums' tolerance) is read as 1; beyond it the event is refused")
func roundedShares() throws {
    func buyers(_ gender: String) -> String {
        #"{"schema":"daily_buyers/1","item_id":"i","promotion_id":"p","day":3,"buyers":{"gender_f":\#(gender),"gender_m":0,"age_18_24":0.5,"age_25_34":0.5}}"#
    }
    guard case .buyers(let b)? = try? EventDecoder().decode(Array(buyers("1.000001").utf8)) else {
        Issue.record("a share of 1.000001 refused: \(refusal(buyers("1.000001")) ?? "")")
        return
    }
    #expect(b.buyers["gender_f"] == 1)
    #expect(refusal(buyers("1.02")) == "buyers.gender_f: must be within [0, 1], got 1.02")
    // The fast path for daily inputs leaves such an event to the full decoder (it takes only clearly valid ones).
    #expect(EventDecoder().decodeDaily(Array(buyers("1.000001").utf8)) == nil)
    #expect(EventDecoder().decodeDaily(Array(buyers("1").utf8)) != nil)
}

@Test("every id of every example is taken at 256 characters and refused past them, naming the field")
func idsAreBounded() throws {
    let decoder = EventDecoder(presaleDays: 20)
    let names = ["item_id", "promotion_id", "activity_id", "market", "id", "user_id", "industry", "seller", "brand"]
    let longest = String(repeating: "é", count: Event.maxIDLength), tooLong = longest + "é"
    func refusal(_ value: JSONValue) -> EventError? {
        do { _ = try decoder.decode(value) } catch { return error }
        return nil
    }
    var checked: [String] = []
    for url in try files("examples") {
        guard case .object(let map) = try JSONParser.parse(try Data(contentsOf: url)) else { continue }
        for name in names where map[name]?.string != nil {
            var changed = map
            changed[name] = .string(longest)
            #expect(refusal(.object(changed)) == nil, "\(url.lastPathComponent) \(name)")
            changed[name] = .string(tooLong)
            let error = refusal(.object(changed))
            #expect(error?.path == name && error?.description.contains("at most 256 characters, got 257") == true,
                    "\(url.lastPathComponent) \(name): \(String(describing: error))")
            checked.append("\(url.lastPathComponent):\(name)")
        }
        // A recommended item's id, and any other id of a profile.
        if case .array(var items)? = map["items"], case .object(var first)? = items.first {
            first["item_id"] = .string(tooLong)
            items[0] = .object(first)
            var changed = map
            changed["items"] = .array(items)
            #expect(refusal(.object(changed))?.path == "items[0].item_id")
            checked.append("items")
        }
        if map["schema"]?.string == ItemProfile.schema {
            var changed = map
            changed["category"] = .string(tooLong)
            #expect(refusal(.object(changed))?.path == "category")
        }
    }
    #expect(checked.count >= 25, "\(checked)")
    // The daily fast path leaves a long id to the full decoder, which refuses it.
    let long = sales.replacingOccurrences(of: #""i1""#, with: "\"\(String(repeating: "x", count: Event.maxIDLength + 1))\"")
    #expect(decoder.decodeDaily(Array(long.utf8)) == nil)
    #expect(refusal(try JSONParser.parse(Data(long.utf8)))?.path == "item_id")
    let longestSales = sales.replacingOccurrences(of: #""i1""#, with: "\"\(String(repeating: "x", count: Event.maxIDLength))\"")
    #expect(decoder.decodeDaily(Array(longestSales.utf8)) != nil)
}

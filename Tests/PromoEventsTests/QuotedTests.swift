import PromoEvents
import Testing

@Test("text from input is quoted for messages: controls and non-UTF-8 escaped, long text cut")
func quotedEscapes() {
    #expect(quoted([UInt8]("item-1".utf8)) == "\"item-1\"")
    #expect(quoted([0x61, 0x00, 0xFF, 0x62]) == "\"a\\u{0}\\xFFb\"")
    #expect(quoted("双十一") == "\"双十一\"")
    #expect(quoted([0xE5, 0x8F]) == "\"\\xE5\\x8F\"", "a cut UTF-8 sequence")
    #expect(quoted([0xC0, 0x80]) == "\"\\xC0\\x80\"", "an overlong encoding")
    #expect(quoted("a\"b\\c\u{1b}[31m") == "\"a\\\"b\\\\c\\u{1b}[31m\"")
    #expect(quoted(String(repeating: "x", count: 100), limit: 10) == "\"xxxxxxxxxx…\"")
}

@Test("the JSON writer writes null for a non-finite number instead of stopping")
func writerNonFinite() {
    var writer = JSONWriter()
    writer.beginObject()
    writer.field("a", Double.nan)
    writer.field("b", Double.infinity)
    writer.field("c", 1.5)
    writer.endObject()
    #expect(String(decoding: writer.bytes, as: UTF8.self) == "{\"a\":null,\"b\":null,\"c\":1.5}")
}

@Test("a parse error shows a NUL or 0xFF byte escaped")
func parseErrorsEscapeBytes() {
    for (bytes, shown) in [([UInt8]([0x00]), "\\u{0}"), ([0xFF], "\\xFF")] {
        do {
            _ = try EventDecoder().decode(bytes)
            Issue.record("decoded")
        } catch {
            #expect(error.description.contains(shown), "\(error)")
            #expect(!error.description.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0xFFFD })
        }
    }
}

@Test("a share sum at the tolerance is decided the same way whatever the order of the fields (found by fuzzing)")
func shareSumOrderIndependent() {
    // 0.15 + 0.375 + 0.465 is 0.99 or 0.9899999999999999 depending on the order of adding.
    let names = ["age_25_34", "age_35_49", "age_50_plus"], values = ["0.15", "0.375", "0.465"]
    var outcomes = Set<Bool>()
    for order in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let buyers = order.map { "\"\(names[$0])\":\(values[$0])" }.joined(separator: ",")
        let line = #"{"schema":"daily_buyers/1","item_id":"i","promotion_id":"p","day":3,"buyers":{"#
            + buyers + #","gender_f":0.5,"gender_m":0.5}}"#
        outcomes.insert((try? EventDecoder().decode(Array(line.utf8))) != nil)
    }
    #expect(outcomes.count == 1)
}

import Foundation
import PromoEvents
@testable import PromoWorld
import Testing

@Suite("The Taobao 11.11 importer")
struct TaobaoImportTests {
    /// Every event must survive the strict decoder unchanged.
    func expectRoundTrip(_ events: [Event]) {
        let decoder = EventDecoder(presaleDays: TaobaoImport.presaleDays)
        var failures = 0
        for event in events {
            do throws(EventError) {
                let decoded = try decoder.decode(event.encoded())
                if decoded != event { failures += 1 }
            } catch {
                failures += 1
                if failures <= 3 { Issue.record("\(String(decoding: event.encoded(), as: UTF8.self)): \(error)") }
            }
        }
        #expect(failures == 0)
    }

    /// A small GBK file: a normal item (A), a counter reset and a missing day (B), a negative 11.11 jump (C),
    /// a store without counters (D), an outcome closed by the 11/11 scrape (E), and bad rows.
    @Test("a synthetic GBK file gives the exact units, GMV and outcomes")
    func synthetic() throws {
        let gbk = try #require(GBK())
        #expect(gbk.encode("面口") == [0xC3, 0xE6, 0xBF, 0xDA])  // known GBK code points
        let text = """
            update_time,id,title,price,sale_count,comment_count,店名
            2016/11/5,A,自然堂 补水保湿面霜50g,100,1000,5,自然堂
            2016/11/6,A,自然堂 补水保湿面霜50g,100,1002,5,自然堂
            2016/11/7,A,自然堂 补水保湿面霜50g,100,1005,5,自然堂
            2016/11/8,A,自然堂 补水保湿面霜50g,90,1006,5,自然堂
            2016/11/9,A,自然堂 补水保湿面霜50g,100,1010,5,自然堂
            2016/11/10,A,自然堂 补水保湿面霜50g,100,1012,5,自然堂
            2016/11/11,A,自然堂 补水保湿面霜50g,80,1100,5,自然堂
            2016/11/12,A,自然堂 补水保湿面霜50g,100,1212,5,自然堂
            2016/11/12,A,自然堂 补水保湿面霜50g,100,1212,5,自然堂
            2016/11/5,B,兰蔻 唇膏 口红,200,500,1,兰蔻
            2016/11/6,B,兰蔻 唇膏 口红,200,510,1,兰蔻
            2016/11/7,B,兰蔻 唇膏 口红,200,5,1,兰蔻
            2016/11/9,B,兰蔻 唇膏 口红,180,8,1,兰蔻
            2016/11/10,B,兰蔻 唇膏 口红,180,9,1,兰蔻
            2016/11/12,B,兰蔻 唇膏 口红,150,109,1,兰蔻
            2016/11/9,C,"雅漾 面膜, 补水",50,10,0,雅漾
            2016/11/10,C,"雅漾 面膜, 补水",50,12,0,雅漾
            2016/11/12,C,"雅漾 面膜, 补水",40,3,0,雅漾
            2016/11/10,D,SK-II 神仙水 精华水,1000,,,SKII
            2016/11/12,D,SK-II 神仙水 精华水,900,,,SKII
            2016/11/10,E,欧莱雅男士洁面,100,50,0,欧莱雅
            2016/11/11,E,欧莱雅男士洁面,90,130,0,欧莱雅
            2016/11/6,X,坏价格,abc,5,1,自然堂
            2016/13/01,X,坏日期,10,5,1,自然堂
            2016/11/6,X,少了列,10,5
            2016/11/6,A,自然堂 补水保湿面霜50g,100,1003,5,自然堂

            """
        var bytes = try #require(gbk.encode(text.replacingOccurrences(of: "\n", with: "\r\n")))
        bytes += [0x32, 0x30, 0x31, 0x36, 0x2C, 0x81, 0x20, 0x0D, 0x0A]  // "2016," then a broken GBK pair
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("taobao-\(UUID().uuidString).csv")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let data = try TaobaoImport.load(path: file.path)
        let s = data.summary
        #expect(s.items == 5 && s.rows == 27 && s.duplicateRows == 1 && s.rowsWithoutCount == 2)
        #expect(s.rejectedRows == 5)
        #expect(s.rejections.map(\.line) == [24, 25, 26, 27, 28])
        #expect(s.rejections[0].reason.hasPrefix("price:") && s.rejections[1].reason.hasPrefix("update_time:"))
        #expect(s.rejections[2].reason == "expected 7 columns, got 5" && s.rejections[4].reason == "not valid GBK")
        #expect(s.rejections[3].reason.contains("second, different snapshot"))
        #expect(s.negativeDifferences == 1 && s.negativeOutcomeJumps == 1)
        #expect(s.itemsWithOutcome == 3 && s.outcomesClosedOnPromotionDay == 1)
        #expect(s.medianPresaleDailyUnits == 2)  // [1, 1, 2, 2, 2, 3, 4, 10]
        #expect(s.medianPromotionDayUnits == 100)  // [80, 100, 200]

        let events = data.events()
        expectRoundTrip(events)
        #expect(!events.contains { if case .buyers = $0 { true } else { false } })
        func sales(_ id: String) -> [Int: [String: Double]] {
            var out: [Int: [String: Double]] = [:]
            for case .sales(let e) in events where e.itemID == id { out[e.day] = e.sales }
            return out
        }
        func outcome(_ id: String) -> Outcome? {
            for case .outcome(let e) in events where e.itemID == id { return e }
            return nil
        }
        func profile(_ id: String) -> ItemProfile? {
            for case .profile(let e) in events where e.itemID == id { return e }
            return nil
        }

        let a = try #require(profile("A"))
        #expect(a.ids == ["market": "cn", "industry": "skincare_cream", "seller": "自然堂", "brand": "自然堂"])
        // The counters of the 11/05 snapshot, before the pre-sale; none for an item first seen later (C, D, E).
        #expect(a.sis == ["price": 100, "sale_count": 1000, "comment_count": 5] && a.su == nil && a.promotionID == "double11-2016")
        #expect(profile("B")?.sis == ["price": 200, "sale_count": 500, "comment_count": 1])
        #expect(profile("C")?.sis == ["price": 50] && profile("E")?.sis == ["price": 100])
        #expect(sales("A") == [1: ["units": 2, "gmv": 200, "price": 100], 2: ["units": 3, "gmv": 300, "price": 100],
                               3: ["units": 1, "gmv": 90, "price": 90], 4: ["units": 4, "gmv": 400, "price": 100],
                               5: ["units": 2, "gmv": 200, "price": 100]])
        let dates = events.compactMap { if case .sales(let e) = $0, e.itemID == "A" { e.date } else { nil } }
        #expect(dates == ["2016-11-06", "2016-11-07", "2016-11-08", "2016-11-09", "2016-11-10"])
        #expect(outcome("A") == Outcome(itemID: "A", promotionID: "double11-2016", gmv: 200 * 80, units: 200))

        // B: reset on 11/07 and no 11/08 snapshot: units missing, price kept where the day's snapshot exists.
        #expect(profile("B")?.ids["industry"] == "makeup_lips")
        #expect(sales("B") == [1: ["units": 10, "gmv": 2000, "price": 200], 2: ["price": 200], 4: ["price": 180],
                               5: ["units": 1, "gmv": 180, "price": 180]])
        // No 11/11 snapshot: the lowest price of 11/10 … 11/12.
        #expect(outcome("B") == Outcome(itemID: "B", promotionID: "double11-2016", gmv: 100 * 150, units: 100))

        #expect(profile("C")?.title == "雅漾 面膜, 补水" && profile("C")?.ids["industry"] == "mask")
        #expect(sales("C") == [4: ["price": 50], 5: ["units": 2, "gmv": 100, "price": 50]])
        #expect(outcome("C") == nil)
        #expect(profile("D")?.ids["industry"] == "skincare_toner" && profile("D")?.sis == ["price": 1000])
        #expect(sales("D") == [5: ["price": 1000]] && outcome("D") == nil)
        #expect(profile("E")?.ids["industry"] == "mens_care")
        #expect(outcome("E") == Outcome(itemID: "E", promotionID: "double11-2016", gmv: 80 * 90, units: 80))
    }

    @Test("the path resolves explicit, then environment, then default")
    func path() {
        #expect(TaobaoImport.resolvedPath("x.csv") == "x.csv")
        let env = ProcessInfo.processInfo.environment[TaobaoImport.environmentVariable]
        #expect(TaobaoImport.resolvedPath(nil) == (env?.isEmpty == false ? env! : TaobaoImport.defaultPath))
        #expect(CivilDate(parsing: "2016/2/30") == nil && CivilDate(parsing: "2016/11/5")?.adding(days: 26).iso == "2016-12-01")
    }

    @Test("the real 2016 scrape gives plausible figures and decodable events",
          .enabled(if: FileManager.default.fileExists(atPath: TaobaoImport.resolvedPath(nil))))
    func realFile() throws {
        let data = try TaobaoImport.load(path: TaobaoImport.resolvedPath(nil))
        let s = data.summary
        print("Taobao 2016: \(s.items) items, \(s.rows) rows, \(s.rejectedRows) rejected \(s.rejections.prefix(3)), "
              + "\(s.duplicateRows) duplicates, \(s.rowsWithoutCount) without a counter, \(s.itemsWithOutcome) with an outcome "
              + "(\(s.outcomesClosedOnPromotionDay) closed on 11/11), \(s.negativeDifferences) negative pre-sale differences, "
              + "\(s.negativeOutcomeJumps) negative 11.11 jumps, median units: pre-sale day \(s.medianPresaleDailyUnits ?? .nan), "
              + "promotion day \(s.medianPromotionDayUnits ?? .nan)")
        #expect((3_400...3_600).contains(s.items))
        #expect(s.rows > 27_000 && s.rejectedRows < s.rows / 100)
        #expect(s.itemsWithOutcome > s.items / 2)
        let presale = try #require(s.medianPresaleDailyUnits), promotion = try #require(s.medianPromotionDayUnits)
        #expect(promotion > 20 * max(presale, 1))
        let events = data.events()
        #expect(events.count > s.items * 3)
        expectRoundTrip(events)
    }
}

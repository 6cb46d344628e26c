import Foundation
@testable import PromoStream
import Testing

@Suite("The industry stage's days, without Kafka")
struct IndustryDaysTests {
    static let width = 4

    /// An item's f on a day, from a fixed formula (so the test can say which day's vector a context used).
    static func f(_ item: Int, _ day: Int) -> [Float] {
        (0..<width).map { Float(sin(Double(item * 7 + day * 3 + $0))) }
    }

    static func vector(_ item: Int, day: Int, market: String, industry: String = "beauty") -> CompetitionVector {
        CompetitionVector(item: "item-\(item)", promotion: "p", market: market, industry: industry, day: day,
                          f: f(item, day), version: 1, itemPartition: Int32(item % 2))
    }

    /// MARKETS.md's attentions by plain loops in double: over the item's market (itself included), and over the
    /// industry's other markets.
    static func expected(_ members: [(id: String, market: String, f: [Float])], cooperation: Bool) -> [String: (a: [Double], q: [Double])] {
        var out: [String: (a: [Double], q: [Double])] = [:]
        for i in members {
            func attend(_ keys: [(id: String, market: String, f: [Float])]) -> [Double] {
                guard !keys.isEmpty else { return Array(repeating: 0, count: width) }
                let scores = keys.map { k in zip(i.f, k.f).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / Double(width).squareRoot() }
                let top = scores.max() ?? 0
                let weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
                return (0..<width).map { d in zip(weights, keys).reduce(0.0) { $0 + $1.0 * Double($1.1.f[d]) } / total }
            }
            out[i.id] = (attend(members.filter { $0.market == i.market }),
                         cooperation ? attend(members.filter { $0.market != i.market }) : Array(repeating: 0, count: width))
        }
        return out
    }

    func expectContexts(_ contexts: [CompetitionContext], _ members: [(id: String, market: String, f: [Float])]) {
        let want = Self.expected(members, cooperation: true)
        #expect(Set(contexts.map(\.item)) == Set(members.map(\.id)))
        for context in contexts {
            guard let w = want[context.item] else { continue }
            for d in 0..<Self.width {
                #expect(abs(Double(context.a[d]) - w.a[d]) < 1e-5 && abs(Double(context.q[d]) - w.q[d]) < 1e-5, "\(context.item)")
            }
        }
    }

    @Test("a day closes when every input partition's watermark reaches it, from every item's f as of that day; an item not seen yet has none; a missing day keeps the item's last f")
    func closesOnWatermarks() {
        var days = IndustryDays(width: Self.width, cooperation: true, graceMs: 60_000)
        // Items 0–3 in cn, 4–5 in sea; item 5 starts on day 2; item 3 has no day 2.
        let market = { (i: Int) in i < 4 ? "cn" : "sea" }
        for i in 0..<5 { days.apply(Self.vector(i, day: 1, market: market(i)), nowMs: 0) }
        days.apply(DayWatermark(promotion: "p", partition: 0, partitions: 2, day: 1), nowMs: 0)
        let early = days.closeDue(nowMs: 10)
        #expect(early.isEmpty, "partition 1 has not said")
        for i in [0, 1, 2, 4, 5] { days.apply(Self.vector(i, day: 2, market: market(i)), nowMs: 20) }
        days.apply(DayWatermark(promotion: "p", partition: 1, partitions: 2, day: 1), nowMs: 30)
        let first = days.closeDue(nowMs: 30)
        #expect(first.map(\.day) == [1] && days.closedDay("p") == 1)
        expectContexts(first.first?.contexts ?? [], (0..<5).map { ("item-\($0)", market($0), Self.f($0, 1)) })

        days.apply(DayWatermark(promotion: "p", partition: 0, partitions: 2, day: 2), nowMs: 40)
        days.apply(DayWatermark(promotion: "p", partition: 1, partitions: 2, day: 2), nowMs: 40)
        let second = days.closeDue(nowMs: 40)
        #expect(second.map(\.day) == [2])
        expectContexts(second.first?.contexts ?? [], (0..<6).map { ("item-\($0)", market($0), Self.f($0, $0 == 3 ? 1 : 2)) })
    }

    @Test("the grace period closes a day some partition never completes; a vector of a closed day is late: counted, and used from the next close on")
    func graceAndLateDays() {
        var days = IndustryDays(width: Self.width, cooperation: true, graceMs: 1_000)
        for i in 0..<3 { days.apply(Self.vector(i, day: 1, market: i == 2 ? "eu" : "cn"), nowMs: 100) }
        days.apply(DayWatermark(promotion: "p", partition: 0, partitions: 2, day: 1), nowMs: 100)
        let early = days.closeDue(nowMs: 1_099)
        #expect(early.isEmpty)
        let closed = days.closeDue(nowMs: 1_100)
        #expect(closed.map(\.day) == [1], "grace over for day 1")
        #expect(days.closedDay("p") == 1)
        // Item 1's day 1 again, late (another f): it replaces the kept one for later closes.
        var late = Self.vector(1, day: 1, market: "cn")
        late.f = Self.f(1, 9)
        days.apply(late, nowMs: 1_200)
        #expect(days.lateVectors == 1 && days.closedDay("p") == 1)
        days.apply(Self.vector(0, day: 2, market: "cn"), nowMs: 1_300)
        days.apply(DayWatermark(promotion: "p", partition: 0, partitions: 2, day: 2), nowMs: 1_300)
        days.apply(DayWatermark(promotion: "p", partition: 1, partitions: 2, day: 2), nowMs: 1_300)
        let next = days.closeDue(nowMs: 1_300)
        #expect(next.map(\.day) == [2])
        expectContexts(next.first?.contexts ?? [], [("item-0", "cn", Self.f(0, 2)), ("item-1", "cn", Self.f(1, 9)),
                                                    ("item-2", "eu", Self.f(2, 1))])
    }

    @Test("the last pre-sale day's close ends the promotion: its items are forgotten (records without vectors), later vectors are dropped, and a restored stage agrees")
    func promotionEnds() throws {
        var days = IndustryDays(width: Self.width, cooperation: true, graceMs: 60_000, lastDay: 2)
        for day in 1...2 {
            for i in 0..<3 { days.apply(Self.vector(i, day: day, market: "cn"), nowMs: 0) }
        }
        days.apply(Self.vector(0, day: 1, market: "cn", industry: "toys"), nowMs: 0)
        days.apply(DayWatermark(promotion: "p", partition: 0, partitions: 1, day: 2), nowMs: 0)
        _ = days.takeChanges()
        let closed = days.closeDue(nowMs: 0)
        #expect(closed.map(\.day) == [1, 2] && closed.last?.contexts.count == 4)
        #expect(days.itemCount == 0 && days.closedDay("p") == 2)
        let records = days.takeChanges()
        let emptied = records.filter { if case .item(_, _, _, _, _, let vectors) = $0 { vectors.isEmpty } else { false } }
        #expect(emptied.count == 4)
        days.apply(Self.vector(1, day: 2, market: "cn"), nowMs: 10)
        #expect(days.itemCount == 0 && days.lateVectors == 1)
        #expect(days.closeDue(nowMs: 10).isEmpty)

        // Restoring every record in order (the items' earlier ones first) leaves nothing of the promotion's items.
        var restored = IndustryDays(width: Self.width, cooperation: true, graceMs: 60_000, lastDay: 2)
        var again = IndustryDays(width: Self.width, cooperation: true, graceMs: 60_000, lastDay: 2)
        for i in 0..<3 { again.apply(Self.vector(i, day: 1, market: "cn"), nowMs: 0) }
        for record in again.takeChanges() + records { try restored.restore(record) }
        #expect(restored.itemCount == 0 && restored.closedDay("p") == 2)
    }

    @Test("industries and promotions are apart; a vector of another width is refused")
    func groupsApart() {
        var days = IndustryDays(width: Self.width, cooperation: true, graceMs: 0)
        days.apply(Self.vector(0, day: 1, market: "cn", industry: "beauty"), nowMs: 0)
        days.apply(Self.vector(1, day: 1, market: "cn", industry: "toys"), nowMs: 0)
        var wide = Self.vector(2, day: 1, market: "cn")
        wide.f.append(1)
        let taken = days.apply(wide, nowMs: 0)
        #expect(!taken)
        let closed = days.closeDue(nowMs: 0)
        // Each item alone in its industry: a = its own f, q = 0.
        let contexts = closed.flatMap(\.contexts)
        #expect(contexts.map(\.item).sorted() == ["item-0", "item-1"])
        for context in contexts {
            let i = context.item == "item-0" ? 0 : 1
            #expect(context.a == Self.f(i, 1) && context.q == [0, 0, 0, 0])
        }
    }
}

@Suite("The competition topics' records")
struct CompetitionCodecTests {
    @Test("vectors, watermarks and contexts read back as written; a wrong tag, a bad field, a non-finite value or a byte too many is an error, never a trap")
    func roundTripsAndRefusals() throws {
        let vector = CompetitionVector(item: "item-1", promotion: "double11", market: "", industry: "beauty", day: 3,
                                       f: [1, -0.5, 1e-30], version: 7, itemPartition: 5)
        let watermark = DayWatermark(promotion: "double11", partition: 2, partitions: 6, day: 0)
        let context = CompetitionContext(item: "item-1", promotion: "double11", day: 3, a: [0.25, 2], q: [0, 0], version: 7,
                                         itemPartition: 5)
        #expect(try CompetitionCodec.decodeStageInput(CompetitionCodec.encode(vector)) == .vector(vector))
        #expect(try CompetitionCodec.decodeStageInput(CompetitionCodec.encode(watermark)) == .watermark(watermark))
        #expect(try CompetitionCodec.decodeContext(CompetitionCodec.encode(context)) == context)

        var notFinite = vector
        notFinite.f[1] = .nan
        var dayZero = vector
        dayZero.day = 0
        let bad: [[UInt8]] = [
            [], [9], CompetitionCodec.encode(context), CompetitionCodec.encode(vector) + [0],
            Array(CompetitionCodec.encode(vector).dropLast()), CompetitionCodec.encode(notFinite), CompetitionCodec.encode(dayZero),
            CompetitionCodec.encode(DayWatermark(promotion: "p", partition: 6, partitions: 6, day: 1)),
            [1] + [UInt8](repeating: 0xFF, count: 40),
        ]
        for bytes in bad { #expect(throws: (any Error).self, "\(bytes.prefix(12))") { try CompetitionCodec.decodeStageInput(bytes) } }
        #expect(throws: (any Error).self) { try CompetitionCodec.decodeContext(CompetitionCodec.encode(vector)) }
        // Every truncation of a valid record is an error.
        let whole = CompetitionCodec.encode(context)
        for n in 0..<whole.count { #expect(throws: (any Error).self) { try CompetitionCodec.decodeContext(Array(whole.prefix(n))) } }
    }
}

@Suite("The industry stage, without Kafka")
struct IndustryStageTests {
    static let topic = "app.competition-vectors"

    static func stage() -> IndustryStage {
        var options = IndustryStageOptions()
        options.application = "app"
        options.vectors = topic
        options.width = IndustryDaysTests.width
        options.graceMs = 60_000
        return IndustryStage(options: options)
    }

    /// Day `day`'s messages for stage partition 0: five items in two markets (item 4 skips day 2), then both input
    /// partitions' watermarks of the day before... and a broken record.
    static func messages(day: Int, from offset: Int64) -> [InputMessage] {
        var values = (0..<5).filter { !(day == 2 && $0 == 4) }.map {
            CompetitionCodec.encode(IndustryDaysTests.vector($0, day: day, market: $0 < 3 ? "cn" : "sea"))
        }
        if day > 1 {
            values += (0..<2).map { CompetitionCodec.encode(DayWatermark(promotion: "p", partition: $0, partitions: 2, day: day - 1)) }
        }
        if day == 2 { values.append([7, 7, 7]) }
        return values.enumerated().map { k, value in
            InputMessage(topic: topic, partition: 0, offset: offset + Int64(k), key: nil, value: value)
        }
    }

    @Test("each day's close answers every seen item on its own input partition, a broken record is a dead letter, and a stage restored from its changelog closes the next day as one that never stopped; a record of an uncommitted batch is refused")
    func closesAndRestores() throws {
        let stage = Self.stage()
        var offset: Int64 = 0, changelog: [[UInt8]: [UInt8]] = [:]
        var contexts: [Int: [CompetitionContext]] = [:]
        for day in 1...3 {
            let batch = Self.messages(day: day, from: offset)
            offset += Int64(batch.count)
            let out = stage.process(batch, nowMs: Int64(day) * 1_000)
            for record in out where record.kind == .changelog { changelog[record.key] = record.value }
            #expect(out.filter { $0.kind == .deadLetter }.count == (day == 2 ? 1 : 0))
            for record in out where record.kind == .competitionContext {
                let context = try CompetitionCodec.decodeContext(record.value)
                #expect(record.partition == context.itemPartition && record.key == Array(context.item.utf8))
                contexts[context.day, default: []].append(context)
            }
        }
        #expect(contexts.keys.sorted() == [1, 2], "day 3 waits for its watermarks")
        #expect(contexts[2]?.count == 5, "item 4 keeps its day-1 f")

        // A new owner restores partition 0 from the compacted changelog, then both take day 4.
        let restored = Self.stage()
        restored.startRestore(partition: 0, committed: [offset])
        for value in changelog.values { try restored.restore(partition: 0, value: value) }
        restored.finishRestore(partition: 0)
        #expect(restored.itemCount == stage.itemCount && restored.closedDay(partition: 0, promotion: "p") == 2)
        let next = Self.messages(day: 4, from: offset)
        let a = stage.process(next, nowMs: 4_000).filter { $0.kind == .competitionContext }
        let b = restored.process(next, nowMs: 4_000).filter { $0.kind == .competitionContext }
        #expect(!a.isEmpty && a.map(\.value) == b.map(\.value), "day 3 closes alike")

        let uncommitted = Self.stage()
        uncommitted.startRestore(partition: 0, committed: [offset - 1])
        #expect(throws: RestoreError.self) {
            for value in changelog.values { try uncommitted.restore(partition: 0, value: value) }
        }
    }
}

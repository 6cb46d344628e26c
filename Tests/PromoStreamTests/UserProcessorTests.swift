import BOP
import DINOP
import Foundation
import PromoEvents
import PromoFeatures
@testable import PromoStream
import Testing

// The recommendation role (BOP.md served): purchase histories, their changelog records, the candidate table, the
// recommender, and the processor end to end, each compared with an independent computation on the same inputs.

private let userBOPConfig = BOPConfig(width: 8, layers: 1, heads: 2, ffn: 16, maxHistory: 5, itemRows: 101)
private func userModel() throws -> BOPModel {
    try BOPModel.random(config: userBOPConfig, markets: ["de", "jp"], seed: 1)
}

/// 2026-11-01T00:00:00Z, the scenario's epoch.
private let baseMs: Int64 = 1_793_491_200_000

private func rfc3339(_ ms: Int64) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

private func prediction(_ item: String, _ promotion: String, gmv: Double, market: String?, sequence: Int = 1) -> PredictionEvent {
    PredictionEvent(itemID: item, promotionID: promotion, modelVersion: 1, daysSeen: 1, gmv: gmv, bsp: 0.5, ss: 1,
                    ssProbabilities: Array(repeating: 0.1, count: 10), producedAt: rfc3339(baseMs), sequence: sequence,
                    market: market)
}

private func sameBits(_ a: [Recommendation.RecommendedItem], _ b: [Recommendation.RecommendedItem]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.itemID == $1.itemID && $0.probability.bitPattern == $1.probability.bitPattern }
}

private func byIDBytes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

private extension Recommender {
    /// Candidates without a `rep`.
    func recommend(_ history: PurchaseHistory, market: String?, candidates: [String]) -> [Recommendation.RecommendedItem] {
        recommend(history, market: market, candidates: candidates.map { Candidate(itemID: $0) })
    }
}

// MARK: PurchaseHistory

@Test("a purchase history keeps BOP.md's order (time, then id bytes), its latest `limit`, no duplicate, no too-old purchase")
func purchaseHistoryOrder() {
    var h = PurchaseHistory(user: "u")
    func add(_ p: UserPurchase) -> Bool { h.add(p, limit: 3) }
    #expect(h.market == nil)
    #expect(add(UserPurchase(item: "b", market: "de", atMs: 20)))
    #expect(h.market == "de")
    #expect(add(UserPurchase(item: "a", market: "jp", atMs: 20)), "a tie in time: before b by id bytes")
    #expect(h.purchases.map(\.item) == ["a", "b"])
    #expect(h.market == "de", "the latest purchase is b (a ties in time but precedes by id)")
    #expect(add(UserPurchase(item: "z", market: "jp", atMs: 10)), "older, the history not full: inserted first")
    #expect(h.purchases.map(\.item) == ["z", "a", "b"])
    #expect(h.market == "de")

    // The same event twice changes nothing.
    #expect(!add(UserPurchase(item: "a", market: "jp", atMs: 20)))
    #expect(h.purchases.map(\.item) == ["z", "a", "b"])
    // Older than every purchase kept, with the history full: dropped.
    #expect(!add(UserPurchase(item: "y", market: "de", atMs: 9)))
    #expect(h.purchases.map(\.item) == ["z", "a", "b"])
    // Ties with the oldest in time but follows it by id: it goes in and the oldest goes.
    #expect(add(UserPurchase(item: "zz", market: nil, atMs: 10)))
    #expect(h.purchases == [UserPurchase(item: "zz", market: nil, atMs: 10), UserPurchase(item: "a", market: "jp", atMs: 20),
                            UserPurchase(item: "b", market: "de", atMs: 20)])
    // A repeat purchase of an item at another time is its own token.
    #expect(add(UserPurchase(item: "a", market: "jp", atMs: 30)))
    #expect(h.purchases.map(\.item) == ["a", "b", "a"])
    #expect(h.purchases.map(\.atMs) == [20, 20, 30])
    #expect(h.market == "jp")
    // A newer purchase with no market makes the user's market none.
    #expect(add(UserPurchase(item: "c", market: nil, atMs: 31)))
    #expect(h.market == nil)
    #expect(h.purchases.map(\.item) == ["b", "a", "c"])

    // Id order is by UTF-8 bytes: "Z" (0x5A) < "a" (0x61) < "é" (0xC3 0xA9).
    var bytes = PurchaseHistory(user: "v")
    for item in ["é", "a", "Z"] { bytes.add(UserPurchase(item: item, market: "de", atMs: 1), limit: 5) }
    #expect(bytes.purchases.map(\.item) == ["Z", "a", "é"])
}

// MARK: HistoryCodec

@Test("a history's changelog record round-trips with its provenance; bad bytes are refused, never trapped on")
func historyCodecRoundTripAndRefusals() throws {
    let history = PurchaseHistory(user: "user-ü", purchases: [
        UserPurchase(item: "a", market: nil, atMs: -5), UserPurchase(item: "b", market: "de", atMs: 7),
        UserPurchase(item: "c", market: "", atMs: 7), UserPurchase(item: "a", market: "jp", atMs: 1 << 50),
    ])
    let provenance = Provenance(application: "app-1", positions: [42])
    let bytes = HistoryCodec.encode(history, provenance: provenance)
    let (decoded, decodedProvenance) = try HistoryCodec.decode(bytes)
    #expect(decoded == history)
    #expect(decoded.purchases[0].market == nil && decoded.purchases[2].market == "", "nil and empty markets stay apart")
    #expect(decodedProvenance == provenance)
    let (empty, emptyProvenance) = try HistoryCodec.decode(HistoryCodec.encode(PurchaseHistory(user: "e"), provenance: Provenance()))
    #expect(empty == PurchaseHistory(user: "e"))
    #expect(emptyProvenance == Provenance())

    // Every truncation, and a byte too many.
    for n in 0..<bytes.count {
        #expect(throws: StateCodecError.self, "truncated to \(n) bytes") { try HistoryCodec.decode(Array(bytes.prefix(n))) }
    }
    #expect(throws: StateCodecError.self) { try HistoryCodec.decode(bytes + [0]) }
    // Another layout.
    for layout: UInt8 in [0, 2, 255] {
        var wrong = bytes
        wrong[0] = layout
        #expect(throws: StateCodecError.self, "layout \(layout)") { try HistoryCodec.decode(wrong) }
    }
    // Purchases out of order (a history built around `add`).
    let reversed = PurchaseHistory(user: "u", purchases: [UserPurchase(item: "b", market: "de", atMs: 7),
                                                          UserPurchase(item: "a", market: "de", atMs: 5)])
    #expect(throws: StateCodecError.self) { try HistoryCodec.decode(HistoryCodec.encode(reversed, provenance: provenance)) }
    let tiedWrongWay = PurchaseHistory(user: "u", purchases: [UserPurchase(item: "b", market: "de", atMs: 5),
                                                              UserPurchase(item: "a", market: "de", atMs: 5)])
    #expect(throws: StateCodecError.self) { try HistoryCodec.decode(HistoryCodec.encode(tiedWrongWay, provenance: provenance)) }
    // The same item at the same millisecond in two markets: `add` keeps both (a tie in BOP.md's order), so the
    // record must restore.
    var twoMarkets = PurchaseHistory(user: "u")
    for market in ["jp", "de"] { twoMarkets.add(UserPurchase(item: "a", market: market, atMs: 5), limit: 5) }
    #expect(twoMarkets.purchases.count == 2)
    #expect(try HistoryCodec.decode(HistoryCodec.encode(twoMarkets, provenance: provenance)).0 == twoMarkets)
    // Absurd counts: beyond the bound, and within it but far beyond the bytes.
    for count in [0xFFFF_FFFF, HistoryCodec.largest + 1, HistoryCodec.largest] {
        var w = ByteWriter()
        w.u8(HistoryCodec.layout)
        w.string("app")
        w.u8(1)
        w.i64(3)
        w.string("u")
        w.u32(count)
        w.string("a")
        w.optionalString("de")
        w.i64(1)
        #expect(throws: StateCodecError.self, "count \(count)") { try HistoryCodec.decode(w.buffer) }
    }
    // An absurd string length.
    var longString = ByteWriter()
    longString.u8(HistoryCodec.layout)
    longString.u32(0xFFFF_FFF0)
    #expect(throws: StateCodecError.self) { try HistoryCodec.decode(longString.buffer) }

    // Every byte changed to a few values, and random bytes: a refusal or a history in order, never a trap.
    var rng = SeededGenerator(seed: 11)
    var inputs: [[UInt8]] = []
    for i in bytes.indices {
        for value: UInt8 in [0, 1, 0x7F, 0x80, 0xFF, bytes[i] ^ 0x01] {
            var mutated = bytes
            mutated[i] = value
            inputs.append(mutated)
        }
    }
    for _ in 0..<500 { inputs.append((0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }
    for _ in 0..<500 { inputs.append([HistoryCodec.layout] + (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 4) }) }
    var decodedCount = 0
    for input in inputs {
        guard let decoded = try? HistoryCodec.decode(input) else { continue }
        let h = decoded.0
        decodedCount += 1
        #expect(zip(h.purchases, h.purchases.dropFirst()).allSatisfy { !UserPurchase.precedes($1, $0) })
        #expect(h.purchases.count <= HistoryCodec.largest)
    }
    #expect(decodedCount > 0, "some single-byte changes (in an item id, a time) still decode")
}

// MARK: CandidateTable

@Test("the candidate table keeps the top N by GMV (ties by id), ignores stale and non-finite predictions, moves items between markets, and reports set changes only")
func candidateTable() {
    let table = CandidateTable(size: 2)
    let de = CandidateGroup(promotionID: "P1", market: "de"), jp = CandidateGroup(promotionID: "P1", market: "jp")
    #expect(table.apply(prediction("a", "P1", gmv: 5, market: "de")))
    #expect(table.apply(prediction("b", "P1", gmv: 7, market: "de")))
    #expect(table.apply(prediction("c", "P1", gmv: 5, market: "de")))
    #expect(table.apply(prediction("d", "P1", gmv: 1, market: "de")))
    #expect(table.candidates(de).isEmpty, "nothing before a refresh")
    #expect(table.refresh() == [de])
    #expect(table.candidates(de).map(\.itemID) == ["b", "a"], "top 2 by GMV; a beats c at 5 by id")
    #expect(table.refresh().isEmpty, "nothing new")

    // Stale: a lower sequence than the item's last.
    #expect(!table.apply(prediction("d", "P1", gmv: 100, market: "de", sequence: 0)))
    #expect(table.apply(prediction("d", "P1", gmv: 1, market: "de", sequence: 3)))
    #expect(!table.apply(prediction("d", "P1", gmv: 100, market: "de", sequence: 2)))
    #expect(table.refresh().isEmpty)
    #expect(table.candidates(de).map(\.itemID) == ["b", "a"])
    // Not finite.
    for gmv in [Double.nan, .infinity, -.infinity] {
        #expect(!table.apply(prediction("d", "P1", gmv: gmv, market: "de", sequence: 4)))
        #expect(!table.apply(prediction("new", "P1", gmv: gmv, market: "de", sequence: 4)))
    }
    #expect(table.refresh().isEmpty)
    #expect(table.candidates(de).map(\.itemID) == ["b", "a"])
    #expect(table.itemCount == 4, "no non-finite prediction made an item")

    // The same set in another order: no change reported, but the order follows.
    #expect(table.apply(prediction("a", "P1", gmv: 9, market: "de", sequence: 2)))
    #expect(table.refresh().isEmpty)
    #expect(table.candidates(de).map(\.itemID) == ["a", "b"])
    // A new member of the set.
    #expect(table.apply(prediction("c", "P1", gmv: 8, market: "de", sequence: 2)))
    #expect(table.refresh() == [de])
    #expect(table.candidates(de).map(\.itemID) == ["a", "c"])

    // c moves to jp: it leaves de (b comes back) and makes the jp group.
    #expect(table.apply(prediction("c", "P1", gmv: 8, market: "jp", sequence: 3)))
    #expect(table.refresh() == [de, jp])
    #expect(table.candidates(de).map(\.itemID) == ["a", "b"])
    #expect(table.candidates(jp).map(\.itemID) == ["c"])
    #expect(table.groups(market: "jp") == [jp])
    // A stale prediction for its old market is still stale after the move.
    #expect(!table.apply(prediction("c", "P1", gmv: 100, market: "de", sequence: 1)))
    #expect(table.refresh().isEmpty)
    #expect(table.candidates(de).map(\.itemID) == ["a", "b"])
    #expect(table.itemCount == 4)

    // Groups of a market, sorted by promotion; items of no market are a group of their own.
    #expect(table.apply(prediction("x", "P0", gmv: 1, market: "de")))
    #expect(table.apply(prediction("y", "P2", gmv: 1, market: nil)))
    let none = CandidateGroup(promotionID: "P2", market: nil)
    #expect(table.refresh() == [CandidateGroup(promotionID: "P0", market: "de"), none])
    #expect(table.groups(market: "de") == [CandidateGroup(promotionID: "P0", market: "de"), de])
    #expect(table.groups(market: nil) == [none])
    #expect(table.groups(market: "fr").isEmpty)

    // The last item of a group moves away: the group empties and is gone.
    #expect(table.apply(prediction("y", "P2", gmv: 1, market: "jp", sequence: 2)))
    #expect(table.refresh() == [none, CandidateGroup(promotionID: "P2", market: "jp")])
    #expect(table.groups(market: nil).isEmpty)
    #expect(table.candidates(none).isEmpty)
}

@Test("a group still taking predictions waits until they pause for the settle period (at most ten periods); a settled group refreshes meanwhile")
func candidatesSettle() {
    let table = CandidateTable(size: 2)
    let de = CandidateGroup(promotionID: "P1", market: "de"), jp = CandidateGroup(promotionID: "P1", market: "jp")
    let settle: Int64 = 1_000
    #expect(table.apply(prediction("a", "P1", gmv: 5, market: "de"), atMs: 0))
    #expect(table.apply(prediction("j", "P1", gmv: 5, market: "jp"), atMs: 0))
    #expect(table.refresh(nowMs: 999, settleMs: settle).isEmpty && table.unsettledCount == 2, "both still within the period")
    #expect(table.apply(prediction("b", "P1", gmv: 7, market: "de"), atMs: 500))
    #expect(table.refresh(nowMs: 1_000, settleMs: settle) == [jp], "jp paused for the period; de took b at 500")
    #expect(table.candidates(de).isEmpty && table.candidates(jp).map(\.itemID) == ["j"])
    #expect(table.refresh(nowMs: 1_500, settleMs: settle) == [de])
    #expect(table.candidates(de).map(\.itemID) == ["b", "a"] && table.unsettledCount == 0)

    // A steady trickle: a prediction every 900 ms never pauses for 1,000, yet the group refreshes ten periods after
    // the first of them.
    var changes: [Int64] = []
    for step in Int64(1)...14 {
        let at = 2_000 + step * 900
        #expect(table.apply(prediction("c\(step)", "P1", gmv: Double(10 + step), market: "de"), atMs: at))
        if !table.refresh(nowMs: at, settleMs: settle).isEmpty { changes.append(at) }
    }
    #expect(changes == [2_000 + 13 * 900], "first at 2,900: refreshed at the first refresh from 12,900 on")
    #expect(table.candidates(de).map(\.itemID) == ["c13", "c12"])
    // Without a settle period, every group refreshes at once.
    #expect(table.apply(prediction("z", "P1", gmv: 99, market: "de", sequence: 1), atMs: 20_000))
    #expect(table.refresh(nowMs: 20_000, settleMs: 0) == [de])
}

// MARK: Recommender

@Test("a recommendation is the top K by P(buy), ties by id, the same bits for any order of the same candidates")
func recommenderTopK() throws {
    let model = try userModel()
    let recommender = Recommender(model: model, topK: 3)
    let purchases = (0..<6).map { UserPurchase(item: "h\($0)", market: $0 % 2 == 0 ? "de" : "jp", atMs: Int64($0)) }
    let history = PurchaseHistory(user: "u", purchases: purchases)
    let candidates = (0..<12).map { "item-\($0)" }
    let top = recommender.recommend(history, market: "de", candidates: candidates)
    #expect(top.count == 3)

    // Independently: every candidate scored on its own.
    let network = BOPNetwork<Float>(model)
    let alone = Dictionary(uniqueKeysWithValues: candidates.map { c in
        (c, network.probabilities([model.sequence(purchases: purchases.map { $0.item as String? }, candidate: c, market: "de")])[0])
    })
    let expected = candidates.sorted { a, b in alone[a]! != alone[b]! ? alone[a]! > alone[b]! : byIDBytes(a, b) }
    #expect(top.map(\.itemID) == Array(expected.prefix(3)))
    for item in top { #expect(abs(item.probability - alone[item.itemID]!) <= 1e-6, "\(item.itemID)") }
    #expect(zip(top, top.dropFirst()).allSatisfy { $0.probability > $1.probability || ($0.probability == $1.probability && byIDBytes($0.itemID, $1.itemID)) })
    #expect(Set(alone.values).count > 1, "a model that tells candidates apart")

    // Any permutation, with repeats: the same bits.
    var rng = SeededGenerator(seed: 3)
    for round in 0..<8 {
        var shuffled = candidates.shuffled(using: &rng)
        if round % 2 == 1 { shuffled += shuffled.prefix(round) }
        #expect(sameBits(recommender.recommend(history, market: "de", candidates: shuffled), top), "round \(round)")
    }
    #expect(sameBits(recommender.recommend(history, market: "de", candidates: candidates.reversed()), top))

    // K larger than the candidates: all of them, sorted.
    let all = Recommender(model: model, topK: 50).recommend(history, market: "de", candidates: Array(candidates.prefix(5)))
    #expect(all.count == 5)
    #expect(Set(all.map(\.itemID)) == Set(candidates.prefix(5)))
    #expect(zip(all, all.dropFirst()).allSatisfy { $0.probability > $1.probability || ($0.probability == $1.probability && byIDBytes($0.itemID, $1.itemID)) })
    // The first 3 of the full ranking are the top 3.
    let full = Recommender(model: model, topK: 50).recommend(history, market: "de", candidates: candidates)
    #expect(sameBits(Array(full.prefix(3)), top))
    #expect(full.map(\.itemID) == expected)

    // The scoring reads the latest max_history − 1 purchases: what is older changes nothing.
    #expect(recommender.historyLength(history) == userBOPConfig.maxHistory - 1)
    let recent = PurchaseHistory(user: "u", purchases: Array(purchases.suffix(userBOPConfig.maxHistory - 1)))
    #expect(sameBits(recommender.recommend(recent, market: "de", candidates: candidates), top))
    #expect(recommender.historyLength(PurchaseHistory(user: "u", purchases: Array(purchases.prefix(2)))) == 2)
    // The market matters, and no candidates make no items.
    #expect(!sameBits(recommender.recommend(history, market: "jp", candidates: candidates), top))
    #expect(recommender.recommend(history, market: "de", candidates: [String]()).isEmpty)
    #expect(Recommender(model: model, topK: 0).recommend(history, market: "de", candidates: candidates).count == 1)
}

@Test("a combined file: the item role publishes each item's rep as offline does, the candidate table keeps it, a recommendation scores with it")
func candidatesCarryTheirRepresentation() throws {
    let stream = try SmallStream(items: 40, partitions: 2)
    let r = stream.model.layout.representationWidth
    let bytes = try BOPModel.random(config: userBOPConfig, markets: [], repWidth: r, seed: 5).combined(with: stream.model).safetensors()
    let item = try DINOPModel(safetensors: bytes), user = try BOPModel(safetensors: bytes)
    let processor = StreamProcessor(model: item, options: ProcessorOptions())
    var out = processor.process(stream.messages, nowMs: 1_000)
    out += processor.process([], nowMs: 1_000 + ProcessorOptions().gracePeriodMs)
    let latest = try latestPredictions(out)
    let offline = FeaturePipeline(config: item.config).predictions(item, for: stream.records, representation: true)
    #expect(latest.count == stream.records.count)
    for (record, expected) in zip(stream.records, offline) {
        let published = try #require(latest[record.key]?.rep), rep = try #require(expected.rep)
        #expect(published.count == r && zip(published, rep).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }, "\(record.key)")
    }
    // An item-only file publishes no rep; a swap to the combined file (a later version) recomputes every item with it.
    let plainProcessor = StreamProcessor(model: stream.model, options: ProcessorOptions())
    let plain = try latestPredictions(plainProcessor.process(stream.messages, nowMs: 1_000))
    #expect(!plain.isEmpty && plain.values.allSatisfy { $0.rep == nil })
    var later = item
    later.version = stream.model.version + 1
    try plainProcessor.swap(to: later)
    var swapped: [OutputRecord] = []
    for _ in 0..<100 where plainProcessor.staleCount > 0 { swapped += plainProcessor.process([], nowMs: 2_000) }
    let recomputed = try latestPredictions(swapped)
    #expect(plainProcessor.staleCount == 0 && recomputed.count == plain.count)
    #expect(recomputed.values.allSatisfy { $0.rep?.count == r && $0.modelVersion == later.version })

    let table = CandidateTable(size: 8)
    for p in latest.values { table.apply(p) }
    let group = try #require(table.refresh().first)
    let candidates = table.candidates(group)
    #expect(candidates.count == 8)
    for c in candidates {
        #expect(c.rep == latest[ItemKey(promotionID: group.promotionID, itemID: c.itemID)]?.rep?.map { Float($0) })
    }
    let purchases = (0..<3).map { UserPurchase(item: "h\($0)", market: group.market, atMs: Int64($0)) }
    let history = PurchaseHistory(user: "u", purchases: purchases)
    let recommender = Recommender(model: user, topK: 8)
    let ranked = recommender.recommend(history, market: group.market, candidates: candidates)
    // Independently: each candidate alone, with its rep, in float64.
    let exact = BOPNetwork<Double>(user)
    let alone = Dictionary(uniqueKeysWithValues: candidates.map { c in
        (c.itemID, exact.probabilities([user.sequence(purchases: purchases.map { $0.item as String? }, candidate: c.itemID,
                                                      market: group.market, rep: c.rep)])[0])
    })
    #expect(ranked.count == 8 && ranked.allSatisfy { abs($0.probability - alone[$0.itemID]!) <= 1e-5 })
    let bare = recommender.recommend(history, market: group.market, candidates: candidates.map { Candidate(itemID: $0.itemID) })
    #expect(bare.contains { b in abs(b.probability - alone[b.itemID]!) > 1e-3 }, "without rep the scores differ: the term is there")

    // A new rep for a candidate (the same GMV, a later prediction) changes the group; the same rep again does not.
    var next = try #require(latest[ItemKey(promotionID: group.promotionID, itemID: candidates[0].itemID)])
    next.sequence = (next.sequence ?? 0) + 10
    next.rep = next.rep?.map { $0 + 0.5 }
    #expect(table.apply(next))
    #expect(table.refresh() == [group])
    #expect(table.candidates(group).first { $0.itemID == next.itemID }?.rep == next.rep?.map { Float($0) })
    next.sequence = (next.sequence ?? 0) + 1
    #expect(table.apply(next))
    #expect(table.refresh().isEmpty)
}

// MARK: UserProcessor

private let purchasesTopic = "promo.purchases"

/// A scenario of the recommendation role: candidates for two promotions in de (one with items of no market too)
/// and one in jp, then three batches of purchases of six users over three partitions, with redeliveries, an
/// out-of-order purchase, a user who changes market, one of no market, and three dead letters.
private struct Scenario {
    let model: BOPModel
    let options: UserProcessorOptions
    let processor: UserProcessor
    let predictions: [PredictionEvent]
    let partitionOf: [String: Int32] = ["u1": 0, "u2": 1, "u3": 2, "u4": 0, "u5": 1, "u6": 2]
    /// Per batch, its messages and what the processor returned.
    var batches: [(messages: [InputMessage], out: [OutputRecord])] = []
    /// The purchases meant to be applied (valid, keyed by their user), as (user, purchase).
    var applied: [(String, UserPurchase)] = []
    /// Offsets per partition.
    private var next: [Int32: Int64] = [:]

    static let groups = [CandidateGroup(promotionID: "P1", market: "de"), CandidateGroup(promotionID: "P2", market: nil),
                         CandidateGroup(promotionID: "P2", market: "de"), CandidateGroup(promotionID: "P3", market: "jp")]

    init(recomputePerCall: Int = 1, application: String = "app") throws {
        model = try userModel()
        var options = UserProcessorOptions()
        options.application = application
        options.topK = 3
        options.candidates = 4
        options.recomputePerCall = recomputePerCall
        self.options = options
        processor = UserProcessor(model: model, options: options)
        var predictions: [PredictionEvent] = []
        for (i, gmv) in [3.0, 9, 4, 4, 8, 1].enumerated() { predictions.append(prediction("i0\(i)", "P1", gmv: gmv, market: "de")) }
        for (i, gmv) in [2.0, 6, 6, 5, 1, 7].enumerated() { predictions.append(prediction("i0\(i + 3)", "P2", gmv: gmv, market: "de")) }
        for (i, gmv) in [1.0, 2].enumerated() { predictions.append(prediction("n\(i)", "P2", gmv: gmv, market: nil)) }
        for (i, gmv) in [5.0, 4, 3, 2, 1].enumerated() { predictions.append(prediction("i1\(i)", "P3", gmv: gmv, market: "jp")) }
        self.predictions = predictions
    }

    mutating func message(partition: Int32, key: String?, value: [UInt8]) -> InputMessage {
        let offset = next[partition, default: 100]
        next[partition] = offset + 1
        return InputMessage(topic: purchasesTopic, partition: partition, offset: offset, key: key.map { Array($0.utf8) }, value: value)
    }

    mutating func purchase(_ user: String, _ item: String, _ market: String?, second: Int64, key: String? = nil,
                           keyless: Bool = false, applied isApplied: Bool = true) -> InputMessage {
        let atMs = baseMs + second * 1000 + 17
        if isApplied { applied.append((user, UserPurchase(item: item, market: market, atMs: atMs))) }
        return message(partition: partitionOf[user]!, key: keyless ? nil : key ?? user,
                       value: Event.purchase(Purchase(userID: user, itemID: item, market: market, purchasedAt: rfc3339(atMs))).encoded())
    }

    /// The purchases topic's next offset per partition: what a committed transaction of everything so far commits.
    var positions: [Int32: Int64] { next }

    mutating func run(_ messages: [InputMessage], nowMs: Int64 = baseMs + 100_000) {
        batches.append((messages, processor.process(messages, nowMs: nowMs)))
    }

    mutating func feedAll() {
        processor.apply(predictions: predictions)
        let changed = processor.refreshCandidates()
        #expect(changed == Self.groups)
        #expect(processor.pendingCount == 0, "no users yet")

        let first = [purchase("u1", "i00", "de", second: 10), purchase("u2", "i01", "de", second: 11),
             purchase("u1", "i03", "de", second: 12), purchase("u3", "i02", "de", second: 13),
             purchase("u4", "i10", "jp", second: 14), purchase("u6", "i15", nil, second: 15)]
        run(first)
        var second: [InputMessage] = (2...6).map { purchase("u2", "i0\($0)", "de", second: 18 + Int64($0)) }
        second.append(purchase("u1", "i07", "de", second: 5))  // out of order: before all of u1's
        second.append(purchase("u5", "i08", "de", second: 25, key: "u1", applied: false))  // wrong key
        second.append(message(partition: 2, key: "i00", value: Event.prediction(prediction("i00", "P1", gmv: 1, market: "de")).encoded()))
        second.append(message(partition: 0, key: "u4", value: Array("{\"schema\": \"purchase/1\", \"user_id\": ".utf8)))
        second.append(purchase("u3", "i11", "jp", second: 26))  // u3 now shops in jp
        second.append(purchase("u5", "i09", "de", second: 27))
        second.append(purchase("u4", "i12", "jp", second: 28))
        second.append(purchase("u4", "i12", "jp", second: 28))  // the same event twice in a batch
        run(second)
        let third = [purchase("u2", "i00", "de", second: 1),  // older than u2's full history: dropped
             purchase("u1", "i00", "de", second: 10),  // a redelivery
             purchase("u4", "i13", "jp", second: 30),
             purchase("u5", "i01", "de", second: 30), purchase("u5", "i00", "de", second: 30),  // a tie in time
             purchase("u6", "i16", nil, second: 31),
             purchase("u3", "i12", "jp", second: 32, keyless: true, applied: false)]  // no key
        run(third)
    }

    var outputs: [OutputRecord] { batches.flatMap(\.out) }

    /// Each user's history built without `PurchaseHistory.add`: the distinct purchases, sorted, the latest `max_history`.
    var expectedHistories: [String: PurchaseHistory] {
        var byUser: [String: [UserPurchase]] = [:]
        for (user, p) in applied where !(byUser[user] ?? []).contains(where: { $0.item == p.item && $0.market == p.market && $0.atMs == p.atMs }) {
            byUser[user, default: []].append(p)
        }
        return byUser.mapValues { $0.sorted { $0.atMs != $1.atMs ? $0.atMs < $1.atMs : byIDBytes($0.item, $1.item) } }
            .reduce(into: [:]) { $0[$1.key] = PurchaseHistory(user: $1.key, purchases: Array($1.value.suffix(userBOPConfig.maxHistory))) }
    }

    /// `promo bop predict` on the expected histories, with its own recommender and candidate table.
    func offline(_ predictions: [PredictionEvent]) -> [Recommendation] {
        let table = CandidateTable(size: options.candidates)
        for p in predictions { table.apply(p) }
        _ = table.refresh()
        return Recommender(model: model, topK: options.topK)
            .recommendations(Array(expectedHistories.values), table: table, producedAt: rfc3339(baseMs))
    }
}

private struct RecommendationKey: Hashable { var user: String; var promotion: String; var market: String? }

private func recommendations(_ records: [OutputRecord]) throws -> [(OutputRecord, Recommendation)] {
    try records.filter { $0.kind == .recommendation }.map { record in
        guard case .recommendation(let r) = try EventDecoder().decode(record.value) else {
            throw EventError(path: "", reason: "not a recommendation")
        }
        return (record, r)
    }
}

private func latest(_ records: [OutputRecord]) throws -> [RecommendationKey: Recommendation] {
    var out: [RecommendationKey: Recommendation] = [:]
    for (_, r) in try recommendations(records) { out[RecommendationKey(user: r.userID, promotion: r.promotionID, market: r.market)] = r }
    return out
}

/// The latest emitted recommendation of every (user, promotion, market) that the offline run has equals it (items,
/// bits, history length, market, promotion); any other one emitted is for a market the user no longer shops in.
private func expectMatchesOffline(_ emitted: [RecommendationKey: Recommendation], _ offline: [Recommendation],
                                  histories: [String: PurchaseHistory], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!offline.isEmpty, sourceLocation: sourceLocation)
    for r in offline {
        let key = RecommendationKey(user: r.userID, promotion: r.promotionID, market: r.market)
        guard let got = emitted[key] else {
            Issue.record("no recommendation for \(key)", sourceLocation: sourceLocation)
            continue
        }
        #expect(sameBits(got.items, r.items), "\(key): \(got.items) vs \(r.items)", sourceLocation: sourceLocation)
        #expect(got.historyLength == r.historyLength, "\(key)", sourceLocation: sourceLocation)
        #expect(got.modelVersion == r.modelVersion, "\(key)", sourceLocation: sourceLocation)
        #expect(!got.items.isEmpty, "\(key)", sourceLocation: sourceLocation)
    }
    let offlineKeys = Set(offline.map { RecommendationKey(user: $0.userID, promotion: $0.promotionID, market: $0.market) })
    for key in emitted.keys where !offlineKeys.contains(key) {
        #expect(histories[key.user]?.market != key.market, "\(key) emitted but not offline", sourceLocation: sourceLocation)
    }
}

@Test("purchases in batches over partitions: the last recommendation per user and promotion equals `promo bop predict`; changelog records hold the histories; bad messages are dead letters")
func userProcessorEndToEnd() throws {
    var s = try Scenario()
    s.feedAll()
    let processor = s.processor
    let expected = s.expectedHistories

    // Histories, independently built.
    #expect(Set(expected.keys) == ["u1", "u2", "u3", "u4", "u5", "u6"])
    #expect(processor.userCount == expected.count)
    for (user, history) in expected {
        #expect(processor.history(partition: s.partitionOf[user]!, user: user) == history, "\(user)")
    }
    #expect(expected["u1"]!.purchases.map(\.item) == ["i07", "i00", "i03"], "the out-of-order purchase first")
    #expect(expected["u2"]!.purchases.map(\.item) == ["i02", "i03", "i04", "i05", "i06"], "the oldest beyond max_history dropped")
    #expect(expected["u3"]!.market == "jp")
    #expect(expected["u5"]!.purchases.map(\.item) == ["i09", "i00", "i01"])
    #expect(expected["u6"]!.market == nil)

    // Recommendations: the last per (user, promotion, market) equal the offline ones.
    let offline = s.offline(s.predictions)
    #expect(offline.count == 3 * 2 + 2 * 1 + 1, "u1, u2, u5 × P1/P2 de; u3, u4 × P3 jp; u6 × P2 none")
    expectMatchesOffline(try latest(s.outputs), offline, histories: expected)
    for (record, r) in try recommendations(s.outputs) {
        #expect(record.key == Array(r.userID.utf8))
        #expect(record.partition == nil)
        #expect(record.statePartition == s.partitionOf[r.userID])
        #expect(r.trigger == .purchase, "nothing was queued")
        #expect(r.items.count == min(s.options.topK, s.processor.table.candidates(CandidateGroup(promotionID: r.promotionID, market: r.market)).count))
    }
    // Per batch: a user that bought gets one recommendation per group of its market, after its changelog record.
    let third = try recommendations(s.batches[2].out).map(\.1)
    #expect(Set(third.map(\.userID)) == ["u4", "u5", "u6"], "the too-old purchase, the redelivery and the keyless message change nobody")
    #expect(third.filter { $0.userID == "u5" }.map(\.promotionID) == ["P1", "P2"])
    #expect(third.filter { $0.userID == "u6" }.map(\.market) == [nil])
    #expect(third.first { $0.userID == "u4" }?.asOf == rfc3339(baseMs + 30 * 1000 + 17))

    // Changelog records: one per changed user per batch, to its input partition, decoding to the histories.
    for (i, batch) in s.batches.enumerated() {
        let changelog = batch.out.filter { $0.kind == .changelog }
        let users = changelog.map { String(decoding: $0.key, as: UTF8.self) }
        #expect(users.count == Set(users).count, "batch \(i): one record per user")
        // The purchases topic's next offset per partition after this batch.
        var position: [Int32: Int64] = [:]
        for m in s.batches[...i].flatMap(\.messages) { position[m.partition] = max(position[m.partition] ?? 0, m.offset + 1) }
        for record in changelog {
            let (history, provenance) = try HistoryCodec.decode(record.value)
            #expect(record.key == Array(history.user.utf8))
            #expect(record.partition == s.partitionOf[history.user])
            #expect(record.statePartition == s.partitionOf[history.user])
            #expect(provenance == Provenance(application: "app", positions: [position[record.partition!]!]), "batch \(i) \(history.user)")
        }
    }
    #expect(s.batches[2].out.filter { $0.kind == .changelog }.map { String(decoding: $0.key, as: UTF8.self) }.sorted() == ["u4", "u5", "u6"])
    var lastChangelog: [String: PurchaseHistory] = [:]
    for record in s.outputs where record.kind == .changelog {
        let (history, _) = try HistoryCodec.decode(record.value)
        lastChangelog[history.user] = history
    }
    #expect(lastChangelog == expected)

    // Dead letters: the right cause, the batch's other messages applied (checked above).
    let letters = try s.outputs.filter { $0.kind == .deadLetter }.map { record -> (DeadLetterCause?, DeadLetter) in
        guard case .deadLetter(let letter) = try EventDecoder().decode(record.value) else { throw EventError(path: "", reason: "not a dead letter") }
        return (record.deadLetterCause, letter)
    }
    let wrongKey = s.batches[1].messages[6], notInput = s.batches[1].messages[7], garbage = s.batches[1].messages[8]
    let keyless = s.batches[2].messages[6]
    #expect(letters.count == 4)
    for (message, cause) in [(wrongKey, DeadLetterCause.wrongKey), (notInput, .notAnInput), (garbage, .invalidEvent), (keyless, .wrongKey)] {
        let found = letters.filter { $0.1.partition == Int(message.partition) && $0.1.offset == message.offset }
        #expect(found.count == 1, "\(cause)")
        #expect(found.first?.0 == cause)
        #expect(found.first?.1.sourceTopic == purchasesTopic)
        #expect(found.first?.1.value == message.value)
        #expect(found.first?.1.key == message.key)
    }
    #expect(s.batches[1].out.filter { $0.kind == .deadLetter }.count == 3)
    #expect(processor.pendingCount == 0)
    #expect(processor.process([], nowMs: baseMs).isEmpty, "nothing queued, nothing to do")
}

@Test("a changed candidate set recomputes that group's market's users, a few per call; an order-only change recomputes nobody")
func userProcessorCandidateChange() throws {
    var s = try Scenario(recomputePerCall: 1)
    s.feedAll()
    let processor = s.processor
    let expected = s.expectedHistories
    let deUsers = Set(expected.values.filter { $0.market == "de" }.map(\.user))
    #expect(deUsers == ["u1", "u2", "u5"])
    var predictions = s.predictions

    // P1 de's top 4 is i01 (9), i04 (8), i02 and i03 (4, 4): swapping i04 above i01 changes the order only.
    let orderOnly = prediction("i04", "P1", gmv: 10, market: "de", sequence: 2)
    predictions.append(orderOnly)
    processor.apply(predictions: [orderOnly])
    #expect(processor.refreshCandidates().isEmpty)
    #expect(processor.pendingCount == 0)
    #expect(processor.process([], nowMs: baseMs + 200_000).isEmpty)

    // P2 de gets a new top item: its de users are queued, and only for it.
    let group = CandidateGroup(promotionID: "P2", market: "de")
    let newTop = [prediction("i20", "P2", gmv: 50, market: "de"), prediction("i21", "P3", gmv: 0.5, market: "jp")]
    let before = processor.table.candidates(group)
    predictions += newTop
    processor.apply(predictions: newTop)
    #expect(processor.refreshCandidates() == [group], "P3 jp's new item is not in its top 4")
    #expect(processor.table.candidates(group) != before)
    #expect(processor.pendingCount == deUsers.count)

    var drained: [Recommendation] = []
    var calls = 0
    while processor.pendingCount > 0, calls < 20 {
        let out = processor.process([], nowMs: baseMs + 300_000 + Int64(calls))
        let recs = try recommendations(out).map(\.1)
        #expect(recs.count == 1, "recomputePerCall 1")
        #expect(out.allSatisfy { $0.kind == .recommendation }, "no changelog without a purchase")
        drained += recs
        s.batches.append(([], out))
        calls += 1
    }
    #expect(calls == deUsers.count)
    #expect(processor.pendingCount == 0)
    #expect(drained.allSatisfy { $0.trigger == .candidates && $0.promotionID == "P2" && $0.market == "de" })
    #expect(Set(drained.map(\.userID)) == deUsers && drained.count == deUsers.count)
    #expect(processor.process([], nowMs: baseMs + 400_000).isEmpty)
    expectMatchesOffline(try latest(s.outputs), s.offline(predictions), histories: expected)

    // Again, with a purchase of a queued user in between: its purchase recomputes it, the queue drops it.
    let again = prediction("i22", "P1", gmv: 60, market: "de")
    predictions.append(again)
    processor.apply(predictions: [again])
    #expect(processor.refreshCandidates() == [CandidateGroup(promotionID: "P1", market: "de")])
    #expect(processor.pendingCount == 3)
    let buy = s.purchase("u2", "i22", "de", second: 40)
    let out = processor.process([buy], nowMs: baseMs + 500_000)
    let recs = try recommendations(out).map(\.1)
    #expect(recs.filter { $0.trigger == .purchase }.map(\.userID) == ["u2", "u2"], "u2's P1 and P2")
    #expect(recs.filter { $0.trigger == .candidates }.count == 1)
    #expect(!recs.contains { $0.trigger == .candidates && $0.userID == "u2" })
    #expect(processor.pendingCount == 1)
    s.batches.append(([buy], out))
    while processor.pendingCount > 0, calls < 40 {
        s.batches.append(([], processor.process([], nowMs: baseMs + 600_000)))
        calls += 1
    }
    #expect(processor.pendingCount == 0)
    let histories = s.expectedHistories
    for (user, history) in histories { #expect(processor.history(partition: s.partitionOf[user]!, user: user) == history) }
    expectMatchesOffline(try latest(s.outputs), s.offline(predictions), histories: histories)
}

@Test("changelog records restore the histories into a fresh processor, which then recomputes every user; uncommitted and foreign records are refused")
func userProcessorRestore() throws {
    var s = try Scenario(recomputePerCall: 2)
    s.feedAll()
    let expected = s.expectedHistories
    let changelog = s.outputs.filter { $0.kind == .changelog }

    let fresh = UserProcessor(model: s.model, options: s.options)
    fresh.apply(predictions: s.predictions)
    #expect(fresh.refreshCandidates() == Scenario.groups)
    for partition: Int32 in 0..<3 {
        fresh.startRestore(partition: partition, committed: [s.positions[partition]!])
        for record in changelog where record.partition == partition { try fresh.restore(partition: partition, value: record.value) }
        fresh.finishRestore(partition: partition)
    }
    #expect(fresh.userCount == expected.count)
    for (user, history) in expected {
        #expect(fresh.history(partition: s.partitionOf[user]!, user: user) == history, "\(user)")
    }
    // Every restored user is queued for every group of its market.
    let queued = expected.values.reduce(0) { $0 + fresh.table.groups(market: $1.market).count }
    #expect(queued == 9)
    #expect(fresh.pendingCount == queued)
    var out: [OutputRecord] = []
    var calls = 0
    while fresh.pendingCount > 0, calls < 20 {
        let batch = fresh.process([], nowMs: baseMs + 700_000)
        #expect(batch.count <= 2)
        out += batch
        calls += 1
    }
    #expect(calls == 5)
    let recs = try recommendations(out).map(\.1)
    #expect(recs.count == queued)
    #expect(recs.allSatisfy { $0.trigger == .candidates })
    expectMatchesOffline(try latest(out), s.offline(s.predictions), histories: expected)

    // The restored processor goes on where the first left off: the next purchase's changelog position follows.
    let buy = s.purchase("u4", "i14", "jp", second: 50)
    let after = fresh.process([buy], nowMs: baseMs + 800_000)
    let record = try #require(after.first { $0.kind == .changelog })
    let (history, provenance) = try HistoryCodec.decode(record.value)
    #expect(provenance == Provenance(application: "app", positions: [buy.offset + 1]))
    #expect(history == s.expectedHistories["u4"])

    // A record of a transaction that did not commit.
    let last = try #require(changelog.last { $0.partition == 1 })
    let (_, lastProvenance) = try HistoryCodec.decode(last.value)
    let position = try #require(lastProvenance.positions.first)
    let refusing = UserProcessor(model: s.model, options: s.options)
    refusing.startRestore(partition: 1, committed: [position - 1])
    #expect(throws: RestoreError.uncommitted(topic: purchasesTopic, position: position, committed: position - 1)) {
        try refusing.restore(partition: 1, value: last.value)
    }
    #expect(refusing.userCount == 0)
    refusing.startRestore(partition: 1, committed: [position])
    try refusing.restore(partition: 1, value: last.value)
    #expect(refusing.userCount == 1)

    // Another application's changelog.
    var otherOptions = s.options
    otherOptions.application = "other"
    let other = UserProcessor(model: s.model, options: otherOptions)
    other.startRestore(partition: 1, committed: [position])
    #expect(throws: RestoreError.otherApplication("app", expected: "other")) {
        try other.restore(partition: 1, value: last.value)
    }
    #expect(other.userCount == 0)
    // Corrupt bytes are refused too.
    #expect(throws: StateCodecError.self) { try other.restore(partition: 1, value: Array(last.value.dropLast())) }

    // A user who bought one item at one millisecond in two markets restores too.
    let tie = UserProcessor(model: s.model, options: s.options)
    let tied = ["de", "jp"].enumerated().map { i, market in
        InputMessage(topic: purchasesTopic, partition: 0, offset: Int64(i), key: Array("t".utf8),
                     value: Event.purchase(Purchase(userID: "t", itemID: "a", market: market, purchasedAt: rfc3339(baseMs))).encoded())
    }
    let tieRecord = try #require(tie.process(tied, nowMs: baseMs).last { $0.kind == .changelog })
    let tieHistory = try #require(tie.history(partition: 0, user: "t"))
    #expect(tieHistory.purchases.count == 2)
    let tieRestored = UserProcessor(model: s.model, options: s.options)
    tieRestored.startRestore(partition: 0, committed: [2])
    try tieRestored.restore(partition: 0, value: tieRecord.value)
    tieRestored.finishRestore(partition: 0)
    #expect(tieRestored.history(partition: 0, user: "t") == tieHistory)
}

@Test("a new BOP model queues every user for every group of their market and scores as offline; the same weights under another version queue nobody")
func userProcessorSwap() throws {
    var s = try Scenario(recomputePerCall: 3)
    s.feedAll()
    let expected = s.expectedHistories
    #expect(s.processor.pendingCount == 0)

    var renamed = s.model
    renamed.version = 7
    #expect(!s.processor.swap(to: renamed), "the same weights")
    #expect(s.processor.pendingCount == 0 && s.processor.recommender.model.version == 7)

    let other = try BOPModel.random(config: userBOPConfig, markets: ["de", "jp"], seed: 2)
    #expect(s.processor.swap(to: other))
    let queued = expected.values.reduce(0) { $0 + s.processor.table.groups(market: $1.market).count }
    #expect(queued == 9 && s.processor.pendingCount == queued)
    var out: [OutputRecord] = []
    for _ in 0..<10 where s.processor.pendingCount > 0 { out += s.processor.process([], nowMs: baseMs + 900_000) }
    #expect(s.processor.pendingCount == 0)
    let recs = try recommendations(out).map(\.1)
    #expect(recs.count == queued && recs.allSatisfy { $0.trigger == .candidates })
    let offline = Recommender(model: other, topK: s.options.topK)
    let table = CandidateTable(size: s.options.candidates)
    for p in s.predictions { table.apply(p) }
    _ = table.refresh()
    expectMatchesOffline(try latest(out), offline.recommendations(Array(expected.values), table: table, producedAt: rfc3339(baseMs)),
                         histories: expected)
    let emitted = try latest(out)
    #expect(s.offline(s.predictions).contains { r in
        !sameBits(emitted[RecommendationKey(user: r.userID, promotion: r.promotionID, market: r.market)]?.items ?? [], r.items)
    }, "the old model recommends otherwise")
}

@Test("ids are bytes: canonically equivalent user ids are two users, such item ids two candidates and two items")
func exactIDs() throws {
    let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
    #expect(composed == decomposed, "Swift's String equality would merge them")
    #expect(Set([ItemKey(promotionID: "P", itemID: composed), ItemKey(promotionID: "P", itemID: decomposed)]).count == 2)
    #expect(Set([CandidateGroup(promotionID: "P", market: composed), CandidateGroup(promotionID: "P", market: decomposed)]).count == 2)

    var options = UserProcessorOptions()
    options.topK = 5
    options.candidates = 5
    let processor = UserProcessor(model: try userModel(), options: options)
    processor.apply(predictions: [prediction(composed, "P", gmv: 2, market: "de"), prediction(decomposed, "P", gmv: 1, market: "de")])
    processor.refreshCandidates()
    #expect(processor.table.candidates(CandidateGroup(promotionID: "P", market: "de")).count == 2)
    let messages = [(composed, "a"), (decomposed, "b")].enumerated().map { i, pair in
        InputMessage(topic: purchasesTopic, partition: 0, offset: Int64(i), key: Array(pair.0.utf8),
                     value: Event.purchase(Purchase(userID: pair.0, itemID: pair.1, market: "de", purchasedAt: rfc3339(baseMs))).encoded())
    }
    let out = processor.process(messages, nowMs: baseMs)
    #expect(processor.userCount == 2)
    #expect(processor.history(partition: 0, user: composed)?.purchases.map(\.item) == ["a"])
    #expect(processor.history(partition: 0, user: decomposed)?.purchases.map(\.item) == ["b"])
    // Each recommendation is keyed by, and names, its own user, and offers both items.
    let recommendations = out.filter { $0.kind == .recommendation }
    #expect(Set(recommendations.map(\.key)) == [Array(composed.utf8), Array(decomposed.utf8)])
    for record in recommendations {
        guard case .recommendation(let r) = try EventDecoder().decode(record.value) else {
            Issue.record("not a recommendation")
            continue
        }
        #expect(Array(r.userID.utf8) == record.key)
        #expect(Set(r.items.map { Array($0.itemID.utf8) }) == [Array(composed.utf8), Array(decomposed.utf8)])
    }
}

@Test("the largest history a served model keeps and the largest recommendation fit in a Kafka message")
func recordSizeBounds() throws {
    // Kafka's default message size (librdkafka's message.max.bytes), less room for the key and the record's framing;
    // ids are at most `Event.maxIDLength` characters (the decoder's bound).
    let budget = 1_000_000 - 2 * 1024
    let wide = String(repeating: "\u{10FFFF}", count: Event.maxIDLength)  // 4 UTF-8 bytes a character
    let escaped = String(repeating: "\u{1}", count: Event.maxIDLength)    // 6 bytes a character in JSON
    let limit = Recommender.maxServedHistory
    var history = PurchaseHistory(user: wide)
    for i in 0..<limit { history.add(UserPurchase(item: wide, market: wide, atMs: Int64(i)), limit: limit) }
    #expect(history.purchases.count == limit)
    let record = HistoryCodec.encode(history, provenance: Provenance(application: wide, positions: [.max]))
    #expect(record.count < budget, "\(record.count) bytes")
    let items = Array(repeating: Recommendation.RecommendedItem(itemID: escaped, probability: 2.2250738585072014e-308),
                      count: Recommendation.maxItems)
    let recommendation = Event.recommendation(Recommendation(
        userID: escaped, market: escaped, promotionID: escaped, items: items, modelVersion: .max, historyLength: limit,
        trigger: .candidates, asOf: rfc3339(baseMs), producedAt: rfc3339(baseMs))).encoded()
    #expect(recommendation.count < budget, "\(recommendation.count) bytes")
}

@Test("a model whose history or pass is too large to serve is refused with the reason")
func servingBounds() throws {
    #expect(Recommender.servingProblem(try userModel()) == nil)
    let acmr = try BOPModel.random(config: BOPConfig(width: 32, layers: 1, heads: 8, ffn: 128, maxHistory: 50, itemRows: 11),
                                   markets: [], seed: 1)
    #expect(Recommender.servingProblem(acmr) == nil)
    let long = try BOPModel.random(config: BOPConfig(width: 8, layers: 1, heads: 2, ffn: 16, maxHistory: Recommender.maxServedHistory + 1,
                                                     itemRows: 11), markets: [], seed: 1)
    #expect(Recommender.servingProblem(long)?.contains("max_history 257 is above the 256") == true)
    // 64 heads over 256 tokens: 4 Mi attention weights alone.
    let wide = try BOPModel.random(config: BOPConfig(width: 64, layers: 1, heads: 64, ffn: 16, maxHistory: 256, itemRows: 11),
                                   markets: [], seed: 1)
    #expect(Recommender.servingProblem(wide)?.contains("a candidate's pass would hold 4296704 floats") == true)
}

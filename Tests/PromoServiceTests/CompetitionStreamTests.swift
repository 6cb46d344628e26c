import DINOP
import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoModels
import PromoService
import PromoTesting
import Testing

extension BrokerTests {
    /// Equal to 1e-4 relative in GMV, 1e-5 in the probabilities.
    static func close(_ p: PredictionEvent, _ q: PredictionEvent) -> Bool {
        guard p.daysSeen == q.daysSeen, abs(p.gmv - q.gmv) <= 1e-4 * max(1, q.gmv), abs(p.bsp - q.bsp) <= 1e-5 else { return false }
        return !zip(p.ssProbabilities, q.ssProbabilities).contains { abs($0 - $1) > 1e-5 }
    }

    @Test("competition: two processes run the item role and the industry stage; one is killed with SIGKILL while its stage closes a day; every item's prediction at each day's close equals `promo predict --as-of-day`, exactly once",
          .timeLimit(.minutes(8)))
    func competitionDayCloses() throws {
        var world = try World.make(items: 300, competition: true)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        // Days 1 ... lastDay are produced: every earlier day closes on the partitions' watermarks (the last one would
        // wait for the stage's grace period).
        let lastDay = 6
        func day(_ value: [UInt8]) -> Int? {
            switch try? EventDecoder().decode(value) {
            case .sales(let e): e.day
            case .buyers(let e): e.day
            default: nil
            }
        }
        world.events = world.events.filter { (day($0.value) ?? 0) <= lastDay }
        var offline: [Int: [ItemKey: PredictionEvent]] = [:]
        for t in 1..<lastDay { offline[t] = try world.predictOffline(asOfDay: t) }
        var seenBy: [Int: Set<ItemKey>] = [:]
        for e in world.events {
            guard let d = day(e.value), case .sales(let s)? = try? EventDecoder().decode(e.value) else { continue }
            for t in d..<lastDay { seenBy[t, default: []].insert(ItemKey(promotionID: s.promotionID, itemID: s.itemID)) }
        }

        let broker = try LocalBroker.tansu()
        try KafkaAdmin(broker.config()).createTopics(
            TopicSpec.builtIn(group: "e2e").filter { $0.name.hasPrefix("e2e.competition-") }.map(\.singleBroker))
        // A day's buyers wait 45 s at most (not the members' usual 2 s): the kill and m2's slow transactions would
        // otherwise let a day go without its buyers, which the stage's close keeps and offline never sees.
        let both = ["--role", "items,industry", "--grace-seconds", "45"]
        let m1 = try startMember(broker, world, name: "m1", extra: both)
        // m2's transactions wait 2 s before they commit: a kill as its stage begins a close lands inside one.
        let m2 = try startMember(broker, world, name: "m2", extra: both, environment: ["PROMO_FAULT_TRANSACTION_PAUSE_MS": "2000"])
        for m in [m1, m2] {
            for role in ["items", "industry"] {
                #expect(m.awaitEvent("assigned", where: { $0["role"] == role }) != nil, "\(m.name)'s \(role) role got no partitions")
            }
        }
        let firstPart = world.events.filter { (day($0.value) ?? 0) <= 3 }
        try produce(broker, firstPart)
        let closing = m2.awaitEvent("closing_days", timeout: 120) { $0["role"] == "industry" }
        m2.signal(SIGKILL)
        m2.wait()
        #expect(closing != nil, "m2's stage closed no day")
        #expect(m2.killed(by: SIGKILL))
        try produce(broker, world.events.filter { (day($0.value) ?? 0) > 3 })

        // Committed outputs only (the local broker shows the aborted ones too), until every seen item has its
        // prediction as of every closed day.
        var topics = ServiceTopics()
        topics.changelog = ServiceTopics.changelog(group: "e2e")
        let deadline = Date().addingTimeInterval(240)
        var committed = CommittedOutputs()
        var byDay: [Int: [ItemKey: [PredictionEvent]]] = [:]
        repeat {
            committed = try CommittedOutputs.read(kafka: broker.config(), topics: topics, group: "e2e")
            byDay = [:]
            for p in committed.predictions {
                guard let t = p.asOfDay else { continue }
                byDay[t, default: [:]][ItemKey(promotionID: p.promotionID, itemID: p.itemID), default: []].append(p)
            }
        } while Date() < deadline && (1..<lastDay).contains { byDay[$0]?.count ?? 0 < seenBy[$0]?.count ?? 0 }

        #expect(committed.predictions.allSatisfy { ($0.asOfDay ?? lastDay) < lastDay }, "a prediction before its day closed")
        for t in 1..<lastDay {
            let streamed = byDay[t] ?? [:], expected = offline[t] ?? [:]
            let predicted = Set(streamed.keys), seen = seenBy[t] ?? []
            #expect(predicted == seen, "day \(t): \(streamed.count) items predicted, \(seen.count) seen")
            #expect(streamed.values.allSatisfy { $0.count == 1 }, "day \(t): an item's close published twice")
            let differing = streamed.keys.filter { key in
                guard let p = streamed[key]?.first, let q = expected[key] else { return true }
                return !Self.close(p, q)
            }
            #expect(differing.count == 0, "day \(t): \(differing.count) items differ from promo predict --as-of-day \(t), e.g. \(differing.prefix(3).map { "\($0.itemID): \(streamed[$0]?.map(\.gmv) ?? []) vs \(expected[$0]?.gmv ?? .nan), days without buyers \(streamed[$0]?.first?.daysWithoutBuyers ?? [])" })")
        }
        // The survivor restored the stage's state from its changelog, refusing the killed close's records.
        let restores = m1.events("assigned").filter { $0["role"] == "industry" }
        #expect(restores.contains { ($0["skipped_uncommitted"].flatMap { Int($0) } ?? 0) > 0 }, "\(restores.map(\.fields))")
        #expect(restores.last?["partitions"] == (0..<12).map(String.init).joined(separator: ","))
        m1.signal(SIGTERM)
        #expect(m1.wait() == 0, "SIGTERM ends both roles cleanly")

        // A backtest replays the topics through the same stage in one process: its closes are the same.
        let model = try ModelFile.read(contentsOf: world.model)
        let replay = try BacktestReplay(kafka: broker.config()).run(model: model, from: 0, to: .max / 2, log: { _ in })
        for t in 1..<lastDay {
            let asOf = Dictionary(replay.asOf[t].map { (ItemKey(promotionID: $0.promotionID, itemID: $0.itemID), $0) }) { $1 }
            #expect(Set(asOf.keys) == seenBy[t] ?? [], "backtest day \(t)")
            #expect(asOf.allSatisfy { key, p in offline[t]?[key].map { Self.close(p, $0) } ?? false }, "backtest day \(t)")
        }
    }
}

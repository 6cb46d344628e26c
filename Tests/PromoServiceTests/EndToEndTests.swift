import DINOP
import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoService
import PromoTesting
import PromoWorld
import Testing

/// Malformed inputs of several kinds, each of which must come out on the dead-letter topic exactly once.
let malformed: [(topic: String, key: String, value: [UInt8])] = [
    ("promo.daily-sales", "bad-1", Array("{\"schema\":\"daily_sales/1\",".utf8)),
    ("promo.daily-sales", "bad-2", Array(#"{"schema":"daily_sales/1","item_id":"bad-2","promotion_id":"p","day":0,"sales":{}}"#.utf8)),
    ("promo.daily-buyers", "bad-3", Array(#"{"schema":"daily_buyers/1","item_id":"bad-3","promotion_id":"p","day":"2","buyers":{}}"#.utf8)),
    ("promo.item-profiles", "wrong-key", Array(#"{"schema":"item_profile/1","item_id":"bad-4","promotion_id":"p","ids":{},"sis":{}}"#.utf8)),
]

extension BrokerTests {
    @Test("two members in a group, one killed with SIGKILL mid-stream: the survivor ends with the offline predictions, exactly once")
    func killOneMember() throws {
        // Tansu: the test needs transactional offset commits and read_committed, which the mock cluster only pretends.
        var world = try World.make()
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        let m1 = try startMember(broker, world, name: "m1"), m2 = try startMember(broker, world, name: "m2")
        for m in [m1, m2] {
            #expect(m.awaitEvent("assigned") != nil, "\(m.name) got no partitions")
        }
        // A late day (one item's day 3 sent last) and duplicates (twenty events sent twice) ride along.
        let lateIndex = world.events.firstIndex { e in
            e.topic == "promo.daily-sales" && (try? EventDecoder().decode(e.value)).map { if case .sales(let s) = $0 { s.day == 3 } else { false } } == true
        }!
        let late = world.events.remove(at: lateIndex)
        let half = world.events.count / 2
        try produce(broker, world.events[..<half] + malformed[..<2])
        var reader = try TopicReader(broker, topics: ["promo.predictions", "promo.dead-letter"])
        #expect(try reader.read(timeout: 60) { predictions($0).count >= 200 })

        m1.signal(SIGKILL)
        m1.wait()
        #expect(m1.killed(by: SIGKILL))
        try produce(broker, world.events[half...] + malformed[2...] + world.events[..<20] + [late])

        let converged = try reader.read(timeout: 120) { mismatches($0, world.offline).isEmpty }
        #expect(converged, "items still differing from offline: \(mismatches(reader.messages, world.offline).prefix(5))")
        #expect(m2.events("assigned").contains { $0["partitions"] == (0..<12).map(String.init).joined(separator: ",") },
                "the survivor took every partition")

        m2.signal(SIGTERM)
        #expect(m2.wait() == 0, "SIGTERM ends a member cleanly")
        // Exactly once, over committed records (Tansu also shows the records of the killed member's aborted
        // transaction): no item's sequence number committed twice or skipped, each malformed input one dead letter.
        var topics = ServiceTopics()
        topics.changelog = ServiceTopics.changelog(group: "e2e")
        let committed = try CommittedOutputs.read(kafka: broker.config(), topics: topics, group: "e2e")
        #expect(committed.sequenceFaults.duplicates == 0 && committed.sequenceFaults.gaps == 0, "\(committed.sequenceFaults)")
        #expect(mismatches(committed.predictions, world.offline).isEmpty)
        let letters = committed.deadLetters
        #expect(letters.map(\.value).sorted { $0.lexicographicallyPrecedes($1) } == malformed.map(\.value).sorted { $0.lexicographicallyPrecedes($1) })
        #expect(letters.allSatisfy { !$0.reason.isEmpty })
    }
}

extension BrokerTests {
    @Test("stop every member, start one: it resumes from the committed offsets with the restored state")
    func restartResumes() throws {
        let world = try World.make(items: 200)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        let first = try startMember(broker, world, name: "a")
        #expect(first.awaitEvent("assigned") != nil)
        let half = world.events.count / 2
        try produce(broker, world.events[..<half])
        var reader = try TopicReader(broker, topics: ["promo.predictions"])
        #expect(try reader.read(timeout: 60) { predictions($0).count >= 100 })
        first.signal(SIGTERM)
        #expect(first.wait() == 0)
        let processedFirst = try #require(first.events("stopped").last?["messages"].flatMap { Int($0) })

        let second = try startMember(broker, world, name: "b")
        let restored = try #require(second.awaitEvent("assigned"))
        #expect(restored["items"] != "0", "state restored from the changelog: \(restored.fields)")
        try produce(broker, world.events[half...])
        let converged = try reader.read(timeout: 120) { mismatches($0, world.offline).isEmpty }
        #expect(converged, "items still differing from offline: \(mismatches(reader.messages, world.offline).prefix(5))")
        second.signal(SIGTERM)
        #expect(second.wait() == 0)
        let processedSecond = try #require(second.events("stopped").last?["messages"].flatMap { Int($0) })
        #expect(processedFirst + processedSecond == world.events.count, "no input read twice, none skipped")
    }
}

extension BrokerTests {
    @Test("promo backtest replays the topics outside any group; its last day scores as offline promo predict does")
    func backtestReplays() throws {
        let world = try World.make(items: 150)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        try produce(broker, world.events + world.outcomes)
        let out = world.folder.appendingPathComponent("backtest")
        let backtest = try ChildProcess(builtProduct("promo"), ["backtest", "--bootstrap", broker.bootstrap, "--model", world.model.path,
                                                                "--out", out.path, "-X", "session.timeout.ms=6000"], name: "backtest")
        #expect(backtest.wait(timeout: 300) == 0, "\(backtest.output.suffix(5))")
        let table = try String(contentsOf: out.appendingPathComponent("backtest.txt"), encoding: .utf8)
        let html = try String(contentsOf: out.appendingPathComponent("backtest.html"), encoding: .utf8)
        #expect(html.contains("<svg"))
        // | day 20 (150 items) | <GMV MAE> | … (DINOP's table; then the naive baseline's, rows "| day 20 |")
        let cells = try #require(table.split(separator: "\n").first { $0.hasPrefix("| day 20 (") }).split(separator: "|")
        let replayedMAE = try #require(Double(cells[1].trimmingCharacters(in: .whitespaces)))
        let keys = world.offline.keys.filter { world.actualGMV[$0] != nil }
        let offlineMAE = keys.map { abs(world.offline[$0]!.gmv - world.actualGMV[$0]!) }.reduce(0, +) / Double(keys.count)
        #expect(abs(replayedMAE - offlineMAE) <= 0.05 + 1e-4 * offlineMAE, "backtest \(replayedMAE), offline \(offlineMAE)")
        #expect(table.split(separator: "\n").filter { $0.hasPrefix("| day ") && $0.contains(" items) |") }.count == 21)
        #expect(table.contains("Naive baseline, same items (multiple ") && table.contains("fitted in hindsight"))
        #expect(table.split(separator: "\n").filter { $0.hasPrefix("| day ") && !$0.contains(" items) |") }.count == 21)
    }
}

import Foundation
import PromoKafka
import PromoTesting
import Testing

extension BrokerTests {
    @Test("at-least-once: failed produce requests and a broker outage rewind the member, which then ends with the offline predictions")
    func faultsRewindAndRecover() throws {
        // The mock cluster: it injects request errors and outages on command, and implements the group offsets
        // that at-least-once mode relies on.
        let world = try World.make(items: 150)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.mock()
        let member = try startMember(broker, world, name: "f1", mode: "at-least-once")
        #expect(member.awaitEvent("assigned") != nil)
        let third = world.events.count / 3
        try produce(broker, world.events[..<third])
        var reader = try TopicReader(broker, topics: ["promo.predictions"])
        #expect(try reader.read(timeout: 60) { predictions($0).count >= 50 })

        // Offset commits fail with a non-retriable error (OFFSET_METADATA_TOO_LARGE): the member cannot tell how far
        // it got, so it rewinds to the committed state and processes those inputs again.
        try broker.mockCommand("error 8 12 2")
        let before = member.output.count
        try produce(broker, world.events[third..<(2 * third)])
        #expect(member.awaitEvent("rewound", after: before) != nil, "the member rewound")

        // Mid-stream: slow responses, failed fetch and produce requests, then the broker down for a while
        // (`PROMO_FAULT_OUTAGE_SECONDS`: 3 in the suite, 60 in Deploy/local/faults.sh). The outage's length is the
        // scenario, not a wait for something to happen.
        let outage = ProcessInfo.processInfo.environment["PROMO_FAULT_OUTAGE_SECONDS"].flatMap(Double.init) ?? 3
        let sixth = third / 2
        try broker.mockCommand("rtt 1 300")
        try broker.mockCommand("error 1 6 5")
        try broker.mockCommand("error 0 6 5")
        try produce(broker, world.events[(2 * third)..<(2 * third + sixth)])
        let downAt = Date(), downMark = member.output.count
        try broker.mockCommand("down 1")
        Thread.sleep(forTimeInterval: outage)
        try broker.mockCommand("up 1")
        try broker.mockCommand("rtt 1 0")
        try produce(broker, world.events[(2 * third + sixth)...])
        let converged = try reader.read(timeout: 120 + outage) { mismatches($0, world.offline).isEmpty }
        #expect(converged, "items still differing from offline: \(mismatches(reader.messages, world.offline).prefix(5))")
        #expect(member.process.isRunning, "bad luck with the cluster never kills the member")
        // The member saw the outage (and said so), rather than the outage passing unnoticed between two polls.
        let seen = member.events("kafka_errors").filter { $0.index >= downMark } + member.events("batch_failed").filter { $0.index >= downMark }
        #expect(!seen.isEmpty, "no sign of the outage in the member's events")
        let rewinds = member.events("rewound").count
        print(String(format: "faults: commit errors, 300 ms round trips, fetch and produce errors, the broker down %.0f s: nothing lost (%d items as offline), the member resumed by itself (%d rewinds, converged %.0f s after the outage began)",
                     outage, world.offline.count, rewinds, Date().timeIntervalSince(downAt)))
        member.signal(SIGTERM)
        #expect(member.wait() == 0)
    }
}

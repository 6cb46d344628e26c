import Foundation
import PromoKafka
import Testing

@Test("at-least-once: failed produce requests and a broker outage rewind the member, which then ends with the offline predictions")
func faultsRewindAndRecover() throws {
    // The mock cluster: it injects request errors and outages on command, and implements the group offsets
    // that at-least-once mode relies on.
    let world = try World.make(items: 150)
    defer { try? FileManager.default.removeItem(at: world.folder) }
    let broker = try LocalBroker.mock()
    let member = try startMember(broker, world, name: "f1", mode: "at-least-once")
    #expect(member.awaitLine(timeout: 60, { $0.contains("assigned partitions") }) != nil)
    let third = world.events.count / 3
    try produce(broker, world.events[..<third])
    var reader = try TopicReader(broker, topics: ["promo.predictions"])
    #expect(try reader.read(timeout: 60) { predictions($0).count >= 50 })

    // Offset commits fail with a non-retriable error (OFFSET_METADATA_TOO_LARGE): the member cannot tell how far
    // it got, so it rewinds to the committed state and processes those inputs again.
    try broker.mockCommand("error 8 12 2")
    let before = member.output.count
    try produce(broker, world.events[third..<(2 * third)])
    #expect(member.awaitLine(after: before, timeout: 60, { $0.contains("rewound") }) != nil, "the member rewound")

    try broker.mockCommand("down 1")
    try broker.mockCommand("up 1")
    try produce(broker, world.events[(2 * third)...])
    let converged = try reader.read(timeout: 120) { mismatches($0, world.offline).isEmpty }
    #expect(converged, "items still differing from offline: \(mismatches(reader.messages, world.offline).prefix(5))")
    #expect(member.process.isRunning, "bad luck with the cluster never kills the member")
    member.signal(SIGTERM)
    #expect(member.wait() == 0)
}

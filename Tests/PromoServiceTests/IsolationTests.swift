import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoTesting
import Testing

extension BrokerTests {
    /// Issue 12: two applications (consumer groups) on one cluster keep separate state.
    @Test("two applications side by side on one broker: each its own changelog topic and state, each ends with the offline predictions")
    func twoApplications() throws {
        let world = try World.make(items: 100)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        let a = try startMember(broker, world, name: "a")
        #expect(a.awaitEvent("assigned") != nil)
        try produce(broker, world.events)
        var reader = try TopicReader(broker, topics: ["promo.predictions"])
        #expect(try reader.read(timeout: 120) { mismatches($0, world.offline).isEmpty })
        a.signal(SIGTERM)
        #expect(a.wait() == 0)

        // A second application: a changelog of its own (created on start), nothing of the first restored, every
        // input read and predicted again.
        let b = try startMember(broker, world, name: "b", group: "other-app")
        let created = b.awaitEvent("created_changelog", where: { $0["topic"] == "other-app.state-changelog" })
        #expect(created != nil, "\(b.output.suffix(5))")
        let restored = try #require(b.awaitEvent("assigned"))
        #expect(restored["records"] == "0" && restored["items"] == "0", "\(restored.fields)")
        let marker = reader.messages.count
        #expect(try reader.read(timeout: 120) { mismatches(Array($0[marker...]), world.offline).isEmpty },
                "the second application predicts every item itself")
        b.signal(SIGTERM)
        #expect(b.wait() == 0)

        // The first application restarted restores its own state only.
        let again = try startMember(broker, world, name: "a")
        let line = try #require(again.awaitEvent("assigned"))
        #expect(line["items"] == "\(world.offline.count)" && line["skipped_other_application"] == "0"
                && line["skipped_uncommitted"] == "0" && line["skipped_inconsistent"] == "0", "\(line.fields)")
        again.signal(SIGTERM)
        #expect(again.wait() == 0)
    }
}

extension BrokerTests {
    /// Issue 12: a member that gets no partitions says what it waits for, joins again, and finally stops with the
    /// reason instead of sitting silent.
    @Test("a member the group never assigns partitions reports its wait, rejoins, then stops with the reason")
    func assignmentWatch() throws {
        let world = try World.make(items: 30)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        // A member that holds every partition and then freezes, with a session longer than the test.
        let holder = try startMember(broker, world, name: "holder", extra: ["-X", "session.timeout.ms=60000"])
        #expect(holder.awaitEvent("assigned") != nil)
        holder.signal(SIGSTOP)
        defer {
            holder.signal(SIGCONT)
            holder.signal(SIGKILL)
        }
        let waiting = try startMember(broker, world, name: "waiting", extra: ["--assignment-timeout", "6"])
        let status = waiting.wait(timeout: 120)
        let output = waiting.output
        #expect(status != 0, "\(output.suffix(5))")
        #expect(waiting.events("waiting_for_assignment").contains { $0["seconds"] == "3" }, "\(output.suffix(8))")
        #expect(waiting.events("rejoining").contains { $0["attempt"] == "1" && $0["of"] == "3" })
        #expect(waiting.events("gave_up_waiting").contains { $0["rejoins"] == "3" })
    }
}

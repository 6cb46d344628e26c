import Foundation
import PromoTesting
import Testing

extension BrokerTests {
    /// `promo produce --raw` and `promo watch` against a broker: what the CLI sends and shows.
    @Test("produce --raw sends lines as they are; watch --max stops at N inside a bigger batch and decodes dead letters")
    func rawProduceAndWatch() throws {
        let broker = try LocalBroker.mock()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("promo-watch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let example = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Topics/examples/dead_letter.1.json"), encoding: .utf8)
        let deadLetter = example.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined()
        // One key for every line: one partition, so the order is the file's.
        let lines = ["k|" + deadLetter, "k|not a dead letter", "k|third", "k|fourth", "k|fifth"]
        let file = folder.appendingPathComponent("raw.txt")
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)

        let produce = try ChildProcess(builtProduct("promo"), ["produce", "--bootstrap", broker.bootstrap, "--raw",
                                                               "--topic", "promo.dead-letter", "--key-delimiter", "|", file.path],
                                       name: "produce")
        #expect(produce.wait(timeout: 60) == 0, "\(produce.output.suffix(5))")
        #expect(produce.output.contains { $0.hasPrefix("promo produce: 5 lines") })

        let watch = try ChildProcess(builtProduct("promo"), ["watch", "--bootstrap", broker.bootstrap, "--topic", "promo.dead-letter",
                                                             "--from-beginning", "--max", "3", "--idle-seconds", "60"],
                                     name: "watch")
        #expect(watch.wait(timeout: 90) == 0, "\(watch.output.suffix(5))")
        let shown = watch.output.filter { !$0.hasPrefix("promo watch:") && !$0.hasPrefix("%") }
        #expect(shown == [
            "dead letter: sales.units: must be ≥ 0, got -3 | from promo.daily-sales[6]@1834412 at 2026-10-28T09:41:07.552Z by promo-stream/promo-stream-2 | key 601238457712 | value {\"schema\":\"daily_sales/1\",\"item_id\":\"601238457712\",\"promotion_id\":\"double11-2026\",\"day\":7,\"date\":\"2026-10-28\",\"sales\":{\"gmv\":41038.0,\"units\":-3,\"orders\":131}}",
            "not a dead letter", "third",
        ])
        #expect(watch.output.contains("promo watch: 3 messages from promo.dead-letter"))
    }
}

extension BrokerTests {
    @Test("promo run with no broker to reach: librdkafka's lines come through swift-log, and the error names the brokers")
    func unreachableBrokers() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("promo-unreachable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = folder.appendingPathComponent("m.safetensors").path
        let initModel = try ChildProcess(builtProduct("promo"), ["model", "init", "--out", model, "--hidden", "8", "--attention", "4",
                                                                 "--embedding-rows", "11"], name: "init")
        #expect(initModel.wait() == 0)
        // A port nothing listens on: every connection is refused at once.
        let bootstrap = "127.0.0.1:\(try LocalBroker.freePort())"
        let member = try ChildProcess(builtProduct("promo"), ["run", "--bootstrap", bootstrap, "--model", model, "--member", "m1",
                                                              "--http-port", "0", "--state-dir", folder.path, "--log-format", "json"],
                                      name: "member")
        #expect(member.wait(timeout: 120) != 0)
        let output = member.output
        #expect(!output.contains { $0.hasPrefix("%") }, "librdkafka wrote its own lines: \(output.filter { $0.hasPrefix("%") }.prefix(2))")
        let librdkafka = output.compactMap { line -> [String: Any]? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["logger"] as? String == "rdkafka" else { return nil }
            return object
        }
        #expect(librdkafka.contains { $0["facility"] as? String == "FAIL" && $0["level"] as? String == "error"
                                      && $0["member"] as? String == "m1" && ($0["message"] as? String ?? "").contains(bootstrap) })
        // librdkafka's reason (a transport failure, a timeout) may vary; the brokers' address may not.
        #expect(output.last?.hasPrefix("Error: cannot reach the brokers at \(bootstrap): metadata of promo.item-profiles") == true,
                "\(output.suffix(2))")
    }
}

import Foundation
import Testing

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

import ArgumentParser
import Foundation
import PromoEvents
import PromoKafka
import PromoService
import PromoWorld

struct ProduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Produce events to their topics, keyed by item id (a line that does not decode is reported and skipped).",
        discussion: """
            A file is produced line by line. A promotion folder (as `promo generate` writes) is produced in the \
            order a live stream brings it: profiles and activities, then day by day sales and buyer profiles, \
            then the outcomes.
            """)

    @OptionGroup var kafka: KafkaOptions
    @Argument(help: "JSON-lines event files or promotion folders, produced in order.") var paths: [String]
    @Option(help: "Days of the pre-sale window.") var presaleDays = 20
    @Option(help: "At most this many events per second (default: as fast as the broker takes them).") var rate: Double?

    func validate() throws {
        try FlagCheck.inRange(presaleDays, FlagCheck.presaleDays, "--presale-days")
        if let rate { try FlagCheck.finite(rate, 1e-3...1e9, "--rate") }
    }

    func run() throws {
        var config = try kafka.config()
        config["partitioner"] = config["partitioner"] ?? "murmur2_random"
        config["linger.ms"] = config["linger.ms"] ?? "20"
        let producer = try KafkaProducer(config)
        let topics = ServiceTopics()
        let start = Date()
        var produced = 0
        var perTopic: [String: Int] = [:]
        // SIGTERM or SIGINT: stop after the event in hand, deliver what was produced and say how many.
        let stop = StopSignal()
        let signals = StopOnSignals(stop)
        struct Stopped: Error {}
        func send(_ event: Event) throws {
            if stop.isStopped { throw Stopped() }
            guard let topic = topics.topic(schema: event.schema) else { return }
            if let rate, produced % 100 == 0 {
                let due = Double(produced) / rate - Date().timeIntervalSince(start)
                if due > 0 { Thread.sleep(forTimeInterval: due) }
            }
            try producer.produce(topic: topic, key: event.itemID.map { Array($0.utf8) }, value: event.encoded())
            produced += 1
            perTopic[topic, default: 0] += 1
            if produced % 10_000 == 0 { producer.poll() }
        }
        do {
            try produceAll(send)
        } catch is Stopped {}
        withExtendedLifetime(signals) {}
        try producer.flush(timeoutMs: 120_000)
        report(String(format: "promo produce: %d events in %.1f s%@ (%@)", produced, Date().timeIntervalSince(start),
                      stop.isStopped ? ", stopped by a signal" : "",
                      perTopic.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
    }

    private func produceAll(_ send: (Event) throws -> Void) throws {
        let decoder = EventDecoder(presaleDays: presaleDays)
        for path in paths {
            let url = URL(fileURLWithPath: path)
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
                for event in try PromotionWorld.inputEvents(promotionFolder: url, decoder: decoder) { try send(event) }
                let outcomes = url.appendingPathComponent("outcomes.jsonl")
                if FileManager.default.fileExists(atPath: outcomes.path) {
                    try EventFile.read(outcomes, decoder: decoder, rejected: { report("rejected \($0)") }, send)
                }
            } else {
                try EventFile.read(url, decoder: decoder, rejected: { report("rejected \($0)") }, send)
            }
        }
    }
}

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
            then the outcomes. With --raw, each line of the files (or of standard input, `-`) is sent to --topic \
            byte for byte, undecoded: malformed input on purpose, to see it dead-lettered.
            """)

    @OptionGroup var kafka: KafkaOptions
    @Argument(help: "JSON-lines event files or promotion folders, produced in order (with --raw: files, - for standard input).")
    var paths: [String]
    @Option(help: "Days of the pre-sale window.") var presaleDays = 20
    @Option(help: "At most this many events per second (default: as fast as the broker takes them).") var rate: Double?
    @Flag(help: "Send each line's bytes as they are to --topic, without decoding or checking them (as kcat -P does).")
    var raw = false
    @Option(help: "With --raw: the topic to send the lines to.") var topic: String?
    @Option(help: "With --raw: split each line at the first occurrence of this text into key and value (kcat's -K); without it, a line's key is its item_id when it is a JSON object with one.")
    var keyDelimiter: String?

    func validate() throws {
        try FlagCheck.inRange(presaleDays, FlagCheck.presaleDays, "--presale-days")
        if let rate { try FlagCheck.finite(rate, 1e-3...1e9, "--rate") }
        if raw {
            guard let topic, !topic.isEmpty else { throw ValidationError("--raw needs --topic") }
            if keyDelimiter == "" { throw ValidationError("--key-delimiter must not be empty") }
        } else if topic != nil || keyDelimiter != nil {
            throw ValidationError("--topic and --key-delimiter go with --raw (events go to their schema's topic)")
        }
    }

    func run() throws { try kafka.namingBrokers(produce) }

    private func produce() throws {
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
        func send(topic: String, key: [UInt8]?, value: [UInt8]) throws {
            if stop.isStopped { throw Stopped() }
            if let rate, produced % 100 == 0 {
                let due = Double(produced) / rate - Date().timeIntervalSince(start)
                if due > 0 { Thread.sleep(forTimeInterval: due) }
            }
            try producer.produce(topic: topic, key: key, value: value)
            produced += 1
            perTopic[topic, default: 0] += 1
            if produced % 10_000 == 0 { producer.poll() }
        }
        do {
            if raw, let topic {
                try produceRawLines { try send(topic: topic, key: $0.key, value: $0.value) }
            } else {
                try produceAll { event in
                    guard let topic = topics.topic(schema: event.schema) else { return }
                    try send(topic: topic, key: event.partitionKey.map { Array($0.utf8) }, value: event.encoded())
                }
            }
        } catch is Stopped {}
        withExtendedLifetime(signals) {}
        try producer.flush(timeoutMs: 120_000)
        report(String(format: "promo produce: %d \(raw ? "lines" : "events") in %.1f s%@ (%@)", produced, Date().timeIntervalSince(start),
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

    private func produceRawLines(_ send: (RawLines.Message) throws -> Void) throws {
        for path in paths {
            let bytes: Data
            if path == "-" {
                bytes = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                var isFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue,
                      let contents = FileManager.default.contents(atPath: path) else {
                    throw ValidationError("--raw: cannot read the file \(path)")
                }
                bytes = contents
            }
            for message in RawLines.messages(Array(bytes), keyDelimiter: keyDelimiter.map { Array($0.utf8) }) {
                try send(message)
            }
        }
    }
}

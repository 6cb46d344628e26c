import ArgumentParser
import Foundation
import PromoKafka

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Print a topic's committed messages as they arrive (outside any group; commits nothing).")

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "The topic.") var topic = "promo.predictions"
    @Flag(help: "Start at the beginning instead of the end.") var fromBeginning = false
    @Option(help: "Stop after this many messages.") var max: Int?
    @Option(help: "Stop when nothing arrives for this many seconds.") var idleSeconds: Double?
    @Option(help: "Print every message up to this many, then one count line per second.") var show = Int.max

    func validate() throws {
        if let max { try FlagCheck.atLeast(max, 0, "--max") }
        if let idleSeconds { try FlagCheck.seconds(idleSeconds, "--idle-seconds") }
        try FlagCheck.atLeast(show, 0, "--show")
    }

    func run() throws {
        var config = try kafka.config()
        config["isolation.level"] = "read_committed"
        let consumer = try KafkaConsumer(config)
        guard let partitions = try KafkaAdmin(try kafka.config()).partitionCount(topic) else {
            throw ValidationError("no topic \(topic)")
        }
        try consumer.assign(Dictionary(uniqueKeysWithValues: (0..<Int32(partitions)).map {
            (TopicPartition(topic, $0), fromBeginning ? KafkaOffset.beginning : KafkaOffset.end)
        }))
        var count = 0, lastMessage = Date(), lastLine = Date(), countAtLine = 0
        while max.map({ count < $0 }) ?? true {
            for m in try consumer.poll(maxMessages: 1_000, timeoutMs: 200) {
                count += 1
                if count <= show { print(String(decoding: m.value, as: UTF8.self)) }
                lastMessage = Date()
            }
            if count > show, Date().timeIntervalSince(lastLine) >= 1 {
                print("\(topic): \(count) messages (\(count - countAtLine) in the last second)")
                (lastLine, countAtLine) = (Date(), count)
            }
            if let idle = idleSeconds, Date().timeIntervalSince(lastMessage) >= idle { break }
        }
        report("promo watch: \(count) messages from \(topic)")
    }
}

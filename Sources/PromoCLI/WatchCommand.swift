import ArgumentParser
import Foundation
import PromoKafka
import PromoService

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Print a topic's committed messages as they arrive (outside any group; commits nothing).",
        discussion: """
            Dead letters are shown decoded: the reason, the source topic, partition and offset, and the rejected \
            key and value as text (or hex or base64 where they are not text).
            """)

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "The topic.") var topic = "promo.predictions"
    @Flag(help: "Start at the beginning instead of the end.") var fromBeginning = false
    @Option(help: "Stop after this many messages.") var max: Int?
    @Option(help: "Stop when nothing arrives for this many seconds.") var idleSeconds: Double?
    @Option(help: "Print every message up to this many, then one count line per second (default: all).") var show: Int?

    func validate() throws {
        if let max { try FlagCheck.atLeast(max, 0, "--max") }
        if let idleSeconds { try FlagCheck.seconds(idleSeconds, "--idle-seconds") }
        if let show { try FlagCheck.atLeast(show, 0, "--show") }
    }

    func run() throws {
        try kafka.namingBrokers { try watch() }
    }

    private func watch() throws {
        var config = try kafka.readingConfig()
        config["isolation.level"] = "read_committed"
        let consumer = try KafkaConsumer(config)
        guard let partitions = try KafkaAdmin(try kafka.readingConfig()).partitionCount(topic) else { throw kafka.noTopic(topic) }
        try consumer.assign(Dictionary(uniqueKeysWithValues: (0..<Int32(partitions)).map {
            (TopicPartition(topic, $0), fromBeginning ? KafkaOffset.beginning : KafkaOffset.end)
        }))
        let isDeadLetters = topic == ServiceTopics().deadLetter
        var count = 0, lastMessage = Date(), lastLine = Date(), countAtLine = 0
        while max.map({ count < $0 }) ?? true {
            // Never more than --max asks for, so it stops exactly there even mid-batch.
            let wanted = max.map { Swift.min($0 - count, 1_000) } ?? 1_000
            for m in try consumer.poll(maxMessages: wanted, timeoutMs: 200) {
                count += 1
                if show.map({ count <= $0 }) ?? true {
                    print((isDeadLetters ? DeadLetterDisplay.line(message: m.value) : nil) ?? String(decoding: m.value, as: UTF8.self))
                }
                lastMessage = Date()
            }
            if let show, count > show, Date().timeIntervalSince(lastLine) >= 1 {
                print("\(topic): \(count) messages (\(count - countAtLine) in the last second)")
                (lastLine, countAtLine) = (Date(), count)
            }
            if let idle = idleSeconds, Date().timeIntervalSince(lastMessage) >= idle { break }
        }
        report("promo watch: \(count) messages from \(topic)")
    }
}

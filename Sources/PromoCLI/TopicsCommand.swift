import ArgumentParser
import Foundation
import PromoKafka

struct TopicsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics", abstract: "Create the topics of Topics/topics/ (compiled into the binary) that do not exist yet.")

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "A folder of topic specs to use instead of the built-in ones (Topics/topics/ of the repository).")
    var specs: String?
    @Option(help: "The consumer group (application) whose internal topics to create: `{group}` in a spec's name.")
    var group = "promo-stream"
    @Flag(help: "One replica and min.insync.replicas=1, for a single-broker development cluster.")
    var singleBroker = false

    func run() throws { try kafka.namingBrokers(createTopics) }

    private func createTopics() throws {
        var topics = try specs.map { try TopicSpec.load(folder: URL(fileURLWithPath: $0), group: group) } ?? TopicSpec.builtIn(group: group)
        if singleBroker { topics = topics.map(\.singleBroker) }
        let created = try KafkaAdmin(try kafka.config()).createTopics(topics)
        report("promo topics: \(created.count) created, \(topics.count - created.count) already there")
    }
}

import ArgumentParser
import DINOP
import Foundation
import PromoServer
import PromoEvents
import PromoModels
import PromoService

/// The model topic as the commands below see it: its log and the version the members serve.
struct ModelTopicOptions: ParsableArguments {
    @OptionGroup var kafka: KafkaOptions
    @Option(help: "The model topic.") var modelTopic = ServiceTopics().models

    func topic() throws -> ModelTopic { ModelTopic(kafka: try kafka.config(), topic: modelTopic) }

    func readLog(_ topic: ModelTopic) throws -> ModelLog {
        let (log, unreadable) = try topic.readLog()
        unreadable.forEach { report("model topic: \($0)") }
        return log
    }
}

/// Refuses a version number the topic already holds: a version names one weight file, for good.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish a weight file on the model topic (chunks, then the announcement); every member switches to it.")

    @Argument(help: "A dinop/1 weight file.") var file: String
    @OptionGroup var topicOptions: ModelTopicOptions
    @Option(help: "What the model was trained on (free text).") var trainedOn: String?
    @Option(help: "A metric name=value for the announcement (repeatable).") var metric: [String] = []

    func run() throws { try topicOptions.kafka.namingBrokers(publish) }

    private func publish() throws {
        let model = try loadModel(file)
        var metrics: [String: Double] = [:]
        for item in metric {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Double(parts[1]) else { throw ValidationError("--metric \(item): expected name=number") }
            metrics[String(parts[0])] = value
        }
        let topic = try topicOptions.topic()
        try checkUnpublished(model.version, in: try topicOptions.readLog(topic))
        let package = ModelPackage(model: model, metrics: metrics, trainedOn: trainedOn)
        try topic.publish(package)
        report("published version \(model.version): \(package.announcement.bytes) bytes in \(package.chunks.count) chunks, sha256 \(package.announcement.sha256)")
    }
}

struct PromoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Announce a version already on the model topic again (a rollback); every member switches to it.")

    @Argument(help: "The version to serve.") var version: Int
    @OptionGroup var topicOptions: ModelTopicOptions

    func run() throws { try topicOptions.kafka.namingBrokers(promote) }

    private func promote() throws {
        let topic = try topicOptions.topic()
        let log = try topicOptions.readLog(topic)
        let chunks = try topic.chunks(of: version, log: log)
        guard !chunks.isEmpty else { throw ValidationError("version \(version) has no chunks on the model topic") }
        // The announcement may have been compacted away (only the latest `model` record is kept): rebuild it
        // from the chunks, which the assembly then checks like any other.
        var announcement: ModelAnnouncement
        if let known = log.announcements.last(where: { $0.announcement.version == version })?.announcement {
            announcement = known
        } else {
            let count = (0...).first { chunks[$0] == nil }!
            var file = Data()
            for i in 0..<count { file.append(chunks[i]!) }
            announcement = ModelAnnouncement(version: version, parent: nil, sha256: sha256Hex(file), bytes: file.count,
                                             chunks: count, createdAt: "")
        }
        let model: DINOPModel
        do { model = try ModelPackage.assemble(announcement, chunks: chunks) } catch {
            throw ValidationError("version \(version) cannot be promoted: \(error)")
        }
        announcement.parent = model.parent
        announcement.createdAt = ModelPackage.timestamp()
        announcement.trainedOn = (announcement.trainedOn.map { "\($0); " } ?? "") + "promoted again"
        try topic.announce(announcement)
        report("announced version \(version) again (sha256 \(announcement.sha256))")
    }
}

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull", abstract: "Write a version from the model topic to a weight file, checked against its announcement.")

    @Option(help: "The version (default: the one the members serve).") var version: Int?
    @Option(help: "Where to write the weight file.") var out: String
    @OptionGroup var topicOptions: ModelTopicOptions

    func run() throws { try topicOptions.kafka.namingBrokers(pull) }

    private func pull() throws {
        let topic = try topicOptions.topic()
        let log = try topicOptions.readLog(topic)
        let model: DINOPModel
        if let version {
            guard let entry = log.announcements.last(where: { $0.announcement.version == version }) else {
                throw ValidationError("version \(version) was not announced (or its announcement was compacted away: `promo model promote` it)")
            }
            model = try topic.load(entry.announcement, log: log)
        } else {
            guard let served = try topic.current(log).served else { throw ValidationError("the model topic announces no version that verifies") }
            model = served.0
        }
        try model.write(to: URL(fileURLWithPath: out))
        report("wrote \(out): version \(model.version), parent \(model.parent.map(String.init) ?? "none")")
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the model topic's announcements and which version the members serve.")

    @OptionGroup var topicOptions: ModelTopicOptions

    func run() throws { try topicOptions.kafka.namingBrokers(list) }

    private func list() throws {
        let topic = try topicOptions.topic()
        let log = try topicOptions.readLog(topic)
        let served = try topic.current(log).served?.1
        let last = log.announcements.lastIndex { $0.announcement == served }
        print("| offset | version | parent | sha256 | bytes | created | trained on | metrics | status |")
        print("|---:|---:|---:|---|---:|---|---|---|---|")
        for (i, entry) in log.announcements.enumerated() {
            let a = entry.announcement
            var status = i == last ? "served" : "verifies"
            do { _ = try topic.load(a, log: log) } catch { status = "refused: \(error)" }
            let metrics = a.metrics.sorted { $0.key < $1.key }.map { String(format: "%@=%.4g", $0.key, $0.value) }.joined(separator: " ")
            print("| \(entry.offset) | \(a.version) | \(a.parent.map(String.init) ?? "—") | \(a.sha256.prefix(12))… | \(a.bytes) | \(a.createdAt) | \(a.trainedOn ?? "") | \(metrics) | \(status) |")
        }
        let versions = log.chunkOffsets.keys.sorted()
        print("versions with chunks on the topic: \(versions.map(String.init).joined(separator: ", "))")
    }
}

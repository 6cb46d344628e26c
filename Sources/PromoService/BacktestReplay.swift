import DINOP
import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoStream

/// Replays the input topics between two times through the same processing as a member, outside any live group:
/// its consumer commits nothing and its outputs are collected, not produced. Reads the outcome topic whole.
public struct BacktestReplay {
    public struct Result: Sendable {
        /// Every item's prediction as of each pre-sale day 0...presaleDays, from the replayed state. With MARKETS.md
        /// `competition`, each day's close as the stream publishes it (the items seen by that day).
        public var asOf: [[PredictionEvent]] = []
        /// The predictions the replay published, in order (what the live members would have published).
        public var predictions: [PredictionEvent] = []
        public var outcomes: [Outcome] = []
        public var industries: [ItemKey: String] = [:]
        /// The replayed profiles and daily sales per item (the naive baseline's input).
        public var records = ItemRecords()
        public var messages = 0
        public var deadLetters = 0
    }

    public var kafka: KafkaConfig
    public var topics = ServiceTopics()
    public var processor = ProcessorOptions()

    public init(kafka: KafkaConfig) { self.kafka = kafka }

    /// How far a replay has read: messages read of those to read (inputs from `from` and the whole outcome topic,
    /// as the partitions' high watermarks stood at the start), and the replay's clock (milliseconds since the epoch).
    public struct Progress: Sendable {
        public var read: Int
        public var total: Int
        public var clockMs: Int64
    }

    /// Inputs with timestamps in `from ... to` (milliseconds since the epoch). The processor's clock is the
    /// messages' own timestamps, so grace periods run as they did live; days still waiting at `to` are applied.
    /// A model with MARKETS.md's `competition` is replayed through an industry stage in the same process
    /// (`LocalCompetition`): each day closes as it would live, and the days still open at the end close then.
    /// `progress`, when given, is called after each poll's messages (it costs a watermark query per partition).
    public func run(model: DINOPModel, from: Int64, to: Int64, log: (String) -> Void,
                    progress: ((Progress) -> Void)? = nil) throws -> Result {
        var config = kafka
        config["group.id"] = "promo-backtest-\(UUID().uuidString)"
        config["enable.partition.eof"] = "true"
        config["isolation.level"] = "read_committed"
        let consumer = try KafkaConsumer(config)
        let admin = try KafkaAdmin(kafka)
        var times: [TopicPartition: Int64] = [:]
        for topic in topics.inputs + [topics.outcomes] {
            guard let count = try admin.partitionCount(topic) else { throw BacktestError("no topic \(topic)") }
            for p in 0..<Int32(count) { times[TopicPartition(topic, p)] = topic == topics.outcomes ? 0 : from }
        }
        // Partitions with nothing at or after `from` are done before they start.
        let starts = try consumer.offsets(forTimes: times).filter { $0.value != KafkaOffset.end }
        let processor = ShardedProcessor(model: model, options: processor)
        let competes = model.config.has(extension: ModelExtension.competition)
        let inputPartitions = Int32(clamping: try admin.partitionCount(topics.profiles) ?? 0)
        let local = competes ? LocalCompetition(processor: processor, inputPartitions: inputPartitions,
                                                graceMs: IndustryStageOptions().graceMs) : nil
        func process(_ inputs: [InputMessage], nowMs: Int64) -> [OutputRecord] {
            local?.process(inputs, nowMs: nowMs) ?? processor.process(inputs, nowMs: nowMs)
        }
        let decoder = EventDecoder(presaleDays: processor.options.presaleDays)
        var result = Result()
        var clock = from
        var read = Progress(read: 0, total: 0, clockMs: from)
        if progress != nil {
            for (tp, start) in starts { read.total += Int(max(try consumer.watermarks(tp).high - start, 0)) }
        }
        func collect(_ outputs: [OutputRecord]) {
            for o in outputs {
                switch o.kind {
                case .prediction:
                    if case .prediction(let p)? = try? decoder.decode(o.value) { result.predictions.append(p) }
                case .deadLetter: result.deadLetters += 1
                case .changelog, .rollup, .recommendation, .competitionVector, .competitionContext: break
                }
            }
        }
        try consumer.readToEnd(from: starts) { messages in
            var inputs: [InputMessage] = []
            for m in messages {
                if m.topic == topics.outcomes {
                    if case .outcome(let o)? = try? decoder.decode(m.value) { result.outcomes.append(o) }
                    continue
                }
                guard let time = m.timestamp, time <= to else { continue }
                clock = max(clock, time)
                if m.topic == topics.profiles || m.topic == topics.sales, let event = try? decoder.decode(m.value) {
                    if case .profile(let p) = event {
                        result.industries[ItemKey(promotionID: p.promotionID, itemID: p.itemID)] = p.ids["industry"] ?? ""
                    }
                    result.records.apply(event)
                }
                inputs.append(InputMessage(topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, value: m.value))
            }
            result.messages += inputs.count
            collect(process(inputs, nowMs: clock))
            if let progress {
                read.read += messages.count
                read.clockMs = clock
                progress(read)
            }
        }
        let end = max(clock, to) + processor.options.gracePeriodMs
        collect(process([], nowMs: end))
        try consumer.close()
        if let local {
            // The days still open close after the stage's grace period, as live.
            collect(process([], nowMs: end + local.stage.options.graceMs))
            var closes = [[ItemKey: PredictionEvent]](repeating: [:], count: processor.options.presaleDays + 1)
            for p in result.predictions {
                guard let day = p.asOfDay, closes.indices.contains(day) else { continue }
                closes[day][ItemKey(promotionID: p.promotionID, itemID: p.itemID)] = p
            }
            result.asOf = closes.map { $0.values.sorted { ($0.promotionID, $0.itemID) < ($1.promotionID, $1.itemID) } }
        } else {
            result.asOf = (0...processor.options.presaleDays).map { processor.predictions(asOfDay: $0) }
        }
        log("replayed \(result.messages) input messages (\(result.deadLetters) dead letters), \(result.outcomes.count) outcomes")
        return result
    }
}

public struct BacktestError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

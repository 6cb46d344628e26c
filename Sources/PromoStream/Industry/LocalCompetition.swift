import DINOP
import PromoFeatures

/// The item role and one industry stage in one process, the two internal topics as in-memory queues (MARKETS.md
/// `competition` without Kafka): what a backtest replays, and what tests wire. Every vector and watermark goes to
/// the one stage partition; each answer goes back to its item's partition at once, so a call returns the
/// predictions of every day its messages closed.
public final class LocalCompetition {
    public let processor: ShardedProcessor
    public let stage: IndustryStage
    private var vectorOffset: Int64 = 0, contextOffsets: [Int32: Int64] = [:]

    /// `inputPartitions`: how many partitions the input messages come from (the watermarks name them all).
    public init(processor: ShardedProcessor, inputPartitions: Int32, graceMs: Int64) {
        self.processor = processor
        let config = processor.model.config
        var options = IndustryStageOptions()
        options.width = config.competition.width
        options.cooperation = config.competition.cooperation
        options.graceMs = graceMs
        options.presaleDays = processor.options.presaleDays
        options.vectors = "local.competition-vectors"
        options.consumer = processor.options.consumer
        stage = IndustryStage(options: options)
        processor.setCompetitionPartitions(input: inputPartitions, stage: 1)
    }

    /// The processor's outputs for the messages and for every close they lead to, without the internal records.
    public func process(_ messages: [InputMessage], nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = []
        var pending = processor.process(messages, nowMs: nowMs)
        while true {
            out += pending.filter { $0.kind != .competitionVector }
            let vectors = pending.filter { $0.kind == .competitionVector }.map { record in
                defer { vectorOffset += 1 }
                return InputMessage(topic: stage.options.vectors, partition: 0, offset: vectorOffset, key: record.key, value: record.value)
            }
            let answers = stage.process(vectors, nowMs: nowMs)
            out += answers.filter { $0.kind == .deadLetter }
            let contexts = answers.filter { $0.kind == .competitionContext }.map { record in
                let p = record.partition ?? 0
                defer { contextOffsets[p, default: 0] += 1 }
                return InputMessage(topic: processor.options.competitionContexts, partition: p, offset: contextOffsets[p] ?? 0,
                                    key: record.key, value: record.value)
            }
            guard !contexts.isEmpty else { return out }
            pending = processor.process(contexts, nowMs: nowMs)
        }
    }
}

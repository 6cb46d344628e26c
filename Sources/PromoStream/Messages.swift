/// An input message as the processor sees it: where it came from (for dead letters and offsets) and its bytes.
/// The processor knows nothing of Kafka; the service turns consumed messages into these.
public struct InputMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
    }
}

/// What a record the processor emits is; the service maps each kind onto its topic.
public enum OutputKind: Sendable, Hashable, CaseIterable {
    /// `prediction/1`, keyed by item id.
    case prediction
    /// The item's binary state (`StateCodec`), keyed `<promotion_id>/<item_id>`, or a user's purchase history
    /// (`HistoryCodec`), keyed by user id, to the input's partition.
    case changelog
    /// `dead_letter/1`, keyed like the input it carries.
    case deadLetter
    /// `rollup/1`, keyed `<promotion_id>/<scope>/<id>/<partition>`.
    case rollup
    /// `recommendation/1`, keyed by user id (the recommendation role).
    case recommendation
    /// An item's `f` as of a day, or an input partition's day watermark, to the competition repartition topic
    /// (`CompetitionCodec`), keyed by industry; a watermark to an explicit partition.
    case competitionVector
    /// The industry stage's answer for an item at a day's close (`CompetitionCodec`), keyed by item id, to the
    /// item's input partition.
    case competitionContext
}

public struct OutputRecord: Sendable {
    public var kind: OutputKind
    /// An explicit partition (the changelog's), or nil for the producer's partitioner by key.
    public var partition: Int32?
    public var key: [UInt8]
    public var value: [UInt8]
    /// The state partition the record comes from (the input partition of its item or message): its transaction's
    /// commit link goes to this partition of the changelog (`CommitLink`).
    public var statePartition: Int32
    /// Why a dead letter is one (a bounded set, for metrics; the record's `reason` says it in full).
    public var deadLetterCause: DeadLetterCause? = nil
}

/// What kind of problem made an input a dead letter.
public enum DeadLetterCause: String, Sendable, CaseIterable {
    /// Not valid JSON, not a known schema, or a field's type or range (the reason names the field).
    case invalidEvent = "invalid_event"
    /// A valid event of a schema that is not an input (a prediction on an input topic, say).
    case notAnInput = "not_an_input"
    /// The message key is not the event's item id.
    case wrongKey = "wrong_key"
    /// It crashed the member twice (CrashGuard).
    case poisonPill = "poison_pill"
    /// The item's prediction is not finite with it.
    case notFinite = "not_finite"
}

/// Per partition, the next offset of the one input topic whose position a role's changelog records carry (the
/// purchases of the recommendation role, the repartition topic of the industry stage).
struct InputPositions {
    let topic: String
    private var next: [Int32: Int64] = [:]

    init(topic: String) { self.topic = topic }

    subscript(partition: Int32) -> Int64 {
        get { next[partition] ?? 0 }
        set { next[partition] = newValue }
    }

    /// The partition's position moves past the message (what the batch commits).
    mutating func advance(past message: InputMessage) {
        guard message.topic == topic else { return }
        next[message.partition] = max(next[message.partition] ?? 0, message.offset + 1)
    }

    mutating func forget(_ partition: Int32) { next[partition] = nil }
}

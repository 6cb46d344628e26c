import DINOP
import Dispatch
import PromoEvents

/// `StreamProcessor`s that share a member's partitions (partition p belongs to shard p mod `threads`) and process
/// a batch's messages in parallel, one thread per shard: partitions are independent, so a member uses as many
/// cores as it has shards. With one shard it is the plain processor.
///
/// Owned by one thread; each shard runs on one thread at a time (hence `@unchecked Sendable`).
public final class ShardedProcessor: @unchecked Sendable {
    public let shards: [StreamProcessor]

    /// `hotItems` and `recomputePerCall` are the member's: each shard gets its share.
    public init(model: DINOPModel, options: ProcessorOptions = ProcessorOptions()) {
        let count = max(options.threads, 1)
        var shardOptions = options
        shardOptions.hotItems = (options.hotItems + count - 1) / count
        shardOptions.recomputePerCall = (options.recomputePerCall + count - 1) / count
        shards = (0..<count).map { _ in StreamProcessor(model: model, options: shardOptions) }
        self.options = options
    }

    func shard(_ partition: Int32) -> StreamProcessor { shards[Int(partition) % shards.count] }

    public var model: DINOPModel { shards[0].model }
    public let options: ProcessorOptions
    public var itemCount: Int { shards.reduce(0) { $0 + $1.itemCount } }
    public var staleCount: Int { shards.reduce(0) { $0 + $1.staleCount } }
    public var stateSizes: StateSizes {
        shards.map(\.stateSizes).reduce(into: StateSizes()) {
            $0.hot += $1.hot
            $0.compact += $1.compact
            $0.compactBytes += $1.compactBytes
        }
    }
    public var withheldCount: Int { shards.reduce(0) { $0 + $1.withheldCount } }
    /// Items the last swap left as they were (`StreamProcessor.skippedRecomputes`).
    public var skippedRecomputes: Int { shards.reduce(0) { $0 + $1.skippedRecomputes } }

    /// `StreamProcessor.process` of each shard's messages, in parallel; the outputs shard by shard.
    public func process(_ messages: [InputMessage], nowMs: Int64) -> [OutputRecord] {
        guard shards.count > 1 else { return shards[0].process(messages, nowMs: nowMs) }
        var bins = [[InputMessage]](repeating: [], count: shards.count)
        for m in messages { bins[Int(m.partition) % shards.count].append(m) }
        let split = bins, results = Results(count: shards.count)
        DispatchQueue.concurrentPerform(iterations: shards.count) { i in
            results.set(i, shards[i].process(split[i], nowMs: nowMs))
        }
        return results.all.flatMap { $0 }
    }

    /// `StreamProcessor.setCompetitionPartitions` of every shard.
    public func setCompetitionPartitions(input: Int32, stage: Int32) {
        for shard in shards { shard.setCompetitionPartitions(input: input, stage: stage) }
    }
    public var staleContexts: Int { shards.reduce(0) { $0 + $1.staleContexts } }
    public var repeatedContexts: Int { shards.reduce(0) { $0 + $1.repeatedContexts } }

    public func skip(_ message: InputMessage, reason: String, nowMs: Int64) -> OutputRecord {
        shard(message.partition).skip(message, reason: reason, nowMs: nowMs)
    }

    /// Swaps every shard, or none: they all check the same thing, so the first refusal comes before any swap.
    public func swap(to model: DINOPModel) throws(ModelSwapError) {
        for shard in shards { try shard.swap(to: model) }
    }

    public func remove(partitions removed: some Sequence<Int32>) {
        for p in removed { shard(p).remove(partitions: [p]) }
    }

    public func startRestore(partition: Int32, committed: [Int64] = []) {
        shard(partition).startRestore(partition: partition, committed: committed)
    }
    public func restore(partition: Int32, value: [UInt8]) throws { try shard(partition).restore(partition: partition, value: value) }
    public func finishRestore(partition: Int32) { shard(partition).finishRestore(partition: partition) }

    public func predictions(asOfDay day: Int) -> [PredictionEvent] { shards.flatMap { $0.predictions(asOfDay: day) } }
}

/// One slot per shard, each written by its own thread (distinct memory, no shared array buffer to race on).
private final class Results: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<[OutputRecord]>
    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: [])
    }
    deinit {
        _ = slots.deinitialize()
        slots.deallocate()
    }
    func set(_ i: Int, _ value: [OutputRecord]) { slots[i] = value }
    var all: [[OutputRecord]] { Array(slots) }
}

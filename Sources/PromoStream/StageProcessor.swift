/// A stream role's processing as the Kafka-driven member sees it (`StreamService`): messages of owned partitions
/// in, records out, per-partition state restored from the changelog. The item role (`ShardedProcessor`) and the
/// recommendation role (`UserProcessor`) and the industry stage (`IndustryStage`) are each one.
public protocol StageProcessor: AnyObject {
    func process(_ messages: [InputMessage], nowMs: Int64) -> [OutputRecord]
    /// A message dead-lettered without being applied (a poison pill).
    func skip(_ message: InputMessage, reason: String, nowMs: Int64) -> OutputRecord
    /// Forgets partitions (revoked, or to be restored again after an aborted transaction).
    func forget(partitions: Set<Int32>)
    /// `committed`: the group's committed offsets of the role's input topics in this partition, in their order.
    func startRestore(partition: Int32, committed: [Int64])
    func restore(partition: Int32, value: [UInt8]) throws
    func finishRestore(partition: Int32)
    /// Work waiting without input (items of an older model, recommendations of a changed candidate set): the
    /// member then polls without waiting.
    var pendingCount: Int { get }
    /// The keys it holds state for (items, users).
    var stateCount: Int { get }
}

extension ShardedProcessor: StageProcessor {
    public func forget(partitions: Set<Int32>) { remove(partitions: partitions) }
    public var pendingCount: Int { staleCount }
    public var stateCount: Int { itemCount }
}

extension UserProcessor: StageProcessor {
    public func forget(partitions: Set<Int32>) { remove(partitions: partitions) }
    public var stateCount: Int { userCount }
}

extension IndustryStage: StageProcessor {
    public func forget(partitions: Set<Int32>) { remove(partitions: partitions) }
    public var pendingCount: Int { 0 }
    public var stateCount: Int { itemCount }
}

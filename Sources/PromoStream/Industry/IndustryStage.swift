import DINOP
import Foundation
import PromoEvents

public struct IndustryStageOptions: Sendable {
    /// Named in dead letters: `<group>/<member>`.
    public var consumer = "promo"
    /// The application whose changelog records a restore takes (others are refused).
    public var application = ""
    /// The repartition topic (items' `f` and the day watermarks): the one input whose position changelog records carry.
    public var vectors = "promo-stream.competition-vectors"
    /// MARKETS.md's `F` and cooperation, as the served model has them.
    public var width = 32
    public var cooperation = true
    /// How long after it first heard of a day the stage closes it without every input partition's watermark.
    public var graceMs: Int64 = 2 * 3_600_000
    /// The last pre-sale day: its close ends a promotion, whose items the stage then forgets.
    public var presaleDays = 20

    public init() {}
}

/// The industry stage's processing, free of Kafka (MARKETS.md `competition` in the stream): the repartition topic's
/// vectors and watermarks in; at each day's close every seen item's context out, to its own input partition.
/// Per stage partition an `IndustryDays`, kept durable by one changelog record per changed item and per changed
/// promotion. Owned by one thread.
public final class IndustryStage {
    public let options: IndustryStageOptions
    private var days: [Int32: IndustryDays] = [:]
    private var positions: InputPositions
    private var committed: [Int32: Int64] = [:]

    public init(options: IndustryStageOptions) {
        self.options = options
        positions = InputPositions(topic: options.vectors)
    }

    public var itemCount: Int { days.values.reduce(0) { $0 + $1.itemCount } }
    /// The days the last `process` call closed, with the items each answered.
    public private(set) var lastClosed: [(promotion: String, day: Int, items: Int)] = []
    /// Vectors of a day already closed (late days), since the partitions were taken over.
    public var lateVectors: Int { days.values.reduce(0) { $0 + $1.lateVectors } }
    public func closedDay(partition: Int32, promotion: String) -> Int { days[partition]?.closedDay(promotion) ?? 0 }

    /// Applies the messages, closes every day that is due and returns the contexts, the changelog records of what
    /// changed, and a dead letter per message that is not a valid record of the repartition topic.
    public func process(_ messages: [InputMessage], nowMs: Int64) -> [OutputRecord] {
        var out: [OutputRecord] = []
        lastClosed = []
        for message in messages {
            positions.advance(past: message)
            do {
                switch try CompetitionCodec.decodeStageInput(message.value) {
                case .vector(let vector):
                    guard inPlace(message.partition, { $0.apply(vector, nowMs: nowMs) }) else {
                        throw StateCodecError("f has \(vector.f.count) values; the served model's F is \(options.width)")
                    }
                case .watermark(let watermark): inPlace(message.partition) { $0.apply(watermark, nowMs: nowMs) }
                }
            } catch {
                out.append(OutputEncoder.deadLetter(message, reason: "\(error)", cause: .invalidEvent,
                                                    failedAt: UTCTimestamp.string(nowMs), consumer: options.consumer))
            }
        }
        for p in days.keys.sorted() {
            for closed in inPlace(p, { $0.closeDue(nowMs: nowMs) }) {
                lastClosed.append((closed.promotion, closed.day, closed.contexts.count))
                for context in closed.contexts {
                    out.append(OutputRecord(kind: .competitionContext, partition: context.itemPartition,
                                            key: Array(context.item.utf8), value: CompetitionCodec.encode(context),
                                            statePartition: p))
                }
            }
            let provenance = Provenance(application: options.application, positions: [positions[p]])
            for record in inPlace(p, { $0.takeChanges() }) {
                out.append(OutputRecord(kind: .changelog, partition: p, key: record.key,
                                        value: IndustryStateCodec.encode(record, provenance: provenance), statePartition: p))
            }
        }
        return out
    }

    /// A message dead-lettered without being applied (a poison pill); its partition's position moves past it.
    public func skip(_ message: InputMessage, reason: String, nowMs: Int64) -> OutputRecord {
        lastClosed = []
        positions.advance(past: message)
        return OutputEncoder.poisonPill(message, reason: reason, nowMs: nowMs, consumer: options.consumer)
    }


    /// Runs `body` on the partition's days where they are stored: a copy taken out of the dictionary would be
    /// copied whole on its first change, once per message.
    @discardableResult
    private func inPlace<R>(_ partition: Int32, _ body: (inout IndustryDays) throws -> R) rethrows -> R {
        try body(&days[partition, default: emptyDays()])
    }

    private func emptyDays() -> IndustryDays {
        IndustryDays(width: options.width, cooperation: options.cooperation, graceMs: options.graceMs, lastDay: options.presaleDays)
    }

    // MARK: Restoring

    public func remove(partitions removed: some Sequence<Int32>) {
        for p in removed {
            (days[p], committed[p]) = (nil, nil)
            positions.forget(p)
        }
    }

    /// `committed`: the group's committed offset of the repartition topic in this partition; a record carrying a
    /// position beyond it was written by a transaction that did not commit, and is refused.
    public func startRestore(partition: Int32, committed: [Int64] = []) {
        remove(partitions: [partition])
        days[partition] = emptyDays()
        self.committed[partition] = committed.first ?? 0
        positions[partition] = committed.first ?? 0
    }

    public func restore(partition: Int32, value: [UInt8]) throws {
        let (record, provenance) = try IndustryStateCodec.decode(value)
        try provenance.verify(application: options.application, committed: [committed[partition] ?? 0], topics: [options.vectors])
        try inPlace(partition) { try $0.restore(record) }
    }

    public func finishRestore(partition: Int32) {}
}

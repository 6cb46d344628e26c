import DINOP
import Foundation
import PromoEvents
import PromoFeatures

/// The records a processor publishes, encoded: predictions, changelog records (with their provenance), dead
/// letters, and the timestamps they carry. Rollup records are the `RollupTable`'s.
final class OutputEncoder {
    /// Named in dead letters: `<group>/<member>`.
    let consumer: String
    /// Named in changelog records.
    let application: String
    /// The model's config, for where an item's market id sits among its `sii` ids (the same for every version a
    /// processor may swap to: they read the same input features).
    let config: ModelConfig

    init(consumer: String, application: String, config: ModelConfig) {
        self.consumer = consumer
        self.application = application
        self.config = config
    }

    func timestamp(_ ms: Int64) -> String { UTCTimestamp.string(ms) }

    /// The item's prediction as of the days its model state covers, keyed by item id.
    func prediction(_ p: Prediction, of state: ItemState, version: Int, timestamp: String, partition: Int32) -> OutputRecord {
        let applied = (state.hot?.appliedDays ?? []).map { Int($0) }
        let event = PredictionEvent(p, key: state.key, modelVersion: version, activityID: state.activityID,
                                    producedAt: timestamp, asOfDay: applied.last, sequence: state.sequence,
                                    daysWithoutBuyers: applied.filter { !state.hasBuyers(day: $0) },
                                    market: config.marketID(state.sii))
        return OutputRecord(kind: .prediction, partition: nil, key: Array(state.key.itemID.utf8),
                            value: Event.prediction(event).encoded(), statePartition: partition)
    }

    /// The item's state to its partition of the changelog, with the positions of the inputs it reflects.
    func changelog(_ state: ItemState, partition: Int32, positions: [Int64]) -> OutputRecord {
        OutputRecord(kind: .changelog, partition: partition, key: Self.changelogKey(state.key),
                     value: StateCodec.encode(state, provenance: Provenance(application: application, positions: positions)),
                     statePartition: partition)
    }

    func deadLetter(_ message: InputMessage, reason: String, cause: DeadLetterCause, nowMs: Int64) -> OutputRecord {
        Self.deadLetter(message, reason: reason, cause: cause, failedAt: timestamp(nowMs), consumer: consumer)
    }

    /// A message dead-lettered without being applied: it crashed the member twice (`CrashGuard`).
    static func poisonPill(_ message: InputMessage, reason: String, nowMs: Int64, consumer: String) -> OutputRecord {
        deadLetter(message, reason: reason, cause: .poisonPill, failedAt: UTCTimestamp.string(nowMs), consumer: consumer)
    }

    static func deadLetter(_ message: InputMessage, reason: String, cause: DeadLetterCause, failedAt: String,
                           consumer: String) -> OutputRecord {
        let letter = DeadLetter.carrying(sourceTopic: message.topic, partition: Int(message.partition), offset: message.offset,
                                         key: message.key, value: message.value, reason: reason, failedAt: failedAt,
                                         consumer: consumer)
        return OutputRecord(kind: .deadLetter, partition: nil, key: letter.key ?? [], value: Event.deadLetter(letter).encoded(),
                            statePartition: message.partition, deadLetterCause: cause)
    }

    static func changelogKey(_ key: ItemKey) -> [UInt8] { Array("\(key.promotionID)/\(key.itemID)".utf8) }
}

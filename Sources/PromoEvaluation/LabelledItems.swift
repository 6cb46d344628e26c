import DINOP
import Foundation
import PromoEvents
import PromoFeatures

/// Items of one or more promotions with the labels their outcomes give.
public struct LabelledItems: Sendable {
    public var records: [ItemRecord]
    public var labels: [ItemLabels]

    public init(records: [ItemRecord]) {
        self.records = records
        labels = OutcomeLabels.labels(records)
    }

    init(records: [ItemRecord], labels: [ItemLabels]) {
        self.records = records
        self.labels = labels
    }

    /// Reads event files, or every `.jsonl` file of a folder. Rejected lines go to `rejected`.
    public static func load(_ paths: [String], decoder: EventDecoder,
                            rejected: (RejectedLine) -> Void) throws -> LabelledItems {
        LabelledItems(records: try ItemRecords.read(try EventFile.expand(paths), decoder: decoder, rejected: rejected).records)
    }

    public var count: Int { records.count }

    /// Only the items that have an outcome (the ones that can be trained on or scored).
    public var labelled: LabelledItems { subset(records.indices.filter { records[$0].outcome != nil }) }

    public func subset(_ indices: [Int]) -> LabelledItems {
        LabelledItems(records: indices.map { records[$0] }, labels: indices.map { labels[$0] })
    }

    /// A stable split by a hash of the salt and the item id: the same item always falls on the same side for the
    /// same salt, and different salts (a test split, then a validation split of the rest) split independently.
    /// Labels keep the values computed over the whole promotion.
    public func split(fraction: Double, salt: String) -> (rest: LabelledItems, held: LabelledItems) {
        let test = records.indices.filter {
            Double(fnv1a64("\(salt)/\(records[$0].key.itemID)") % 10_000) < fraction * 10_000
        }
        let testSet = Set(test)
        return (subset(records.indices.filter { !testSet.contains($0) }), subset(test))
    }

    public func examples(_ pipeline: FeaturePipeline) -> [TrainingExample] {
        zip(records, labels).map { TrainingExample(item: pipeline.raw($0), labels: $1, competition: $0.competitionKey) }
    }
}

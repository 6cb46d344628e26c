import ArgumentParser
import DINOP
import Foundation

/// One line of `promo predict`'s output.
public struct PredictionRecord: Codable, Sendable, Equatable {
    public var itemID: String
    public var modelVersion: Int
    public var daysSeen: Int
    public var gmv: Double?
    public var bsp: Double?
    public var slot: Int?
    public var slotProbabilities: [Double]?
    public var activityID: String?
    public var ja: Double?

    enum CodingKeys: String, CodingKey {
        case gmv, bsp, slot, ja
        case itemID = "item_id", modelVersion = "model_version", daysSeen = "days_seen"
        case slotProbabilities = "slot_probs", activityID = "activity_id"
    }
}

/// Scores every item of the event files with the model, in the order items first appear.
public func predictOffline(model: DINOPModel, eventFiles: [URL]) throws -> (records: [PredictionRecord], rejected: [RejectedEvent]) {
    var reader = OfflineEventReader(siiFields: model.config.siiFields)
    for file in eventFiles { try reader.read(file) }
    let mapper = FeatureMapper(config: model.config)
    let network = Network(model.parameters)
    let items = reader.order.map { reader.items[$0]! }
    var scorer = Scorer(network: network, capacity: 256)
    let predictions = scorer.predict(items.map { network.encode($0.raw(mapper)) })
    let records = zip(items, predictions).map { item, p in
        PredictionRecord(itemID: item.itemID, modelVersion: model.version, daysSeen: p.daysSeen, gmv: p.gmv, bsp: p.bsp,
                         slot: p.slot, slotProbabilities: p.slotProbabilities,
                         activityID: p.ja == nil ? nil : item.activityID, ja: p.ja)
    }
    return (records, reader.rejected)
}

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Score items offline from JSON-lines event files; one JSON prediction per item.")

    @Option(help: "A dinop/1 weight file.") var model: String
    @Argument(help: "JSON-lines event files (item_profile, daily_sales, daily_buyers, activity).") var events: [String]
    @Option(help: "Write predictions here instead of standard output.") var out: String?

    func run() throws {
        let model = try loadModel(model)
        let (records, rejected) = try predictOffline(model: model, eventFiles: events.map { URL(fileURLWithPath: $0) })
        for event in rejected { report("rejected \(event)") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let lines = try records.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        let text = lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
        if let out {
            try Data(text.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        report("\(records.count) items scored with model version \(model.version); \(rejected.count) events rejected")
    }
}

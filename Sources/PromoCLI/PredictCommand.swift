import ArgumentParser
import DINOP
import Foundation
import PromoEvents
import PromoFeatures

/// Scores every item of the event files with the model, in the order items first appear: one `prediction/1`
/// event per item, with the activity it was asked about when it has one. An item whose prediction is not finite
/// gets none; it is listed in `withheld` with why (as the stream dead-letters its events).
public func predictOffline(model: DINOPModel, eventFiles: [URL], decoder: EventDecoder = EventDecoder(),
                           producedAt: Date = Date(), asOfDay: Int? = nil)
    throws -> (predictions: [PredictionEvent], rejected: [RejectedLine], withheld: [String]) {
    var rejected: [RejectedLine] = []
    let items = try ItemRecords.read(eventFiles, decoder: decoder) { rejected.append($0) }
    let predictions = FeaturePipeline(config: model.config).predictions(model, for: items.records,
                                                                        representation: model.publishesRepresentation,
                                                                        asOfDay: asOfDay)
    let timestamp = ISO8601DateFormatter().string(from: producedAt)
    var events: [PredictionEvent] = [], withheld: [String] = []
    for (record, p) in zip(items.records, predictions) {
        if let reason = p.notFiniteReason {
            withheld.append("item \(quoted(record.key.itemID)) of promotion \(quoted(record.key.promotionID)): \(reason)")
            continue
        }
        events.append(PredictionEvent(p, key: record.key, modelVersion: model.version,
                                      activityID: record.activity?.activityID, producedAt: timestamp,
                                      asOfDay: asOfDay ?? record.days.last, market: record.profile?.ids["market"]))
    }
    return (events, rejected, withheld)
}

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Score items offline from JSON-lines event files or promotion folders; one prediction/1 event per item.")

    @Option(help: "A dinop/1 or dinop/2 weight file (a combined one's predictions carry each item's rep, as the stream's do).") var model: String
    @Argument(help: "JSON-lines event files (Topics/README.md), or promotion folders (their .jsonl files).") var events: [String]
    @Option(help: "Write predictions here instead of standard output.") var out: String?
    @Option(help: "Days of the pre-sale window; daily events outside it are rejected.") var presaleDays = 20
    @Option(help: "Predict as of this pre-sale day: every item from its days up to it (default: all its days). With MARKETS.md's competition, every item of a group as of the same day.")
    var asOfDay: Int?

    func validate() throws {
        try FlagCheck.inRange(presaleDays, FlagCheck.presaleDays, "--presale-days")
        if let asOfDay { try FlagCheck.inRange(asOfDay, 1...presaleDays, "--as-of-day") }
    }

    func run() throws {
        let model = try loadModel(model)
        let (predictions, rejected, withheld) = try predictOffline(model: model, eventFiles: try EventFile.expand(events),
                                                         decoder: EventDecoder(presaleDays: presaleDays), asOfDay: asOfDay)
        for line in rejected { report("rejected \(line)") }
        for item in withheld { report("no prediction for \(item)") }
        var bytes: [UInt8] = []
        for prediction in predictions {
            bytes += Event.prediction(prediction).encoded()
            bytes.append(UInt8(ascii: "\n"))
        }
        if let out {
            try Data(bytes).write(to: URL(fileURLWithPath: out), options: .atomic)
        } else {
            FileHandle.standardOutput.write(Data(bytes))
        }
        report("\(predictions.count) items scored with model version \(model.version); \(rejected.count) events rejected"
               + (withheld.isEmpty ? "" : "; \(withheld.count) items without a finite prediction"))
    }
}

import ArgumentParser
import DINOP
import Foundation

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Generate a small promotion, train a model on part of it, and predict the rest offline.")

    @Option(help: "Where to write the demo's files (default: a fresh temporary folder).") var dir: String?
    @Option(help: "Items in the generated promotion.") var items = 3000
    @Option(help: "Training epochs (at most; early stopping on the validation loss).") var epochs = 10
    @Option(help: "Items to print.") var show = 12
    @Option(help: "Seed of the promotion and the model.") var seed: UInt64 = 2026

    func run() throws {
        let folder = URL(fileURLWithPath: dir ?? NSTemporaryDirectory() + "promo-demo-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        BLAS.setThreads(1)

        let promotion = DemoPromotion(items: items, days: 10, seed: seed)
        let config = ModelConfig.default
        var model = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 4099), seed: seed)
        let examples = promotion.examples(FeatureMapper(config: config))
        let split = examples.count * 8 / 10
        report("demo: \(items) generated items, 10 pre-sale days; training on \(split), predicting \(examples.count - split)")

        var options = TrainingOptions()
        options.learningRate = 0.02
        options.batchSize = 64
        options.maxEpochs = epochs
        options.seed = seed
        model = Trainer.train(model, training: Array(examples[..<split]), validation: Array(examples[split...]),
                              options: options) { epoch in
            report(String(format: "epoch %d: train %.4f, validation %.4f (gmv %.3f bsp %.3f ss %.3f ja %.3f), %.1fs",
                          epoch.epoch, epoch.training.total, epoch.validation.total,
                          epoch.validation.perTask[.gmv] ?? .nan, epoch.validation.perTask[.bsp] ?? .nan,
                          epoch.validation.perTask[.ss] ?? .nan, epoch.validation.perTask[.ja] ?? .nan, epoch.seconds))
        }
        let modelFile = folder.appendingPathComponent("model.safetensors")
        try model.write(to: modelFile)
        let held = DemoPromotion.Slice(promotion, from: split)
        let eventsFile = folder.appendingPathComponent("events.jsonl")
        try (held.eventLines.joined(separator: "\n") + "\n").write(to: eventsFile, atomically: true, encoding: .utf8)

        let (records, _) = try predictOffline(model: model, eventFiles: [eventsFile])
        print("item        days  predicted GMV     actual GMV   P(best)  slot  P(join)")
        for (record, actual) in zip(records, held.outcomeGMV).prefix(show) {
            print(String(format: "%-10@ %5d %14.0f %14.0f %8.3f %5d  %@", record.itemID as NSString, record.daysSeen,
                         record.gmv ?? .nan, actual, record.bsp ?? .nan, record.slot ?? 0,
                         (record.ja.map { String(format: "%.3f", $0) } ?? "-") as NSString))
        }
        let errors = zip(records, held.outcomeGMV).map { abs(($0.gmv ?? 0) - $1) }
        print(String(format: "GMV mean absolute error over %d held-out items: %.0f", errors.count,
                     errors.reduce(0, +) / Double(max(errors.count, 1))))
        print("files: \(modelFile.path), \(eventsFile.path)")
        print("again: \(CommandLine.arguments[0]) predict --model \(modelFile.path) \(eventsFile.path)")
    }
}

extension DemoPromotion {
    /// The items from `from` on, with their outcomes.
    struct Slice {
        let eventLines: [String]
        let outcomeGMV: [Double]

        init(_ promotion: DemoPromotion, from: Int) {
            var tail = promotion
            tail.items = Array(promotion.items[from...])
            eventLines = tail.eventLines()
            outcomeGMV = Array(promotion.outcomeGMV[from...])
        }
    }
}

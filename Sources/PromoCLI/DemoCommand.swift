import ArgumentParser
import DINOP
import Foundation
import PromoEvaluation
import PromoEvents
import PromoFeatures
import PromoWorld

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Generate a small two-year promotion world, train on the first year, and predict the second offline.")

    @Option(help: "Where to write the demo's files (default: a fresh temporary folder).") var dir: String?
    @Option(help: "Items per promotion.") var items = 3000
    @Option(help: "Training epochs (at most; early stopping on the validation loss).") var epochs = 8
    @Option(help: "Items to print.") var show = 12
    @Option(help: "Seed of the world and the model.") var seed: UInt64 = 2026

    func validate() throws {
        try FlagCheck.inRange(items, 10...10_000_000, "--items")
        try FlagCheck.atLeast(epochs, 1, "--epochs")
        try FlagCheck.atLeast(show, 0, "--show")
    }

    func run() throws {
        let folder = URL(fileURLWithPath: dir ?? NSTemporaryDirectory() + "promo-demo-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        BLAS.setThreads(1)

        var options = PromotionWorld.Options()
        options.seed = seed
        options.itemsPerPromotion = items
        let generating = ProgressReporter(label: "demo: generate", total: items * options.promotions.count, unit: "item")
        let summaries = try PromotionWorld(options: options).write(to: folder) { done, _ in generating.update(done) }
        generating.finish(items * options.promotions.count)
        let (trainYear, testYear) = (options.promotions[0].id, options.promotions[1].id)
        report("demo: generated \(items) items in each of \(trainYear) and \(testYear) into \(folder.path)")
        for (id, s) in summaries.sorted(by: { $0.key < $1.key }) {
            report(String(format: "demo: %@: promotion day %.1f× a normal day, %.0f%% of units from buyers without a pre-sale trace",
                          id, s.promotionMultiple, 100 * s.untracedShare))
        }

        var flags = try TrainingFlags.parse(["--epochs", String(epochs), "--seed", String(seed)])
        flags.presaleDays = options.presaleDays
        let training = try flags.load([folder.appendingPathComponent(trainYear).path], label: trainYear).labelled
        let test = try flags.load([folder.appendingPathComponent(testYear).path], label: testYear).labelled
        let start = try ModelShapeOptions.parse(["--rows", "4099"]).randomModel(seed: seed)
        let pipeline = FeaturePipeline(config: start.config)
        let progress = flags.progress("demo")
        let model = try DINOPRun.train(start, training, pipeline: pipeline, options: flags.options, progress: progress.epoch)
        progress.finish()
        let modelFile = folder.appendingPathComponent("model.safetensors")
        try model.write(to: modelFile)

        var naive = NaiveBaseline()
        naive.fit(training)
        let rows = [EvaluationRow(name: "naive", scores: naive.scores(test), labels: test.labels, seconds: 0),
                    EvaluationRow(name: "DINOP", scores: DINOPRun.scores(model, test, pipeline: pipeline),
                                  labels: test.labels, seconds: 0)]
        print(EvaluationRow.table(rows, title: "\(testYear), trained on \(trainYear)"))
        print("")

        let testFolder = folder.appendingPathComponent(testYear)
        let files = PromotionWorld.files.filter { $0 != "outcomes" }.map { testFolder.appendingPathComponent("\($0).jsonl") }
        let (predictions, _, _) = try predictOffline(model: model, eventFiles: files)
        let actual = Dictionary(uniqueKeysWithValues: test.records.map { ($0.key.itemID, $0.outcome!.gmv) })
        print("item                days  predicted GMV     actual GMV   P(best)  slot  P(join)")
        for p in predictions.prefix(show) {
            let ja = p.ja.map { String(format: "%.3f", $0) } ?? "-"
            print(p.itemID.padding(toLength: 18, withPad: " ", startingAt: 0)
                  + String(format: " %5d %14.0f %14.0f %8.3f %5d  ", p.daysSeen, p.gmv, actual[p.itemID] ?? .nan, p.bsp, p.ss) + ja)
        }
        print("files: \(modelFile.path), \(testFolder.path)")
        print("again: promo predict --model \(modelFile.path) \(files.map(\.path).joined(separator: " "))")
    }
}

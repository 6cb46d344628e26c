import ArgumentParser
import DINOP
import Foundation
import PromoEvaluation
import PromoEvents
import PromoKafka
import PromoService

struct BacktestCommand: ParsableCommand {
    /// The replay's clock as a UTC day, e.g. 2026-10-21.
    static func day(_ ms: Int64) -> String {
        Date(timeIntervalSince1970: Double(ms) / 1000).formatted(.iso8601.year().month().day())
    }

    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Replay the input topics between two times through the processor and report accuracy per pre-sale day.",
        discussion: """
            Outside any live group: nothing is committed and nothing is produced. Joins the outcome topic and \
            writes DIR/backtest.txt (the table) and DIR/backtest.html (the table and SVG charts, self-contained).
            """)

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "A dinop/1 weight file.") var model: String
    @Option(help: "Replay inputs from this time (RFC 3339, e.g. 2026-10-20T00:00:00Z; default: the beginning).")
    var from: String?
    @Option(help: "Replay inputs up to this time (RFC 3339; default: now).") var to: String?
    @Option(help: "Folder for the report.") var out = "backtest"
    @Option(help: "Seconds the latest day waits for its buyer profile (as live).") var graceSeconds = 7200.0
    @Option(help: "Days of the pre-sale window.") var presaleDays = 20
    @Option(parsing: .upToNextOption, help: "Fit the naive baseline's multiple on these events (files or folders of an earlier promotion); without it, the multiple is fitted in hindsight on the replayed promotion's own outcomes (a baseline that knows more than it could have).")
    var naiveTrain: [String] = []

    func validate() throws {
        try FlagCheck.seconds(graceSeconds, "--grace-seconds")
        try FlagCheck.inRange(presaleDays, FlagCheck.presaleDays, "--presale-days")
    }

    func run() throws { try kafka.namingBrokers(replay) }

    private func replay() throws {
        func time(_ text: String?, _ fallback: Date) throws -> Int64 {
            guard let text else { return Int64(fallback.timeIntervalSince1970 * 1000) }
            guard let date = ISO8601DateFormatter().date(from: text) else {
                throw ValidationError("\(text): expected an RFC 3339 time such as 2026-10-20T00:00:00Z")
            }
            return Int64(date.timeIntervalSince1970 * 1000)
        }
        let model = try loadModel(model)
        BLAS.setThreads(1)
        var replay = BacktestReplay(kafka: try kafka.readingConfig())
        replay.processor.gracePeriodMs = Int64(graceSeconds * 1000)
        replay.processor.presaleDays = presaleDays
        let progress = ProgressReporter(label: "promo backtest", total: 0, unit: "message")
        var lastRead = 0
        let result = try replay.run(model: model, from: try time(from, Date(timeIntervalSince1970: 0)),
                                    to: try time(to, Date()), log: { progress.note("promo backtest: \($0)") }) { read in
            lastRead = read.read
            // More may arrive while it replays: the total grows with it.
            progress.update(read.read, total: max(read.total, read.read), detail: "replayed up to \(Self.day(read.clockMs))")
        }
        progress.finish(lastRead)
        var backtest = BacktestReport(asOf: result.asOf, outcomes: result.outcomes, industries: result.industries,
                                      replayed: result.messages)
        var naive = NaiveBaseline()
        var records = result.records
        for outcome in result.outcomes { records.apply(.outcome(outcome)) }
        if naiveTrain.isEmpty {
            naive.fit(LabelledItems(records: records.records).labelled)
            backtest.addNaive(naive, records: records, note: String(format: "multiple %.2f fitted in hindsight on these outcomes", naive.multiple))
        } else {
            let training = try LabelledItems.load(naiveTrain, decoder: EventDecoder(presaleDays: presaleDays)) { _ in }
            naive.fit(training.labelled)
            backtest.addNaive(naive, records: records, note: String(format: "multiple %.2f fitted on %d items of --naive-train", naive.multiple, training.labelled.count))
        }
        let folder = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data((backtest.text + "\n").utf8).write(to: folder.appendingPathComponent("backtest.txt"))
        try Data(backtest.html(title: "promo-stream backtest, model version \(model.version)").utf8)
            .write(to: folder.appendingPathComponent("backtest.html"))
        print(backtest.text)
        report("promo backtest: wrote \(folder.path)/backtest.txt and backtest.html")
    }
}

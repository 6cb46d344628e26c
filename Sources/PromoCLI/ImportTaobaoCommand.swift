import ArgumentParser
import Foundation
import PromoEvents
import PromoWorld

struct ImportTaobaoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-taobao",
        abstract: "Turn the Taobao 11.11 (2016) cosmetics scrape into events (profiles, pre-sale days, outcomes).",
        discussion: "The CSV is read from --csv, else $\(TaobaoImport.environmentVariable), else \(TaobaoImport.defaultPath). "
            + "It has no buyer profiles and no 90-day history: those inputs are missing, not zero. Pre-sale days: \(TaobaoImport.presaleDays).")

    @Option(help: "The GBK-encoded CSV.") var csv: String?
    @Option(help: "Output file of JSON-lines events.") var out: String

    func run() throws {
        let path = TaobaoImport.resolvedPath(csv)
        let data = try TaobaoImport.load(path: path)
        let s = data.summary
        for rejection in s.rejections { report("rejected \(path):\(rejection)") }
        let writer = try EventFileWriter(URL(fileURLWithPath: out))
        for event in data.events() { try writer.write(event) }
        try writer.close()
        print("\(s.items) items from \(s.rows) rows (\(s.rejectedRows) rejected, \(s.duplicateRows) exact repeats); "
              + "\(s.itemsWithOutcome) with a promotion-day outcome; \(s.negativeDifferences) negative daily differences "
              + "left missing; median units: \(s.medianPresaleDailyUnits ?? .nan) a pre-sale day, "
              + "\(s.medianPromotionDayUnits ?? .nan) on the promotion day; \(writer.count) events written to \(out)")
    }
}

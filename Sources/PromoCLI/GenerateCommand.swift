import ArgumentParser
import Foundation
import PromoWorld

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a seeded promotion world (a training and a test year) as JSON-lines event files.",
        discussion: "Writes DIR/<promotion id>/{item-profiles,daily-sales,daily-buyers,activities,outcomes}.jsonl.")

    @Option(help: "Output folder.") var out: String
    @Option(help: "Items per promotion.") var items = 100_000
    @Option(help: "Pre-sale days.") var days = 20
    @Option(help: "Seed; the same seed gives the same bytes.") var seed: UInt64 = 1
    @Option(help: "Worker threads (the output does not depend on them).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "The four-market world (cn rich, latam poor; each market's promotion day answers to something else: Topics/README.md).")
    var markets = false
    @Flag(help: "The competition world on the four markets (implies --markets): an industry's promotion-day buyers in a market shared among its items by strength, a discount climate per group, a few items in two markets (Topics/README.md).")
    var competition = false

    func validate() throws {
        try FlagCheck.inRange(items, 1...100_000_000, "--items")
        try FlagCheck.inRange(days, FlagCheck.presaleDays, "--days")
        try FlagCheck.inRange(threads, 1...256, "--threads")
    }

    func run() throws {
        var options = PromotionWorld.Options()
        options.seed = seed
        options.itemsPerPromotion = items
        options.presaleDays = days
        if markets || competition { options.markets = PromotionWorld.fourMarkets }
        options.competition = competition
        let world = PromotionWorld(options: options)
        let start = ContinuousClock.now
        let total = items * options.promotions.count
        let progress = ProgressReporter(label: "generate", total: total, unit: "item")
        let summaries = try world.write(to: URL(fileURLWithPath: out), threads: threads) { done, _ in progress.update(done) }
        progress.finish(total)
        for promotion in options.promotions {
            guard let s = summaries[promotion.id] else { continue }
            print(String(format: "%@: %d items, %d events; promotion day = %.1f× a normal day's GMV, %.0f%% of its units from buyers with no pre-sale trace; %d activities, %.0f%% joined",
                         promotion.id, s.items, s.events, s.promotionMultiple, 100 * s.untracedShare, s.activities,
                         100 * Double(s.joined) / Double(max(s.activities, 1))))
        }
        print(String(format: "generated in %.1f s into %@", (ContinuousClock.now - start).seconds, out))
    }
}

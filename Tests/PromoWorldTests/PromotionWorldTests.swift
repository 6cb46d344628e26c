import Foundation
import PromoEvents
@testable import PromoWorld
import Testing

@Suite("The promotion-world generator")
struct PromotionWorldTests {
    func generate(items: Int, threads: Int, seed: UInt64 = 5) throws -> (URL, [String: PromotionWorld.Summary]) {
        var options = PromotionWorld.Options()
        options.seed = seed
        options.itemsPerPromotion = items
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("world-\(UUID().uuidString)")
        return (folder, try PromotionWorld(options: options).write(to: folder, threads: threads))
    }

    @Test("the same seed gives the same bytes whatever the thread count; another seed does not")
    func deterministic() throws {
        let (a, _) = try generate(items: 2_500, threads: 1)
        let (b, _) = try generate(items: 2_500, threads: 3)
        let (c, _) = try generate(items: 2_500, threads: 2, seed: 6)
        defer { for f in [a, b, c] { try? FileManager.default.removeItem(at: f) } }
        for promotion in ["double11-2025", "double11-2026"] {
            for file in PromotionWorld.files {
                let path = "\(promotion)/\(file).jsonl"
                let bytes = try Data(contentsOf: a.appendingPathComponent(path))
                #expect(!bytes.isEmpty)
                #expect(bytes == (try Data(contentsOf: b.appendingPathComponent(path))), "\(path)")
                if file != "activities" {
                    #expect(bytes != (try Data(contentsOf: c.appendingPathComponent(path))), "\(path)")
                }
            }
        }
    }

    @Test("every event decodes strictly, and the world has the shape the issue asks for")
    func shape() throws {
        let (folder, summaries) = try generate(items: 3_000, threads: 2)
        defer { try? FileManager.default.removeItem(at: folder) }
        let decoder = EventDecoder(presaleDays: 20)
        var outcomes: [String: [(gmv: Double, presale: Double, youngShare: Double)]] = [:]
        for promotion in ["double11-2025", "double11-2026"] {
            let summary = try #require(summaries[promotion])
            #expect(summary.items == 3_000)
            // A promotion day sells many times a normal day, more than half of it to buyers with no pre-sale trace.
            #expect(summary.promotionMultiple > 10 && summary.promotionMultiple < 40)
            #expect(summary.untracedShare > 0.5)
            var events = 0, rejected: [RejectedLine] = []
            var presale: [String: Double] = [:], young: [String: (Double, Double)] = [:], gmv: [String: Double] = [:]
            for file in PromotionWorld.files {
                try EventFile.read(folder.appendingPathComponent("\(promotion)/\(file).jsonl"), decoder: decoder,
                                   rejected: { rejected.append($0) }) { event in
                    events += 1
                    switch event {
                    case .sales(let e): presale[e.itemID, default: 0] += e.sales["gmv"] ?? 0
                    case .buyers(let e):
                        let weight = Double(e.buyerCount ?? 0)
                        let share = (e.buyers["age_18_24"] ?? 0) + (e.buyers["power_low"] ?? 0)
                        young[e.itemID, default: (0, 0)].0 += weight * share
                        young[e.itemID, default: (0, 0)].1 += weight
                    case .outcome(let e): gmv[e.itemID] = e.gmv
                    default: break
                    }
                }
            }
            #expect(rejected.isEmpty, "\(rejected.prefix(3))")
            #expect(events == summary.events)
            outcomes[promotion] = gmv.compactMap { id, g in
                guard let p = presale[id], p > 0, let y = young[id], y.1 > 0 else { return nil }
                return (g, p, y.0 / y.1)
            }
        }
        // The buyer mix carries signal the sales do not: among items, the promotion-day multiple of pre-sale GMV
        // rises with the share of young and low-power (converting) buyers.
        let items = try #require(outcomes["double11-2025"])
        let ratio = items.map { log($0.gmv + 1) - log($0.presale + 1) }, share = items.map(\.youngShare)
        #expect(correlation(ratio, share) > 0.1)
    }

    @Test("the four-market world: shares as documented, brands shared across markets, each market answering to its own driver")
    func fourMarkets() throws {
        var options = PromotionWorld.Options()
        options.seed = 5
        options.itemsPerPromotion = 6_000
        options.markets = PromotionWorld.fourMarkets
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("markets-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try PromotionWorld(options: options).write(to: folder, threads: 2)
        struct Item { var market = "", brand = "", price = 0.0, presale = 0.0, gmv = 0.0 }
        var items: [String: Item] = [:]
        for file in ["item-profiles", "daily-sales", "outcomes"] {
            try EventFile.read(folder.appendingPathComponent("double11-2025/\(file).jsonl"), decoder: EventDecoder(),
                               rejected: { Issue.record("rejected \($0)") }) { event in
                switch event {
                case .profile(let e):
                    items[e.itemID, default: Item()].market = e.ids["market"] ?? ""
                    items[e.itemID, default: Item()].brand = e.ids["brand"] ?? ""
                    items[e.itemID, default: Item()].price = e.sis["price"] ?? 0
                case .sales(let e): items[e.itemID, default: Item()].presale += e.sales["gmv"] ?? 0
                case .outcome(let e): items[e.itemID, default: Item()].gmv = e.gmv
                default: break
                }
            }
        }
        let byMarket = Dictionary(grouping: items.values, by: \.market)
        #expect(Set(byMarket.keys) == ["cn", "sea", "eu", "latam"])
        let share = byMarket.mapValues { Double($0.count) / Double(items.count) }
        #expect(abs((share["cn"] ?? 0) - 0.78) < 0.03 && (share["latam"] ?? 1) <= 0.05 && (share["latam"] ?? 0) > 0.02)
        // Brands are not tied to a market: most brands of the poor market also sell in the rich one.
        let cnBrands = Set(byMarket["cn", default: []].map(\.brand)), latamBrands = Set(byMarket["latam", default: []].map(\.brand))
        #expect(Double(latamBrands.intersection(cnBrands).count) > 0.8 * Double(latamBrands.count))
        // Price: in sea the promotion day's multiple of the pre-sale falls with the price far more than in cn.
        func priceSlope(_ market: String) -> Double {
            let sold = byMarket[market, default: []].filter { $0.presale > 0 && $0.gmv > 0 && $0.price > 0 }
            return correlation(sold.map { log($0.price) }, sold.map { log($0.gmv) - log($0.presale) })
        }
        #expect(priceSlope("sea") < priceSlope("cn") - 0.1, "sea \(priceSlope("sea")), cn \(priceSlope("cn"))")
    }

    @Test("the competition world: the same bytes whatever the threads, a few items in two markets, and an item's promotion day rising with its own discount and falling with its competitors'")
    func competitionWorld() throws {
        func generate(threads: Int) throws -> URL {
            var options = PromotionWorld.Options()
            options.seed = 5
            options.itemsPerPromotion = 4_000
            options.markets = PromotionWorld.fourMarkets
            options.competition = true
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("competition-\(UUID().uuidString)")
            _ = try PromotionWorld(options: options).write(to: folder, threads: threads)
            return folder
        }
        let folder = try generate(threads: 2), other = try generate(threads: 3)
        defer { for f in [folder, other] { try? FileManager.default.removeItem(at: f) } }
        for file in PromotionWorld.files {
            let path = "double11-2026/\(file).jsonl"
            #expect(try Data(contentsOf: folder.appendingPathComponent(path)) == Data(contentsOf: other.appendingPathComponent(path)),
                    "\(path)")
        }
        struct Item { var id = "", market = "", industry = "", brand = "", seller = "", price = 0.0, discount = 0.0,
                      presale = 0.0, gmv = 0.0 }
        var items: [String: Item] = [:], order: [String] = []
        for file in ["item-profiles", "daily-sales", "outcomes"] {
            try EventFile.read(folder.appendingPathComponent("double11-2025/\(file).jsonl"), decoder: EventDecoder(),
                               rejected: { Issue.record("rejected \($0)") }) { event in
                switch event {
                case .profile(let e):
                    order.append(e.itemID)
                    items[e.itemID] = Item(id: e.itemID, market: e.ids["market"] ?? "", industry: e.ids["industry"] ?? "",
                                           brand: e.ids["brand"] ?? "", seller: e.ids["seller"] ?? "", price: e.sis["price"] ?? 0)
                case .sales(let e):
                    items[e.itemID]?.discount = e.sales["discount"] ?? 0
                    items[e.itemID]?.presale += e.sales["gmv"] ?? 0
                case .outcome(let e): items[e.itemID]?.gmv = e.gmv
                default: break
                }
            }
        }
        // Twins: the next item is the same product (brand, seller, list price) in another market, for about 5%.
        let listed = order.compactMap { items[$0] }
        let twins = zip(listed, listed.dropFirst()).filter { a, b in
            a.brand == b.brand && a.seller == b.seller && a.price == b.price && a.market != b.market
        }.count
        #expect(twins > 130 && twins < 280, "\(twins) twins of 4,000")
        // Shared buyers: against its pre-sale, an item's promotion day rises with its own discount and falls with the
        // mean discount of its group (a least-squares fit of log(GMV / pre-sale GMV) on both).
        let groups = Dictionary(grouping: listed) { "\($0.market)/\($0.industry)" }
        let groupDiscount = groups.mapValues { g in g.reduce(0) { $0 + $1.discount } / Double(g.count) }
        let sold = listed.filter { $0.presale > 0 && $0.gmv > 0 }
        let fit = leastSquares(sold.map { [1, $0.discount, groupDiscount["\($0.market)/\($0.industry)"] ?? 0] },
                               sold.map { log($0.gmv / $0.presale) })
        #expect(fit[1] > 1.5 && fit[2] < -0.7, "own discount \(fit[1]), the group's \(fit[2])")
    }

    /// Ordinary least squares through the normal equations (three unknowns: Gaussian elimination).
    func leastSquares(_ rows: [[Double]], _ y: [Double]) -> [Double] {
        let n = rows.first?.count ?? 0
        var a = (0..<n).map { i in (0..<n).map { j in zip(rows, y).reduce(0) { $0 + $1.0[i] * $1.0[j] } }
            + [zip(rows, y).reduce(0) { $0 + $1.0[i] * $1.1 }] }
        for k in 0..<n {
            for i in (k + 1)..<n {
                let factor = a[i][k] / a[k][k]
                for j in k...n { a[i][j] -= factor * a[k][j] }
            }
        }
        var x = Array(repeating: 0.0, count: n)
        for i in stride(from: n - 1, through: 0, by: -1) {
            x[i] = (a[i][n] - ((i + 1)..<n).reduce(0) { $0 + a[i][$1] * x[$1] }) / a[i][i]
        }
        return x
    }

    func correlation(_ x: [Double], _ y: [Double]) -> Double {
        let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
        let cov = zip(x, y).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }
        let vx = x.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }, vy = y.reduce(0) { $0 + ($1 - my) * ($1 - my) }
        return cov / (vx * vy).squareRoot()
    }
}

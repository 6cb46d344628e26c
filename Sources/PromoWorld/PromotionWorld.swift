import Foundation
import PromoEvents

/// A generated promotion world (Topics/README.md, "Generated promotion worlds"): seeded, items in industries and
/// markets with sellers and brands, latent popularity with a long tail, and buyer segments whose share among an
/// item's pre-sale buyers sets its promotion-day conversion. Two promotions, a training and a test year, whose
/// buyer mix shifts. Everything follows from the seed; the output does not depend on the number of threads.
public struct PromotionWorld: Sendable {
    public struct Options: Sendable {
        public var seed: UInt64 = 1
        public var itemsPerPromotion = 100_000
        public var presaleDays = 20
        public var promotions = [
            Promotion(id: "double11-2025", date: "2025-11-11", segmentShare: [0.15, 0.20, 0.25, 0.15, 0.15, 0.10]),
            Promotion(id: "double11-2026", date: "2026-11-11", segmentShare: [0.22, 0.22, 0.20, 0.10, 0.18, 0.08]),
        ]
        /// Markets that respond differently on the promotion day (Topics/README.md, "The four-market world");
        /// nil: the single-market world, whose markets are names only.
        public var markets: [Market]? = nil
        /// The competition world on top of the four-market world (Topics/README.md, "The competition world"): a
        /// group's promotion-day buyers shared by strength, a discount climate per group, a few items in two markets.
        /// Ignored without `markets`.
        public var competition = false
        public init() {}
    }

    /// A market of the four-market world: its share of the items and how its promotion day responds.
    public struct Market: Sendable {
        public var id: String
        public var share: Double
        /// Multiplier of the untraced units, per promotion (training year, test year).
        public var level: [Double]
        /// Untraced units × (promotion price / the industry's typical price)^−priceElasticity.
        public var priceElasticity = 0.0
        /// Untraced units × exp(brandWeight × the brand's effect).
        public var brandWeight = 0.0
        /// Untraced units × conversion^mixExponent (the single-market world's 1.5).
        public var mixExponent = 1.5
    }

    /// The four-market world of Topics/README.md: fixed before any ablation ran on it.
    public static let fourMarkets = [
        Market(id: "cn", share: 0.78, level: [1.0, 1.0]),
        Market(id: "sea", share: 0.12, level: [0.8, 0.8], priceElasticity: 1.5),
        Market(id: "eu", share: 0.06, level: [0.7, 0.7], brandWeight: 1.5),
        Market(id: "latam", share: 0.04, level: [1.2, 1.5], mixExponent: 3),
    ]

    /// One promotion day and the prevalence of each buyer segment among shoppers that year.
    public struct Promotion: Sendable {
        public var id: String
        /// The promotion day, YYYY-MM-DD; the pre-sale window is the days just before it.
        public var date: String
        public var segmentShare: [Double]

        public init(id: String, date: String, segmentShare: [Double]) {
            self.id = id
            self.date = date
            self.segmentShare = segmentShare
        }
    }

    /// A kind of buyer: a demographic profile (shares per bucket within each dimension) and how much more than
    /// average they buy on the promotion day. Students and bargain hunters convert; seniors and the affluent don't.
    struct Segment {
        var name: String
        var profile: [[Double]]  // per dimension of Vocabulary.buyerDimensions
        var conversion: Double
    }

    static let segments: [Segment] = [
        Segment(name: "students", profile: [[0.70, 0.25, 0.04, 0.01], [0.6, 0.4], [0.70, 0.25, 0.05], [0.2, 0.4, 0.4]], conversion: 3.0),
        Segment(name: "young professionals", profile: [[0.15, 0.70, 0.13, 0.02], [0.5, 0.5], [0.1, 0.5, 0.4], [0.6, 0.3, 0.1]], conversion: 1.8),
        Segment(name: "families", profile: [[0.02, 0.30, 0.60, 0.08], [0.65, 0.35], [0.2, 0.6, 0.2], [0.3, 0.4, 0.3]], conversion: 1.0),
        Segment(name: "seniors", profile: [[0.00, 0.05, 0.25, 0.70], [0.55, 0.45], [0.3, 0.5, 0.2], [0.3, 0.35, 0.35]], conversion: 0.35),
        Segment(name: "bargain hunters", profile: [[0.20, 0.35, 0.30, 0.15], [0.6, 0.4], [0.85, 0.13, 0.02], [0.05, 0.25, 0.7]], conversion: 2.6),
        Segment(name: "affluent", profile: [[0.02, 0.25, 0.50, 0.23], [0.45, 0.55], [0.02, 0.18, 0.8], [0.8, 0.15, 0.05]], conversion: 0.6),
    ]

    public static let industries = ["beauty", "electronics", "apparel", "food", "home", "baby", "sports", "books"]
    static let markets = [("cn", 0.7), ("sg", 0.1), ("my", 0.1), ("th", 0.1)]

    public let options: Options
    // Traits shared by both years: an item's brand and seller carry over.
    let industryLogPrice: [Double]
    let industryPopularity: [Double]
    let industryMargin: [Double]
    let industryAffinity: [[Double]]
    let brandEffect: [Double]
    let brandIndustry: [Int]
    let sellerEffect: [Double]
    /// The competition world's discount climate δ per promotion, market and industry (empty without it).
    let discountClimate: [[[Double]]]

    public init(options: Options) {
        precondition(options.promotions.allSatisfy { $0.segmentShare.count == Self.segments.count })
        self.options = options
        var rng = WorldRandom(seed: options.seed, stream: 0xA11)
        let n = Self.industries.count
        industryLogPrice = (0..<n).map { _ in 3.2 + 0.8 * rng.normal() }
        industryPopularity = (0..<n).map { _ in 0.3 + 0.4 * rng.normal() }
        industryMargin = (0..<n).map { _ in rng.uniform(0.15, 0.45) }
        industryAffinity = (0..<n).map { _ in Self.segments.map { _ in exp(0.6 * rng.normal()) } }
        let brands = max(options.itemsPerPromotion / 50, 20), sellers = max(options.itemsPerPromotion / 20, 50)
        brandEffect = (0..<brands).map { _ in 0.5 * rng.normal() }
        brandIndustry = (0..<brands).map { _ in Int(rng.next() % UInt64(n)) }
        sellerEffect = (0..<sellers).map { _ in 0.3 * rng.normal() }
        // A stream of its own, so that the other worlds draw exactly what they drew before.
        var climate = WorldRandom(seed: options.seed, stream: 0xC11)
        discountClimate = options.promotions.map { _ in
            (options.competition ? options.markets ?? [] : []).map { _ in (0..<n).map { _ in climate.uniform(0, 0.2) } }
        }
    }

    /// Figures of a generated promotion, from what the generator drew (not re-read from the files).
    public struct Summary: Sendable {
        public var items = 0
        public var events = 0
        public var normalDayGMV = 0.0
        public var promotionGMV = 0.0
        public var promotionUnits = 0.0
        public var untracedUnits = 0.0
        public var activities = 0
        public var joined = 0

        mutating func add(_ other: Summary) {
            items += other.items
            events += other.events
            normalDayGMV += other.normalDayGMV
            promotionGMV += other.promotionGMV
            promotionUnits += other.promotionUnits
            untracedUnits += other.untracedUnits
            activities += other.activities
            joined += other.joined
        }

        /// Promotion-day GMV over the GMV of a normal day (at list price, before pre-sale).
        public var promotionMultiple: Double { promotionGMV / max(normalDayGMV, 1e-9) }
        /// Share of promotion-day units bought by buyers who left no pre-sale trace.
        public var untracedShare: Double { untracedUnits / max(promotionUnits, 1e-9) }
    }

    /// The files of one promotion, one per topic.
    public static let files = ["item-profiles", "daily-sales", "daily-buyers", "activities", "outcomes"]

    /// Writes each promotion's events to `folder/<promotion id>/<topic>.jsonl`; `progress` gets (items done, total).
    public func write(to folder: URL, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                      progress: (Int, Int) -> Void = { _, _ in }) throws -> [String: Summary] {
        var summaries: [String: Summary] = [:]
        let chunk = 2_000
        let total = options.itemsPerPromotion * options.promotions.count
        var done = 0
        for (year, promotion) in options.promotions.enumerated() {
            let directory = folder.appendingPathComponent(promotion.id)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let writers = try Self.files.map { try EventFileWriter(directory.appendingPathComponent("\($0).jsonl")) }
            var summary = Summary()
            var pending: [PendingOutcome] = []
            let chunks = (options.itemsPerPromotion + chunk - 1) / chunk
            // Generate `threads` chunks at a time in parallel, then write them in order.
            for wave in stride(from: 0, to: chunks, by: max(threads, 1)) {
                let count = min(max(threads, 1), chunks - wave)
                let results = ChunkResults(count: count)
                DispatchQueue.concurrentPerform(iterations: count) { k in
                    let index = wave + k
                    let range = index * chunk..<min((index + 1) * chunk, options.itemsPerPromotion)
                    results.store(k, generate(year: year, promotion: promotion, items: range))
                }
                for k in 0..<count {
                    let result = results.take(k)
                    for (writer, lines) in zip(writers, result.lines) { try writer.write(lines: lines.bytes, count: lines.count) }
                    summary.add(result.summary)
                    pending += result.pending
                    done += result.summary.items
                }
                progress(done, total)
            }
            if !pending.isEmpty {
                let outcomes = shareGroupBuyers(pending, year: year, promotion: promotion, summary: &summary)
                try writers[4].write(lines: outcomes.bytes, count: outcomes.count)
            }
            try writers.forEach { try $0.close() }
            summaries[promotion.id] = summary
        }
        return summaries
    }

    struct Lines {
        var bytes: [UInt8] = []
        var count = 0

        mutating func append(_ event: Event) {
            bytes.append(contentsOf: event.encoded())
            bytes.append(UInt8(ascii: "\n"))
            count += 1
        }
    }

    struct ChunkResult {
        var lines: [Lines]
        var summary: Summary
        /// The competition world's items whose promotion day waits for their whole group.
        var pending: [PendingOutcome]
    }

    final class ChunkResults: @unchecked Sendable {
        // Each slot is written by exactly one concurrentPerform iteration and read after all have finished.
        private var slots: [ChunkResult?]
        init(count: Int) { slots = Array(repeating: nil, count: count) }
        func store(_ k: Int, _ result: ChunkResult) { slots[k] = result }
        func take(_ k: Int) -> ChunkResult { slots[k]! }
    }

    /// The pre-sale dates, oldest first.
    func presaleDates(_ promotion: Promotion) -> [String] {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        let day = formatter.date(from: promotion.date)!
        return (1...options.presaleDays).map {
            formatter.string(from: day.addingTimeInterval(Double($0 - options.presaleDays - 1) * 86_400))
        }
    }

    func generate(year: Int, promotion: Promotion, items: Range<Int>) -> ChunkResult {
        var rng = WorldRandom(seed: options.seed, stream: UInt64(year + 1) << 40 | UInt64(items.lowerBound))
        var lines = Array(repeating: Lines(), count: Self.files.count)
        var summary = Summary()
        let dates = presaleDates(promotion)
        let days = options.presaleDays
        let segments = Self.segments
        // Conversion is relative to the first promotion's average buyer, so a year with more converting buyers sells more.
        let meanConversion = zip(options.promotions[0].segmentShare, segments).reduce(0) { $0 + $1.0 * $1.1.conversion }
        let yearTag = promotion.date.prefix(4)
        let competing = options.competition && options.markets != nil
        // The competition world's own draws, on a stream of their own (the other worlds draw as before).
        var twinRNG = WorldRandom(seed: options.seed, stream: UInt64(year + 1) << 40 | UInt64(items.lowerBound) | 1 << 63)
        var previous: Product?
        var pending: [PendingOutcome] = []
        for i in items {
            let number = String(i)
            let itemID = "item-\(yearTag)-" + String(repeating: "0", count: max(0, 7 - number.count)) + number
            var brand = Int(rng.next() % UInt64(brandEffect.count))
            var industry = rng.unit() < 0.9 ? brandIndustry[brand] : Int(rng.next() % UInt64(Self.industries.count))
            var seller = Int(rng.next() % UInt64(sellerEffect.count))
            let marketShares = options.markets.map { $0.map { ($0.id, $0.share) } } ?? Self.markets
            var market = marketShares[0].0, marketIndex = 0
            var u = rng.unit()
            for (k, (name, weight)) in marketShares.enumerated() {
                (market, marketIndex) = (name, k)
                if u < weight { break }
                u -= weight
            }
            // Popularity: units on a normal day, log-normal with a long tail.
            var logRate = industryPopularity[industry] + brandEffect[brand] + sellerEffect[seller] + 1.1 * rng.normal()
            var listPrice = (exp(industryLogPrice[industry] + 0.6 * rng.normal()) * 100).rounded() / 100 + 0.01
            var dayNoise: Double?
            if competing, let first = previous, let markets = options.markets, twinRNG.unit() < 0.05 {
                // The product of the item before, listed in another market (Topics/README.md).
                (brand, industry, seller, listPrice, dayNoise) = (first.brand, first.industry, first.seller, first.listPrice,
                                                                   first.dayNoise)
                logRate = first.logRate + 0.3 * twinRNG.normal()
                let others = markets.indices.filter { $0 != first.market }
                var u = twinRNG.unit() * others.reduce(0) { $0 + markets[$1].share }
                marketIndex = others.first { u -= markets[$0].share; return u < 0 } ?? others.last ?? first.market
                market = markets[marketIndex].id
            }
            let rate = exp(logRate)
            // The item's usual buyer mix, and the mix its pre-sale draws this year (which the promotion day follows).
            let alpha = zip(promotion.segmentShare, industryAffinity[industry]).map { 4 * $0 * $1 }
            let usual = rng.dirichlet(alpha)
            var presaleMix = usual.map { $0 * exp(0.9 * rng.normal()) }
            let mixTotal = presaleMix.reduce(0, +)
            presaleMix = presaleMix.map { $0 / mixTotal }
            let conversion = zip(presaleMix, segments).reduce(0) { $0 + $1.0 * $1.1.conversion } / meanConversion

            var ids = ["market": market, "industry": Self.industries[industry], "seller": "seller-\(seller)",
                       "brand": "brand-\(brand)"]
            if rng.unit() < 0.02 { ids["seller"] = nil }
            var sis: [String: Double] = ["price": listPrice]
            if rng.unit() < 0.9 {  // one item in ten is new: no 90-day history
                let units = Double(rng.poisson(90 * rate * exp(0.2 * rng.normal())))
                sis["units_90d"] = units
                sis["gmv_90d"] = (units * listPrice * 100).rounded() / 100
                sis["orders_90d"] = (units / 1.1).rounded()
                sis["favourites_90d"] = Double(rng.poisson(45 * rate))
            }
            let su = rng.unit() < 0.92 ? Self.shares(mixing: usual, noise: 0.02, rng: &rng) : nil
            lines[0].append(.profile(ItemProfile(itemID: itemID, promotionID: promotion.id, ids: ids, sis: sis, su: su)))

            // Pre-sale days: sales ramp towards the promotion; deposits are pre-orders that mostly convert.
            var discount = (rng.uniform(0, 0.3) * 100).rounded() / 100
            if competing { discount = ((discount + discountClimate[year][marketIndex][industry]) * 100).rounded() / 100 }
            var deposits = 0, tracedIntent = 0.0
            for day in 1...days {
                let ramp = 1 + 0.5 * pow(Double(day) / Double(days), 2)
                let noise = exp(0.25 * rng.normal())
                let units = rng.poisson(rate * ramp * noise)
                let orders = units <= 1 ? units : max(1, Int((Double(units) / (1 + 0.15 * rng.unit())).rounded()))
                let dayDeposits = rng.poisson(0.2 * rate * ramp * conversion.squareRoot())
                deposits += dayDeposits
                let price = (listPrice * (1 - discount) * 100).rounded() / 100
                let sales: [String: Double] = [
                    "gmv": (Double(units) * price * 100).rounded() / 100, "units": Double(units), "orders": Double(orders),
                    "deposits": Double(dayDeposits), "cart_adds": Double(rng.poisson(3 * rate * ramp * noise)),
                    "favourites": Double(rng.poisson(1.5 * rate * ramp)), "views": Double(rng.poisson(40 * rate * ramp * noise)),
                    "price": price, "discount": discount,
                ]
                lines[1].append(.sales(DailySales(itemID: itemID, promotionID: promotion.id, day: day, date: dates[day - 1],
                                                  sales: sales)))
                // The day's buyers: segment counts, then each dimension's bucket counts from those segments.
                guard orders > 0 else { continue }
                var counts = presaleMix.map { Double(rng.poisson(Double(orders) * $0)) }
                if counts.allSatisfy({ $0 == 0 }) { counts = presaleMix }
                tracedIntent += zip(counts, segments).reduce(0) { $0 + $1.0 * $1.1.conversion }
                if rng.unit() < 0.03 { continue }  // the profile feed drops a few days
                let total = counts.reduce(0, +)
                let buyers = Self.shares(mixing: counts.map { $0 / total }, sample: orders, rng: &rng)
                lines[2].append(.buyers(DailyBuyers(itemID: itemID, promotionID: promotion.id, day: day, buyers: buyers,
                                                    buyerCount: orders)))
            }

            // An activity offer; joining depends on the item's margin, popularity, brand and the offer's terms.
            var joined: Bool?
            var activityBoost = 1.0
            if rng.unit() < 0.6 {
                let depth = (rng.uniform(0.05, 0.5) * 100).rounded() / 100
                let fee = (rng.uniform(0, 50) * 100).rounded() / 100
                let duration = [1.0, 3, 7][Int(rng.next() % 3)]
                let margin = industryMargin[industry] + 0.1 * rng.normal()
                // Sellers whose buyers answer discounts (a converting mix) join more.
                let logit = 1.0 + 8 * (margin - depth) + 0.4 * logRate - 0.04 * fee + brandEffect[brand] + 2 * Foundation.log(conversion)
                joined = rng.sigmoid(logit)
                if joined! { activityBoost = 1 + depth }
                lines[3].append(.activity(ActivityOffer(
                    itemID: itemID, promotionID: promotion.id, activityID: "act-\(promotion.id)-\(i)",
                    features: ["discount_depth": depth, "min_price": (listPrice * (1 - depth) * 100).rounded() / 100,
                               "duration_days": duration, "fee": fee])))
                summary.activities += 1
                if joined! { summary.joined += 1 }
            }

            // The promotion day: most pre-orders convert, traced buyers return by their segments' conversion, and
            // more than half the units come from buyers with no pre-sale trace, at the rate their segment mix sets.
            let traced = rng.poisson(0.9 * Double(deposits) + 0.1 * tracedIntent)
            summary.items += 1
            summary.normalDayGMV += rate * listPrice
            let untraced: Int, promoPrice: Double
            if let markets = options.markets {
                // The four-market world: the item's market decides what its promotion day answers to.
                let m = markets[marketIndex]
                promoPrice = listPrice * (1 - min(discount + rng.uniform(0.05, 0.25), 0.7))
                let typicalPrice = exp(industryLogPrice[industry])
                let response = m.level[min(year, m.level.count - 1)] * pow(promoPrice / typicalPrice, -m.priceElasticity)
                    * exp(m.brandWeight * brandEffect[brand]) * pow(conversion, m.mixExponent)
                let noise = dayNoise ?? rng.normal()
                let expected = 17 * rate * response * activityBoost * exp(0.35 * noise - 0.06)
                if competing {
                    // The group's buyers are shared once every item of the promotion is drawn (`shareGroupBuyers`).
                    previous = Product(brand: brand, industry: industry, seller: seller, listPrice: listPrice,
                                       logRate: logRate, market: marketIndex, dayNoise: noise)
                    pending.append(PendingOutcome(item: i, itemID: itemID, group: marketIndex * Self.industries.count + industry,
                                                  traced: traced, expected: expected, strength: exp(4 * discount),
                                                  promoPrice: promoPrice, joined: joined))
                    continue
                }
                untraced = rng.poisson(expected)
            } else {
                untraced = rng.poisson(17 * rate * pow(conversion, 1.5) * activityBoost * exp(0.35 * rng.normal() - 0.06))
                promoPrice = listPrice * (1 - min(discount + rng.uniform(0.05, 0.25), 0.7))
            }
            let units = Double(traced + untraced)
            let gmv = (units * promoPrice * 100).rounded() / 100
            lines[4].append(.outcome(Outcome(itemID: itemID, promotionID: promotion.id, gmv: gmv, units: units,
                                             joinedActivity: joined)))
            summary.promotionGMV += gmv
            summary.promotionUnits += units
            summary.untracedUnits += Double(untraced)
        }
        summary.events = lines.reduce(0) { $0 + $1.count }
        return ChunkResult(lines: lines, summary: summary, pending: pending)
    }

    /// What the competition world keeps of an item until its group's buyers are shared.
    struct Product {
        var brand, industry, seller: Int
        var listPrice, logRate: Double
        var market: Int
        var dayNoise: Double
    }

    struct PendingOutcome {
        var item: Int
        var itemID: String
        /// Market index × industries + industry: one promotion's group.
        var group: Int
        var traced: Int
        /// The untraced units the item would expect alone, and its strength exp(4 · discount).
        var expected, strength: Double
        var promoPrice: Double
        var joined: Bool?
    }

    /// The competition world's promotion days (Topics/README.md): each group's untraced buyers, the sum of what its
    /// items would draw alone, shared by expected units × strength. Outcome events in item order.
    func shareGroupBuyers(_ pending: [PendingOutcome], year: Int, promotion: Promotion, summary: inout Summary) -> Lines {
        var totals: [Int: (demand: Double, weighted: Double)] = [:]
        for p in pending {
            totals[p.group, default: (0, 0)].demand += p.expected
            totals[p.group, default: (0, 0)].weighted += p.expected * p.strength
        }
        var lines = Lines()
        for p in pending {
            var rng = WorldRandom(seed: options.seed, stream: UInt64(year + 1) << 40 | UInt64(p.item) | 1 << 62)
            let total = totals[p.group] ?? (0, 0)
            let untraced = total.weighted > 0 ? rng.poisson(total.demand * p.expected * p.strength / total.weighted) : 0
            let units = Double(p.traced + untraced)
            let gmv = (units * p.promoPrice * 100).rounded() / 100
            lines.append(.outcome(Outcome(itemID: p.itemID, promotionID: promotion.id, gmv: gmv, units: units,
                                          joinedActivity: p.joined)))
            summary.promotionGMV += gmv
            summary.promotionUnits += units
            summary.untracedUnits += Double(untraced)
        }
        summary.events += lines.count
        return lines
    }

    /// Bucket shares of a buyer group with the given segment mix: exact (plus Dirichlet-like noise) when
    /// `sample` is nil, else the shares of `sample` buyers drawn from it.
    static func shares(mixing mix: [Double], noise: Double = 0, sample: Int? = nil,
                       rng: inout WorldRandom) -> [String: Double] {
        var out: [String: Double] = [:]
        for (d, dimension) in Vocabulary.buyerDimensions.enumerated() {
            var p = dimension.buckets.indices.map { b in zip(mix, segments).reduce(0) { $0 + $1.0 * $1.1.profile[d][b] } }
            if noise > 0 { p = p.map { max($0 * exp(noise * rng.normal()), 0) } }
            if let sample {
                let counts = p.map { Double(rng.poisson(Double(sample) * $0)) }
                if counts.reduce(0, +) > 0 { p = counts }
            }
            // Rounded to 4 places, with the rounding put on the largest bucket so the dimension sums to 1.
            let total = p.reduce(0, +)
            var rounded = p.map { ($0 / total * 10_000).rounded() / 10_000 }
            let largest = rounded.indices.max { rounded[$0] < rounded[$1] }!
            rounded[largest] = ((1 - (rounded.reduce(0, +) - rounded[largest])) * 10_000).rounded() / 10_000
            for (bucket, share) in zip(dimension.buckets, rounded) { out[bucket] = max(share, 0) }
        }
        return out
    }
}

extension PromotionWorld {
    /// The input files of a promotion's folder, in the order `inputEvents` reads them.
    public static let inputFiles = ["item-profiles", "activities", "daily-sales", "daily-buyers"]

    /// A promotion folder's input events in the order a live stream brings them: item profiles and activities
    /// first, then day by day each day's sales and buyer profiles (outcomes are left out).
    public static func inputEvents(promotionFolder: URL, decoder: EventDecoder = EventDecoder()) throws -> [Event] {
        var byDay: [[Event]] = [[]]
        for name in inputFiles {
            try EventFile.read(promotionFolder.appendingPathComponent("\(name).jsonl"), decoder: decoder,
                               rejected: { _ in }) { event in
                var day = 0
                if case .sales(let e) = event { day = e.day }
                if case .buyers(let e) = event { day = e.day }
                while byDay.count <= day { byDay.append([]) }
                byDay[day].append(event)
            }
        }
        return byDay.flatMap { $0 }
    }
}

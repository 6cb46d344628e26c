import BOP
import DINOP
import Foundation
import PromoEvents
import PromoKafka
import PromoTesting
import Testing

/// The recommendation role's inputs: a combined item + BOP model with `bop.rep.weight`, predictions of two promotions
/// (the candidates, each with a `rep`), users' purchases.
struct RecommendationWorld {
    let folder: URL
    let model: URL
    /// The item model's `rep` width, which `bop.rep.weight` takes.
    let repWidth: Int
    var predictions: [PredictionEvent] = []
    var purchases: [Purchase] = []

    static func make(users: Int = 40) throws -> RecommendationWorld {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let model = folder.appendingPathComponent("combined.safetensors")
        try combined(version: 1, bopSeed: 5).write(to: model)
        var world = RecommendationWorld(folder: folder, model: model, repWidth: try itemModel(version: 1).layout.representationWidth)
        var rng = SystemRandomNumberGenerator()
        // 60 items in de and 30 in jp for each of two promotions; GMVs that change the top 20 of de later.
        for promotion in ["p1", "p2"] {
            for i in 0..<90 {
                world.predictions.append(PredictionEvent(
                    itemID: "item-\(i)", promotionID: promotion, modelVersion: 1, daysSeen: 1, gmv: Double((i * 37) % 90) * 100,
                    bsp: 0.5, ss: 1, ssProbabilities: Array(repeating: 0.1, count: 10), producedAt: "2026-10-21T00:00:00.000Z", asOfDay: 1, sequence: 1,
                    market: i < 60 ? "de" : "jp", rep: world.rep(item: i, day: 1)))
            }
        }
        for u in 0..<users {
            for k in 0..<Int.random(in: 2...9, using: &rng) {
                let market = u % 5 == 4 && k > 0 ? "jp" : "de"
                let item = market == "de" ? Int.random(in: 0..<60, using: &rng) : Int.random(in: 60..<90, using: &rng)
                world.purchases.append(Purchase(userID: "user-\(u)", itemID: "item-\(item)", market: market,
                                                purchasedAt: String(format: "2026-10-%02dT%02d:00:00.000Z", 1 + k, u % 24)))
            }
        }
        world.purchases.shuffle(using: &rng)
        return world
    }

    /// The item model (MODEL.md's, small sizes): the same weights at every version.
    static func itemModel(version: Int) throws -> DINOPModel {
        var config = ModelConfig.default
        (config.hidden, config.attention) = (6, 4)
        var item = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 13, width: 3, encoderWidth: 5, headHidden: 4),
                                         seed: 2)
        item.version = version
        return item
    }

    /// A combined file: the item model at `version` and a BOP model drawn from `bopSeed`, with `bop.rep.weight`.
    static func combined(version: Int, bopSeed: UInt64) throws -> DINOPModel {
        let item = try itemModel(version: version)
        let bop = try BOPModel.random(config: BOPConfig(width: 8, layers: 2, heads: 2, ffn: 16, maxHistory: 6, itemRows: 1009),
                                      markets: ["de", "jp"], repWidth: item.layout.representationWidth, seed: bopSeed)
        return try bop.combined(with: item)
    }

    /// The second day's predictions of p1 in de: new items at the top, so its candidate set changes.
    var laterPredictions: [PredictionEvent] {
        (0..<10).map { i in
            PredictionEvent(itemID: "item-\(i)", promotionID: "p1", modelVersion: 1, daysSeen: 2, gmv: 1e6 + Double(i),
                            bsp: 0.5, ss: 1, ssProbabilities: Array(repeating: 0.1, count: 10), producedAt: "2026-10-22T00:00:00.000Z", asOfDay: 2, sequence: 2,
                            market: "de", rep: rep(item: i, day: 2))
        }
    }

    /// `promo bop predict` over the world's events with `model` (top 5 of 20 candidates), by "user/promotion".
    func offline(model: URL) throws -> [String: Recommendation] {
        let purchasesFile = folder.appendingPathComponent("purchases.jsonl")
        let predictionsFile = folder.appendingPathComponent("predictions.jsonl")
        try Data(purchases.map { String(decoding: Event.purchase($0).encoded(), as: UTF8.self) + "\n" }.joined().utf8).write(to: purchasesFile)
        try Data(predictions.map { String(decoding: Event.prediction($0).encoded(), as: UTF8.self) + "\n" }.joined().utf8).write(to: predictionsFile)
        let predict = try ChildProcess(builtProduct("promo"), [
            "bop", "predict", "--model", model.path, "--purchases", purchasesFile.path, "--predictions", predictionsFile.path,
            "--top-k", "5", "--candidates", "20",
        ], name: "predict", outputOnly: true)
        #expect(predict.wait(timeout: 120) == 0)
        var offline: [String: Recommendation] = [:]
        for line in predict.output {
            if case .recommendation(let r)? = try? EventDecoder().decode(Array(line.utf8)) { offline["\(r.userID)/\(r.promotionID)"] = r }
        }
        // Every user has purchases in de or jp, and each market has candidates in both promotions.
        #expect(offline.count == 2 * Set(purchases.map(\.userID)).count, "\(predict.output.prefix(3))")
        return offline
    }

    /// An item's `rep` on a day: float32 values, another on each day.
    func rep(item: Int, day: Int) -> [Double] {
        (0..<repWidth).map { Double(Float(sin(Double(item * repWidth + $0) + 0.5 * Double(day)))) }
    }
}

func events(_ predictions: [PredictionEvent]) -> [(topic: String, key: String, value: [UInt8])] {
    predictions.map { ("promo.predictions", $0.itemID, Event.prediction($0).encoded()) }
}

func events(_ purchases: some Sequence<Purchase>) -> [(topic: String, key: String, value: [UInt8])] {
    purchases.map { ("promo.purchases", $0.userID, Event.purchase($0).encoded()) }
}

/// The latest recommendation per (user, promotion) among committed records, in partition order.
func latestRecommendations(_ messages: [KafkaMessage]) -> [String: Recommendation] {
    var latest: [String: Recommendation] = [:]
    for m in messages where m.topic == "promo.recommendations" {
        if case .recommendation(let r)? = try? EventDecoder().decode(m.value) { latest["\(r.userID)/\(r.promotionID)"] = r }
    }
    return latest
}

/// Keys whose streamed recommendation differs from the offline one (items, probabilities, market, history length).
func recommendationMismatches(_ streamed: [String: Recommendation], _ offline: [String: Recommendation]) -> [String] {
    offline.keys.filter { key in
        guard let s = streamed[key], let o = offline[key] else { return true }
        return s.market != o.market || s.historyLength != o.historyLength || s.items.map(\.itemID) != o.items.map(\.itemID)
            || zip(s.items, o.items).contains { abs($0.probability - $1.probability) > 1e-12 }
    }.sorted()
}

extension BrokerTests {
    @Test("recommendation role on a combined file (candidates carry their rep): two members, one killed with SIGKILL mid-stream; the survivor's latest recommendations equal promo bop predict's")
    func recommendationsSurviveAKill() throws {
        var world = try RecommendationWorld.make()
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        try produce(broker, events(world.predictions))
        func start(_ name: String) throws -> ChildProcess {
            try ChildProcess(builtProduct("promo"), [
                "run", "--role", "recommendations", "--bootstrap", broker.bootstrap, "--model", world.model.path,
                "--group", "rec-e2e", "--member", name, "--max-batch", "20", "--top-k", "5", "--candidates", "20",
                "--candidate-refresh-seconds", "0.2", "--candidate-settle-seconds", "1", "--recompute-per-batch", "10",
                "--state-dir", world.folder.appendingPathComponent("state").path,
                "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500", "-X", "transaction.timeout.ms=10000",
                "-X", "fetch.wait.max.ms=10", "--http-port", "0", "--log-format", "json",
            ], name: name)
        }
        let r1 = try start("r1"), r2 = try start("r2")
        for m in [r1, r2] { #expect(m.awaitEvent("assigned") != nil, "\(m.name) got no partitions") }

        let half = world.purchases.count / 2
        let malformed: [(topic: String, key: String, value: [UInt8])] = [
            ("promo.purchases", "someone-else", Event.purchase(world.purchases[0]).encoded()),
            ("promo.purchases", "user-1", Array(#"{"schema":"purchase/1","user_id":"user-1"}"#.utf8)),
        ]
        try produce(broker, events(world.purchases[..<half]) + malformed)
        var reader = try TopicReader(broker, topics: ["promo.recommendations", "promo.dead-letter"])
        #expect(try reader.read(timeout: 60) { latestRecommendations($0).count >= 20 }, "r1: \(r1.output.suffix(8))")

        r1.signal(SIGKILL)
        r1.wait()
        #expect(r1.killed(by: SIGKILL))
        try produce(broker, events(world.purchases[half...]) + events(world.laterPredictions))
        world.predictions += world.laterPredictions

        let offline = try world.offline(model: world.model)

        let converged = try reader.read(timeout: 120) { recommendationMismatches(latestRecommendations($0), offline).isEmpty }
        #expect(converged, "differing from offline: \(recommendationMismatches(latestRecommendations(reader.messages), offline).prefix(5))")
        #expect(r2.events("assigned").contains { $0["partitions"] == (0..<12).map(String.init).joined(separator: ",") },
                "the survivor took every partition")
        // The candidate change reached users who bought nothing after it.
        #expect(latestRecommendations(reader.messages).values.contains { $0.trigger == .candidates && $0.promotionID == "p1" && $0.market == "de" })
        let letters = deadLetters(reader.messages)
        #expect(Set(letters.map(\.value)) == Set(malformed.map(\.value)))
        #expect(letters.contains { $0.reason.contains("key") })
        r2.signal(SIGTERM)
        #expect(r2.wait() == 0, "SIGTERM ends a member cleanly")
    }

    @Test("recommendation role follows the model topic: passes over an item-only version, switches to a combined one and recomputes every user; a member started later serves it at once")
    func recommendationsFollowTheModelTopic() throws {
        let world = try RecommendationWorld.make(users: 16)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        let kafka = ["--bootstrap", broker.bootstrap, "-X", "fetch.wait.max.ms=10"]
        try produce(broker, events(world.predictions) + events(world.purchases))
        func start(_ name: String) throws -> ChildProcess {
            try ChildProcess(builtProduct("promo"), [
                "run", "--role", "recommendations", "--model", world.model.path, "--group", "rec-models", "--member", name,
                "--top-k", "5", "--candidates", "20", "--candidate-refresh-seconds", "0.2", "--candidate-settle-seconds", "0",
                "--recompute-per-batch", "50", "--http-port", "0", "--log-format", "json",
            ] + kafka, name: name)
        }
        let member = try start("r1")
        #expect(member.awaitEvent("assigned") != nil, "no partitions")
        var reader = try TopicReader(broker, topics: ["promo.recommendations"])
        let v1 = try world.offline(model: world.model)
        #expect(try reader.read(timeout: 60) { recommendationMismatches(latestRecommendations($0), v1).isEmpty }, "version 1")

        // Version 2: the item model alone. Version 3: combined, with other BOP weights.
        let itemOnly = world.folder.appendingPathComponent("v2.safetensors"), v3File = world.folder.appendingPathComponent("v3.safetensors")
        try RecommendationWorld.itemModel(version: 2).write(to: itemOnly)
        try RecommendationWorld.combined(version: 3, bopSeed: 6).write(to: v3File)
        for file in [itemOnly, v3File] { #expect(try promo(["model", "publish", file.path] + kafka).status == 0) }
        let v3 = try world.offline(model: v3File)
        #expect(recommendationMismatches(v3, v1).count > v1.count / 2, "version 3 recommends otherwise")
        let switched = member.awaitEvent("switched_model", timeout: 60)
        #expect(switched?["to"] == "3" && switched?["from"] == "1", "\(String(describing: switched))")
        #expect(try reader.read(timeout: 60) { messages in
            let latest = latestRecommendations(messages)
            return recommendationMismatches(latest, v3).isEmpty && latest.values.allSatisfy { $0.modelVersion == 3 }
        }, "every user recomputed under version 3: \(recommendationMismatches(latestRecommendations(reader.messages), v3).prefix(5))")
        #expect(member.events("switched_model").count == 1, "version 2 passed over")

        let late = try start("r2")
        #expect(late.awaitEvent("serving_model")?["version"] == "3", "the latest version with a BOP part, from the start")
        for m in [member, late] {
            m.signal(SIGTERM)
            #expect(m.wait() == 0)
        }
    }
}

import DINOP
import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoModels
import PromoService
import PromoTesting
import PromoWorld
import Testing

/// `promo …` to completion; its exit status and output lines.
func promo(_ arguments: [String], timeout: TimeInterval = 300) throws -> (status: Int32, output: [String]) {
    let child = try ChildProcess(builtProduct("promo"), arguments, name: "promo \(arguments.first ?? "")")
    let status = child.wait(timeout: timeout)
    return (status, child.output)
}

/// Each item's latest prediction (highest sequence) among the messages.
func latestPredictions(_ messages: [KafkaMessage]) -> [ItemKey: PredictionEvent] {
    var latest: [ItemKey: PredictionEvent] = [:]
    for p in predictions(messages) {
        let key = ItemKey(promotionID: p.promotionID, itemID: p.itemID)
        if (latest[key]?.sequence ?? 0) < (p.sequence ?? 0) { latest[key] = p }
    }
    return latest
}

/// Items whose latest prediction is not `version`'s, or differs from `expected`.
func stale(_ messages: [KafkaMessage], _ expected: [ItemKey: PredictionEvent], version: Int) -> [ItemKey] {
    let latest = latestPredictions(messages)
    return mismatches(messages, expected) + expected.keys.filter { latest[$0]?.modelVersion != version }
}

extension BrokerTests {
    /// MARKETS.md end to end: a model with market-embedding and domain-attention serves the stream as any other;
    /// a fine-tune of scope market on sea, published on the model topic, makes the member recompute sea's items only.
    @Test("an extended model serves the stream; a market-scoped version from the model topic recomputes that market's items only")
    func marketScopedVersion() throws {
        let world = try World.make(items: 300, markets: true)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        let kafka = ["--bootstrap", broker.bootstrap, "-X", "fetch.wait.max.ms=10"]
        #expect(try promo(["model", "publish", world.model.path, "--trained-on", "four markets (e2e)"] + kafka).status == 0)
        let member = try startMember(broker, world, name: "m1")
        #expect(member.awaitEvent("assigned") != nil, "no partitions")
        try produce(broker, world.events + world.outcomes)
        var reader = try TopicReader(broker, topics: ["promo.predictions"])
        #expect(try reader.read(timeout: 120) { stale($0, world.offline, version: 1).isEmpty }, "version 1 serves the stream")
        let markets = Set(latestPredictions(reader.messages).values.compactMap(\.market))
        #expect(markets == ["cn", "sea", "eu", "latam"], "predictions carry the item's market: \(markets)")

        let tuned = try promo(["finetune", "--publish", "--market", "sea", "--scope", "market", "--tune-epochs", "2",
                               "--margin", "100"] + kafka)
        #expect(tuned.status == 0, "\(tuned.output.suffix(8))")
        let recomputed = member.awaitEvent("recomputed", timeout: 60, where: { $0["version"] == "2" })
        let file2 = world.folder.appendingPathComponent("v2.safetensors")
        #expect(try promo(["model", "pull", "--version", "2", "--out", file2.path] + kafka).status == 0)
        let offline2 = try offlinePredictions(world, model: file2)
        let sea = Set(world.offline.filter { $0.value.market == "sea" }.keys)
        // Sea's items as version 2 predicts them; every other item's latest prediction still version 1's, and
        // version 2 predicts it the same (bit for bit: the same JSON numbers).
        #expect(try reader.read(timeout: 120) { messages in
            let latest = latestPredictions(messages)
            return sea.allSatisfy { latest[$0]?.modelVersion == 2 } && mismatches(messages, offline2.filter { sea.contains($0.key) }).isEmpty
        }, "sea's items not as version 2 predicts them: \(mismatches(reader.messages, offline2.filter { sea.contains($0.key) }).prefix(5))")
        let latest = latestPredictions(reader.messages)
        for (key, p) in world.offline where !sea.contains(key) {
            #expect(latest[key]?.modelVersion == 1, "\(key) was republished")
            #expect(offline2[key]?.gmv == p.gmv && offline2[key]?.bsp == p.bsp && offline2[key]?.ss == p.ss, "\(key): version 2 predicts otherwise")
        }
        #expect(recomputed?["skipped"] == String(world.offline.count - sea.count), "\(recomputed?.fields ?? [:])")
    }

    @Test("a fine-tune publishes version 2, both members switch to it; damaged versions are refused; promoting version 1 brings them back")
    func modelDistribution() throws {
        // Tansu: predictions are read with read_committed, which the mock cluster does not implement.
        let world = try World.make(items: 200)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        let kafka = ["--bootstrap", broker.bootstrap, "-X", "fetch.wait.max.ms=10"]
        let published = try promo(["model", "publish", world.model.path, "--trained-on", "double11-2025 (e2e)"] + kafka)
        #expect(published.status == 0, "\(published.output.suffix(3))")

        let members = [try startMember(broker, world, name: "d1"), try startMember(broker, world, name: "d2")]
        for m in members {
            #expect(m.awaitEvent("assigned") != nil, "\(m.name) got no partitions")
            #expect(m.events("serving_model").contains { $0["version"] == "1" })
        }
        try produce(broker, world.events + world.outcomes)
        var reader = try TopicReader(broker, topics: ["promo.predictions"])
        #expect(try reader.read(timeout: 120) { stale($0, world.offline, version: 1).isEmpty }, "version 1 serves the stream")

        // Fine-tune on the topics' labels and publish. The gate is generous here: this test is about distribution
        // (the gate has its own tests).
        let tuned = try promo(["finetune", "--publish", "--tune-epochs", "2", "--margin", "100"] + kafka)
        #expect(tuned.status == 0, "\(tuned.output.suffix(8))")
        #expect(try ModelTopic(kafka: broker.config()).readLog().log.announcements.contains { $0.announcement.version == 2 },
                "the fine-tune published version 2")
        for m in members {
            #expect(m.awaitEvent("switched_model", timeout: 10, where: { $0["from"] == "1" && $0["to"] == "2" }) != nil, "\(m.name) did not switch within 10 s")
        }
        // Version 2 as a file, and offline predictions with it.
        let file2 = world.folder.appendingPathComponent("v2.safetensors")
        #expect(try promo(["model", "pull", "--version", "2", "--out", file2.path] + kafka).status == 0)
        let offline2 = try offlinePredictions(world, model: file2)
        #expect(try reader.read(timeout: 120) { stale($0, offline2, version: 2).isEmpty },
                "items still not as version 2 predicts offline: \(stale(reader.messages, offline2, version: 2).prefix(5))")
        for m in members {
            #expect(m.awaitEvent("recomputed", timeout: 30, where: { $0["version"] == "2" }) != nil, "\(m.name) finished recomputing")
        }

        // Version 3 with one chunk damaged on the way, version 4 announced with a wrong checksum: both refused.
        var next = try DINOPModel(contentsOf: file2)
        next.version = 3
        next.parent = 2
        var damaged = ModelPackage(model: next)
        damaged.chunks[0][damaged.chunks[0].startIndex + 200] ^= 0x55
        next.version = 4
        var misannounced = ModelPackage(model: next)
        misannounced.announcement.sha256 = String(repeating: "ab", count: 32)
        let modelTopic = ModelTopic(kafka: broker.config())
        let marks = members.map { $0.output.count }
        #expect(throws: ModelPackageError.self) { try modelTopic.publish(damaged) }
        try modelTopic.publish(damaged, verify: false)
        try modelTopic.publish(misannounced, verify: false)
        for (m, mark) in zip(members, marks) {
            let refused3 = m.awaitEvent("refused_model", after: mark, timeout: 10) { $0["version"] == "3" }
            let refused4 = m.awaitEvent("refused_model", after: mark, timeout: 10) { $0["version"] == "4" }
            #expect(refused3?["reason"]?.contains("SHA-256") == true && refused3?["serving"] == "2", "\(m.name): \(refused3?.fields ?? [:])")
            #expect(refused4?["reason"]?.contains("SHA-256") == true, "\(m.name): \(refused4?.fields ?? [:])")
        }
        // Still version 2: a corrected day of one item is predicted by version 2.
        let sales = try #require(world.events.last { $0.topic == "promo.daily-sales" })
        guard case .sales(var corrected) = try EventDecoder().decode(sales.value) else { Issue.record("not a sales event"); return }
        corrected.sales["views"] = (corrected.sales["views"] ?? 0) + 1000
        try produce(broker, [(sales.topic, sales.key, Event.sales(corrected).encoded())])
        let correctedKey = ItemKey(promotionID: corrected.promotionID, itemID: corrected.itemID)
        let before = try #require(latestPredictions(reader.messages)[correctedKey]?.sequence)
        #expect(try reader.read(timeout: 60) { (latestPredictions($0)[correctedKey]?.sequence ?? 0) > before })
        #expect(latestPredictions(reader.messages)[correctedKey]?.modelVersion == 2)
        #expect(!predictions(reader.messages).contains { $0.modelVersion > 2 })

        // Rollback: every member follows, and every item ends as version 1 predicts (the corrected item aside).
        let promoted = try promo(["model", "promote", "1"] + kafka)
        #expect(promoted.status == 0, "\(promoted.output.suffix(3))")
        for m in members {
            #expect(m.awaitEvent("switched_model", timeout: 10, where: { $0["from"] == "2" && $0["to"] == "1" }) != nil, "\(m.name) did not roll back")
        }
        var expected1 = world.offline
        expected1[correctedKey] = nil
        #expect(try reader.read(timeout: 120) { stale($0, expected1, version: 1).isEmpty },
                "items still not back at version 1: \(stale(reader.messages, expected1, version: 1).prefix(5))")
        // Fine-tuning version 1 again would make another version 2 (MODEL.md: parent + 1): refused before training.
        let again = try promo(["finetune", "--publish", "--tune-epochs", "1"] + kafka)
        #expect(again.status != 0 && again.output.contains { $0.contains("version 2 is already on the model topic") }, "\(again.output.suffix(3))")
        #expect(!again.output.contains { $0.contains("epoch 1") }, "refused before training")
        let list = try promo(["model", "list"] + kafka)
        #expect(list.output.contains { $0.hasSuffix("| served |") && $0.contains("| 1 | — |") }, "\(list.output)")
        #expect(list.output.contains { $0.contains("| 3 | 2 |") && $0.contains("refused") && $0.contains("SHA-256") }, "\(list.output)")

        // A version whose announcement is gone (compaction keeps only the latest `model` record): only its chunks are
        // on the topic; promote rebuilds the announcement from them and the members follow.
        next.version = 7
        next.parent = 2
        let orphan = ModelPackage(model: next)
        let producer = try KafkaProducer(broker.config(["message.max.bytes": "2097152"]))
        for (i, chunk) in orphan.chunks.enumerated() {
            try producer.produce(topic: "promo.models", partition: 0, key: Array("model:7:\(i)".utf8), value: [UInt8](chunk))
        }
        try producer.flush()
        let promoted7 = try promo(["model", "promote", "7"] + kafka)
        #expect(promoted7.status == 0, "\(promoted7.output.suffix(3))")
        for m in members {
            #expect(m.awaitEvent("switched_model", timeout: 10, where: { $0["from"] == "1" && $0["to"] == "7" }) != nil, "\(m.name) did not follow")
        }
        for m in members {
            m.signal(SIGTERM)
            #expect(m.wait() == 0)
        }
    }
}

/// `promo predict` with `model` on the world's input files.
func offlinePredictions(_ world: World, model: URL) throws -> [ItemKey: PredictionEvent] {
    let promotion = world.folder.appendingPathComponent("double11-2025")
    let out = world.folder.appendingPathComponent("offline-\(model.lastPathComponent).jsonl")
    let files = PromotionWorld.inputFiles.map { promotion.appendingPathComponent("\($0).jsonl").path }
    let run = try promo(["predict", "--model", model.path, "--out", out.path] + files)
    guard run.status == 0 else { throw BrokerError("promo predict: \(run.output.suffix(3))") }
    var predictions: [ItemKey: PredictionEvent] = [:]
    try EventFile.read(out, decoder: EventDecoder(), rejected: { _ in }) { event in
        if case .prediction(let p) = event { predictions[ItemKey(promotionID: p.promotionID, itemID: p.itemID)] = p }
    }
    return predictions
}

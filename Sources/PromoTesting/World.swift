import DINOP
import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoService
import PromoWorld

/// A generated promotion, a model trained on it, and `promo predict`'s offline predictions, all made with the
/// `promo` command line, plus the promotion's input events in stream order (profiles and activities, then day
/// by day).
public struct World {
    public let folder: URL
    public let model: URL
    /// The promotion's event files, as `promo predict` reads them.
    public var inputFiles: [URL] { PromotionWorld.inputFiles.map { folder.appendingPathComponent("double11-2025/\($0).jsonl") } }
    public var events: [(topic: String, key: String, value: [UInt8])] = []
    public var offline: [ItemKey: PredictionEvent] = [:]
    public var outcomes: [(topic: String, key: String, value: [UInt8])] = []
    public var actualGMV: [ItemKey: Double] = [:]

    /// `markets`: the four-market world (`promo generate --markets`) and a model with MARKETS.md's market-embedding
    /// and domain-attention over its markets; `competition`: the competition world (`--competition`) and MARKETS.md's
    /// competition on top (F = 8, with cooperation).
    public static func make(items: Int = 300, markets: Bool = false, competition: Bool = false) throws -> World {
        let markets = markets || competition
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)")
        let promo = builtProduct("promo")
        func run(_ arguments: [String]) throws -> [String] {
            let child = try ChildProcess(promo, arguments, name: "promo")
            let status = child.wait(timeout: 300)
            guard status == 0 else { throw BrokerError("promo \(arguments.joined(separator: " ")): \(child.output.suffix(5))") }
            return child.output
        }
        _ = try run(["generate", "--out", folder.path, "--items", "\(items)", "--seed", "3"]
                    + (competition ? ["--competition"] : markets ? ["--markets"] : []))
        let promotion = folder.appendingPathComponent("double11-2025")
        let model = folder.appendingPathComponent("model.safetensors")
        var configFlags: [String] = []
        if markets {
            let config = folder.appendingPathComponent("config.json")
            let ids = PromotionWorld.fourMarkets.map { "\"\($0.id)\"" }.joined(separator: ", ")
            try Data("""
                {"extensions": ["market-embedding", "domain-attention"\(competition ? ", \"competition\"" : "")], "markets": [\(ids)],
                 "domain_attention": {"spec_rows": 101}\(competition ? ", \"competition\": {\"width\": 8}" : "")}
                """.utf8).write(to: config)
            configFlags = ["--config", config.path]
        }
        _ = try run(["train", promotion.path, "--out", model.path, "--epochs", "1", "--hidden", "16", "--attention", "8",
                     "--encoder-width", "8", "--head-hidden", "16", "--rows", "1009"] + configFlags)
        var world = World(folder: folder, model: model)
        world.offline = try world.predictOffline()
        try EventFile.read(promotion.appendingPathComponent("outcomes.jsonl"), decoder: EventDecoder(), rejected: { _ in }) { event in
            guard case .outcome(let o) = event else { return }
            world.outcomes.append(("promo.outcomes", o.itemID, event.encoded()))
            world.actualGMV[ItemKey(promotionID: o.promotionID, itemID: o.itemID)] = o.gmv
        }
        let topics = ServiceTopics()
        world.events = try PromotionWorld.inputEvents(promotionFolder: promotion).map {
            (topics.topic(schema: $0.schema)!, $0.itemID!, $0.encoded())
        }
        return world
    }
}

extension World {
    /// `promo predict`'s predictions of the promotion's items, as of `asOfDay` (all their days when nil).
    public func predictOffline(asOfDay: Int? = nil) throws -> [ItemKey: PredictionEvent] {
        let out = folder.appendingPathComponent("offline-\(asOfDay.map(String.init) ?? "all").jsonl")
        let child = try ChildProcess(builtProduct("promo"), ["predict", "--model", model.path, "--out", out.path]
                                        + (asOfDay.map { ["--as-of-day", "\($0)"] } ?? []) + inputFiles.map(\.path), name: "promo")
        guard child.wait(timeout: 300) == 0 else { throw BrokerError("promo predict: \(child.output.suffix(5))") }
        var predictions: [ItemKey: PredictionEvent] = [:]
        try EventFile.read(out, decoder: EventDecoder(), rejected: { _ in }) { event in
            if case .prediction(let p) = event { predictions[ItemKey(promotionID: p.promotionID, itemID: p.itemID)] = p }
        }
        return predictions
    }
}

/// A `promo run` process.
public func startMember(_ broker: LocalBroker, _ world: World, name: String, mode: String = "exactly-once", group: String = "e2e",
                 extra: [String] = [], environment: [String: String] = [:]) throws -> ChildProcess {
    try ChildProcess(builtProduct("promo"), [
        "run", "--bootstrap", broker.bootstrap, "--model", world.model.path, "--group", group, "--member", name,
        "--mode", mode, "--max-batch", "500", "--grace-seconds", "2",
        "--state-dir", world.folder.appendingPathComponent("state").path,
        "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500", "-X", "transaction.timeout.ms=10000",
        "-X", "fetch.wait.max.ms=10", "--http-port", "0",  // none: several members share the machine
        "--log-format", "json",  // the tests wait on its events, not on its prose
    ] + extra, name: name, environment: environment)
}

public func produce(_ broker: LocalBroker, _ events: some Sequence<(topic: String, key: String, value: [UInt8])>) throws {
    let producer = try KafkaProducer(broker.config(["partitioner": "murmur2_random"]))
    for e in events { try producer.produce(topic: e.topic, key: Array(e.key.utf8), value: e.value) }
    try producer.flush()
}

/// Every committed prediction, decoded.
public func predictions(_ messages: [KafkaMessage]) -> [PredictionEvent] {
    messages.compactMap { m in
        guard m.topic == "promo.predictions", case .prediction(let p)? = try? EventDecoder().decode(m.value) else { return nil }
        return p
    }
}

/// Every committed dead letter, decoded.
public func deadLetters(_ messages: [KafkaMessage]) -> [DeadLetter] {
    messages.compactMap { m in
        guard m.topic == "promo.dead-letter", case .deadLetter(let d)? = try? EventDecoder().decode(m.value) else { return nil }
        return d
    }
}

/// Items whose latest committed prediction (highest sequence) differs from the offline one.
public func mismatches(_ messages: [KafkaMessage], _ offline: [ItemKey: PredictionEvent]) -> [ItemKey] {
    mismatches(predictions(messages), offline)
}

public func mismatches(_ predictions: [PredictionEvent], _ offline: [ItemKey: PredictionEvent]) -> [ItemKey] {
    var latest: [ItemKey: PredictionEvent] = [:]
    for p in predictions {
        let key = ItemKey(promotionID: p.promotionID, itemID: p.itemID)
        if (latest[key]?.sequence ?? 0) < (p.sequence ?? 0) { latest[key] = p }
    }
    return offline.keys.filter { key in
        guard let p = latest[key], let q = offline[key] else { return true }
        return p.daysSeen != q.daysSeen || abs(p.gmv - q.gmv) > 1e-4 * max(1, q.gmv) || abs(p.bsp - q.bsp) > 1e-5
            || zip(p.ssProbabilities, q.ssProbabilities).contains { abs($0 - $1) > 1e-5 }
    }.sorted()
}


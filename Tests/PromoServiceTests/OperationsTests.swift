import Foundation
import PromoEvents
import PromoKafka
import PromoService
import PromoTesting
import Testing

/// The topic specs of the repository (Topics/topics), which the built-in ones must equal.
let topicSpecsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../Topics/topics").standardized

/// The metric names the Grafana dashboard (Deploy/grafana/promo-stream.json) queries, without histogram suffixes.
func dashboardMetrics() throws -> Set<String> {
    let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Deploy/grafana/promo-stream.json")
    let text = try String(contentsOf: file, encoding: .utf8)
    let names = text.matches(of: /promo_[a-z_]+/).map { String($0.output) }
    return Set(names.map { $0.replacing(/_(bucket|sum|count)$/, with: "") })
}

/// Series names of a scrape, histogram suffixes removed.
func seriesNames(_ values: [String: Double]) -> Set<String> {
    Set(values.keys.map { String($0.prefix { $0 != "{" }).replacing(/_(bucket|sum|count)$/, with: "") })
}

extension BrokerTests {
    @Suite("Operations: probes and metrics of a running member")
    struct OperationsTests {
        @Test("/ready waits for the restore; /metrics counts inputs, outputs, dead letters, state and lag; SIGTERM exits 0",
              .timeLimit(.minutes(5)))
        func endpoints() throws {
            let world = try World.make(items: 120)
            defer { try? FileManager.default.removeItem(at: world.folder) }
            let broker = try LocalBroker.tansu()
            let port = try LocalBroker.freePort()
            let member = try startMember(broker, world, name: "ops", extra: ["--http-port", "\(port)"],
                                         environment: ["PROMO_FAULT_RESTORE_PAUSE_MS": "3000"])

            // Alive but not ready while the assigned partitions are restored, and says so.
            let restoring = try #require(awaitValue { httpGet(port: port, "/ready").flatMap { $0.status == 503 && $0.body.contains("restoring partitions") ? $0 : nil } },
                                         "never saw /ready answer 503 during the restore: \(member.output.suffix(5))")
            #expect(restoring.body.contains("\"ready\":false"))
            #expect(httpGet(port: port, "/health")?.status == 200)
            // Ready only once every assigned partition is restored.
            let ready = try #require(awaitValue { httpGet(port: port, "/ready").flatMap { $0.status == 200 ? $0.body : nil } })
            let state = try #require(try JSONSerialization.jsonObject(with: Data(ready.utf8)) as? [String: Any])
            let assigned = try #require(state["assigned"] as? [Int]), restored = try #require(state["restored"] as? [Int])
            #expect(assigned == Array(0..<12) && restored == assigned)
            let afterRestore = metricValues(try #require(httpGet(port: port, "/metrics")).body)
            #expect(afterRestore["promo_restores_total"] == 1)
            #expect((afterRestore["promo_restore_seconds_sum"] ?? 0) >= 3)
            #expect(afterRestore["promo_rebalances_total{event=\"assigned\"}"] == 1)

            let bad: (topic: String, key: String, value: [UInt8]) = ("promo.daily-sales", "item-x", Array("{not json".utf8))
            try produce(broker, world.events + [bad])
            var reader = try TopicReader(broker, topics: ["promo.predictions", "promo.dead-letter"])
            #expect(try reader.read { Set(predictions($0).map(\.itemID)).count == world.offline.count && deadLetters($0).count == 1 })

            // Counters are updated as each batch commits, gauges every few seconds, and grace periods may still add
            // predictions: read on until the metrics and the topic agree.
            var inputsByTopic: [String: Double] = [:]
            for event in world.events + [bad] { inputsByTopic[event.topic, default: 0] += 1 }
            var m: [String: Double] = [:], agreed = false
            let deadline = Date().addingTimeInterval(90)
            while !agreed && Date() < deadline {
                _ = try reader.read(timeout: 0.3) { _ in false }
                m = metricValues(httpGet(port: port, "/metrics")?.body ?? "")
                let inputs = inputsByTopic.allSatisfy { m["promo_input_messages_total{topic=\"\($0.key)\"}"] == $0.value }
                let items = (m["promo_state_items{form=\"hot\"}"] ?? 0) + (m["promo_state_items{form=\"compact\"}"] ?? 0)
                let lags = m.filter { $0.key.hasPrefix("promo_consumer_lag{") }
                agreed = inputs && items == Double(world.offline.count) && !lags.isEmpty && lags.values.allSatisfy { $0 == 0 }
                    && m["promo_output_records_total{kind=\"prediction\"}"] == Double(predictions(reader.messages).count)
            }
            #expect(agreed, "metrics and topics did not agree: \(m.filter { !$0.key.contains("_bucket") })")
            #expect(m["promo_dead_letters_total{cause=\"invalid_event\"}"] == 1)
            #expect(m["promo_model_version"] == 1)
            #expect((m["promo_event_to_commit_seconds_count"] ?? 0) >= Double(world.events.count))
            #expect((m["promo_transaction_phase_seconds_count{phase=\"commit\"}"] ?? 0) >= 1)
            #expect((m["promo_batch_messages_sum"] ?? 0) == inputsByTopic.values.reduce(0, +))
            #expect((m["promo_process_resident_bytes"] ?? 0) > 1_000_000)
            #expect(m["promo_ready"] == 1)
            // Every metric the dashboard draws exists (the fine-tuner's only where one runs: the next test).
            let missing = try dashboardMetrics().filter { !$0.hasPrefix("promo_finetune") }.subtracting(seriesNames(m))
            #expect(missing.isEmpty, "the dashboard queries metrics the member does not export: \(missing.sorted())")

            member.signal(SIGTERM)
            #expect(member.wait(timeout: 60) == 0)
            #expect(httpGet(port: port, "/health") == nil, "the endpoints stop with the member")
        }

        @Test("SIGTERM during a fine-tune abandons it between minibatches, publishes nothing and exits 0",
              .timeLimit(.minutes(5)))
        func stopDuringFineTune() throws {
            let world = try World.make(items: 200)
            defer { try? FileManager.default.removeItem(at: world.folder) }
            let broker = try LocalBroker.tansu()
            try produce(broker, world.events + world.outcomes)
            let port = try LocalBroker.freePort()
            // Each epoch waits 2 s (fault hook): 50 epochs would take minutes; the stop must not wait for them.
            let member = try startMember(broker, world, name: "tuner",
                                         extra: ["--http-port", "\(port)", "--finetune-every", "3600", "--tune-epochs", "50"],
                                         environment: ["PROMO_FAULT_FINETUNE_EPOCH_PAUSE_MS": "2000"])
            let running = awaitValue(timeout: 120) { () -> Bool? in
                httpGet(port: port, "/metrics").flatMap { metricValues($0.body)["promo_finetune_running"] == 1 ? true : nil }
            }
            #expect(running == true, "the fine-tune never started: \(member.output.suffix(5))")
            let scraped = seriesNames(metricValues(try #require(httpGet(port: port, "/metrics")).body))
            #expect(scraped.contains("promo_finetune_running"))
            let stopped = Date()
            member.signal(SIGTERM)
            #expect(member.wait(timeout: 60) == 0)
            #expect(Date().timeIntervalSince(stopped) < 30, "the member waited for the whole fine-tune")
            let (log, _) = try ModelTopic(kafka: broker.config()).readLog()
            #expect(log.announcements.isEmpty, "an abandoned fine-tune published a version")
        }
    }
}

extension BrokerTests {
    @Test("the topic specs compiled into the binary are the Topics/topics files, for any group")
    func builtInTopicSpecs() throws {
        for group in ["promo-stream", "other-app"] {
            let files = try TopicSpec.load(folder: topicSpecsFolder, group: group).sorted { $0.name < $1.name }
            let builtIn = TopicSpec.builtIn(group: group).sorted { $0.name < $1.name }
            #expect(builtIn == files, "differ: \(Set(builtIn.map(\.name)).symmetricDifference(files.map(\.name)))")
            #expect(builtIn.filter(\.isInternal).map(\.name).sorted()
                    == ["\(group).competition-contexts", "\(group).competition-vectors", "\(group).state-changelog"])
        }
    }
}

extension BrokerTests {
    @Test("a restore honours SIGTERM (exit 0 at once) and its deadline (stop with the reason, for the supervisor)",
          .timeLimit(.minutes(5)))
    func restoreStopsAndDeadline() throws {
        let world = try World.make(items: 30)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        // Each restore takes 30 s longer (fault hook): a SIGTERM in it must not wait for it.
        let slowRestore = ["PROMO_FAULT_RESTORE_PAUSE_MS": "30000"]
        let port = try LocalBroker.freePort()
        let stopped = try startMember(broker, world, name: "r1", extra: ["--http-port", "\(port)"], environment: slowRestore)
        #expect(awaitValue { httpGet(port: port, "/ready").flatMap { $0.body.contains("restoring partitions") ? true : nil } } == true)
        let asked = Date()
        stopped.signal(SIGTERM)
        #expect(stopped.wait(timeout: 60) == 0)
        #expect(Date().timeIntervalSince(asked) < 15, "the stop waited for the restore")
        #expect(stopped.events("assigned").isEmpty && !stopped.events("stopped").isEmpty)

        let late = try startMember(broker, world, name: "r2", extra: ["--restore-timeout", "2"], environment: slowRestore)
        #expect(late.wait(timeout: 90) != 0, "a restore past its deadline stops the member")
        #expect(late.events("restore_timed_out").contains { $0["seconds"] == "2" })
    }
}

extension BrokerTests {
    // A ceiling against hangs, like the other broker tests' (its own waits allow about 150 s): on a loaded host
    // the full suite's parallel tests stretched it past 3 minutes.
    @Test("an idle member keeps saying it is alive: a heartbeat with its lag, dead letters and what it waits for",
          .timeLimit(.minutes(5)))
    func idleHeartbeat() throws {
        let world = try World.make(items: 30)
        defer { try? FileManager.default.removeItem(at: world.folder) }
        let broker = try LocalBroker.tansu()
        let member = try startMember(broker, world, name: "idle", extra: ["--stats-seconds", "1"])
        let assigned = try #require(member.awaitEvent("assigned"))
        // Nothing was produced: every interval after the assignment is idle.
        let beat = try #require(member.awaitEvent("heartbeat", after: assigned.index, timeout: 30))
        #expect(beat["lag"] == "0" && beat["dead_letters"] == "0" && beat["waiting_for"] == "input")
        // One bad event: a batch, then idle again, and the heartbeat counts it.
        try produce(broker, [("promo.daily-sales", "item-x", Array("{not json".utf8))])
        let counted = member.awaitEvent("heartbeat", after: beat.index, timeout: 60) { $0["dead_letters"] == "1" }
        #expect(counted != nil, "\(member.events("heartbeat").suffix(3).map(\.fields))")
        member.signal(SIGTERM)
        #expect(member.wait(timeout: 60) == 0)
    }
}

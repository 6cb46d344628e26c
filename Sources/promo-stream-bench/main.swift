// The stream processor's benchmark (release build):
//   Deploy/local/bench.sh            (builds, then runs this; it starts its own local Tansu broker)
//   promo-stream-bench [--bootstrap HOST:PORT] [--items 20000] [--state-items 1000000] [--threads 1]
//                      [--processor-only | --swap-only | --latency-rate EVENTS_PER_SECOND]
// Prints: the processor alone (no Kafka), the broker's own produce → read latency, events per second end to end
// for one member, the event-to-prediction latency p50/p99 at 1,000 events/s, a tenth and half of that rate,
// resident memory per item with --state-items in state, the time to
// restore them from the changelog, and what a model swap costs with them in state (no Kafka). The README's
// "Benchmarks" section records what it printed on this machine.
import ArgumentParser
internal import CJemalloc
import DINOP
import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoService
import PromoStream
import PromoTesting
import PromoWorld
import Synchronization

struct BenchOptions: ParsableArguments {
    static let configuration = CommandConfiguration(
        commandName: "promo-stream-bench",
        abstract: "The stream processor's benchmark: the processor alone, one member end to end, latency, memory, restore, swap.")

    @Option(help: "A running broker (default: a local Tansu broker this benchmark starts and stops).")
    var bootstrap: String?
    @Option(help: "Items per promotion of the generated world.") var items = 20_000
    @Option(help: "Items in state for the memory, restore and swap figures.") var stateItems = 1_000_000
    @Option(help: "Processing threads of the member (`promo run --threads`).") var threads = 1
    @Flag(help: "Only the processor alone (no broker).") var processorOnly = false
    @Flag(help: "Only the model swap with --state-items in state (no broker).") var swapOnly = false
    @Option(help: "Only the latency at this rate (events/s).") var latencyRate: Double?

    func validate() throws {
        guard items > 0, stateItems > 0, threads > 0 else { throw ValidationError("--items, --state-items and --threads must be positive") }
        if let latencyRate, !(latencyRate > 0 && latencyRate.isFinite) { throw ValidationError("--latency-rate must be a positive number") }
        if processorOnly && swapOnly { throw ValidationError("--processor-only and --swap-only exclude each other") }
    }
}

BLAS.setThreads(1)
let arguments = BenchOptions.parseOrExit()
let needsBroker = !arguments.swapOnly && (!arguments.processorOnly || arguments.latencyRate != nil)
// Started only when a phase needs one and none is given; stopped when the benchmark exits.
let localBroker = needsBroker && arguments.bootstrap == nil ? try LocalBroker.tansu() : nil
let bootstrap = arguments.bootstrap ?? localBroker?.bootstrap ?? "(none)"
// `exit` runs no deinitialisers: stop the broker process on every exit path.
atexit { localBroker?.stop() }
let itemCount = arguments.items
let stateItems = arguments.stateItems
/// Processing threads of the member in 2. and 3. (`promo run --threads`).
let memberThreads = arguments.threads
// Tansu answers a new group's first join after about half the session timeout, and holds a fetch for the whole
// fetch.wait.max.ms (librdkafka's default 500 ms) even when data arrives meanwhile.
let kafka = KafkaConfig(bootstrapServers: bootstrap, ["session.timeout.ms": "6000", "fetch.wait.max.ms": "10"])
let topics = ServiceTopics()

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func log(_ line: String) { FileHandle.standardError.write(Data("  \(line)\n".utf8)) }

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
          let pages = Int(text.split(separator: " ")[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

// MARK: Data and model

print("promo-stream benchmark: broker \(bootstrap), librdkafka \(librdkafkaVersion), \(itemCount) items per promotion, member threads \(memberThreads)")
let folder = FileManager.default.temporaryDirectory.appendingPathComponent("promo-stream-bench-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: folder) }
var worldOptions = PromotionWorld.Options()
worldOptions.itemsPerPromotion = itemCount
_ = try PromotionWorld(options: worldOptions).write(to: folder, threads: 2)
let promotions = worldOptions.promotions.map(\.id)
let streams = try promotions.map { try PromotionWorld.inputEvents(promotionFolder: folder.appendingPathComponent($0)) }
let model = try DINOPModel.random(config: .default, dims: .defaults(for: .default), seed: 1)
print("model: H = \(model.config.hidden), A = \(model.config.attention) (MODEL.md defaults), one OpenBLAS thread")

func messages(_ events: [Event]) -> [(topic: String, key: [UInt8], value: [UInt8])] {
    events.map { (topics.topic(schema: $0.schema)!, Array($0.itemID!.utf8), $0.encoded()) }
}
let first = messages(streams[0]), second = messages(streams[1])

/// States of real items, stepped through all their days by `model`: their changelog records.
func templateRecords() -> [[UInt8]] {
    let processor = StreamProcessor(model: model)
    var latest: [[UInt8]: [UInt8]] = [:]
    for s in stride(from: 0, to: first.count, by: 10_000) {
        let inputs = (s..<min(s + 10_000, first.count)).map { i in
            InputMessage(topic: first[i].topic, partition: 0, offset: Int64(i), key: first[i].key, value: first[i].value)
        }
        for o in processor.process(inputs, nowMs: 0) where o.kind == .changelog { latest[o.key] = o.value }
    }
    return Array(latest.values)
}

/// `stateItems` items in a processor's state, restored from copies of the templates under new item ids.
func processorWithState(_ templates: [ItemState], options: ProcessorOptions) -> StreamProcessor {
    let processor = StreamProcessor(model: model, options: options)
    for p in 0..<Int32(12) { processor.startRestore(partition: p) }
    for i in 0..<stateItems {
        var state = templates[i % templates.count]
        state.key = ItemKey(promotionID: "bench", itemID: "state-\(i)")
        try! processor.restore(partition: Int32(i % 12), value: StateCodec.encode(state))
    }
    for p in 0..<Int32(12) { processor.finishRestore(partition: p) }
    return processor
}

/// 6. A model swap with `stateItems` items in state: every item recomputed from its stored days under the new
/// version, `recomputePerCall` per call, as a member does between batches.
func swapPhase() throws {
    let templates = try templateRecords().map { try StateCodec.decode($0) }
    let options = ProcessorOptions()
    let processor = processorWithState(templates, options: options)
    var next = try DINOPModel.random(config: model.config, dims: model.layout.dims, seed: 2)
    next.version = model.version + 1
    let swapStart = now()
    try processor.swap(to: next)
    let queued = processor.staleCount
    let queueSeconds = now() - swapStart
    var calls = 0, predictions = 0, outputBytes = 0, slowest = 0.0
    let start = now()
    while processor.staleCount > 0 {
        let callStart = now()
        let out = processor.process([], nowMs: 0)
        slowest = max(slowest, now() - callStart)
        calls += 1
        predictions += out.filter { $0.kind == .prediction }.count
        outputBytes += out.reduce(0) { $0 + $1.value.count }
    }
    let seconds = now() - start
    log(String(format: "swap: %d items queued in %.2f s; %d calls of up to %d items, the slowest %.0f ms; %.0f bytes of output per item",
               queued, queueSeconds, calls, options.recomputePerCall, slowest * 1000, Double(outputBytes) / Double(max(predictions, 1))))
    print(String(format: "6. model swap with %d items in state: all recomputed under the new version in %.1f s (%.0f items/s, %.0f µs per item; %d predictions)",
                 processor.itemCount, seconds, Double(predictions) / seconds, seconds / Double(max(predictions, 1)) * 1e6, predictions))
}

if arguments.swapOnly {
    try swapPhase()
    exit(0)
}

// MARK: 1. The processor alone

/// `--latency-rate R`: only the latency at R events/s (phase 3), to look into it.
let latencyRate = arguments.latencyRate

for threads in [1, 2] where latencyRate == nil {
    var options = ProcessorOptions()
    options.threads = threads
    let processor = ShardedProcessor(model: model, options: options)
    let inputs = first.enumerated().map { i, m in
        InputMessage(topic: m.topic, partition: Int32(fnv1a64(String(decoding: m.key, as: UTF8.self)) % 12),
                     offset: Int64(i), key: m.key, value: m.value)
    }
    let decodeStart = now()
    let decoder = EventDecoder()
    var decoded = 0
    for m in inputs { if (try? decoder.decode(m.value)) != nil { decoded += 1 } }
    let decodeSeconds = now() - decodeStart
    let dailyStart = now()
    var daily = 0
    for m in inputs { if decoder.decodeDaily(m.value) != nil { daily += 1 } }
    let dailySeconds = now() - dailyStart
    var outputs = 0, outputBytes = 0
    let start = now()
    for s in stride(from: 0, to: inputs.count, by: 10_000) {
        let out = processor.process(Array(inputs[s..<min(s + 10_000, inputs.count)]), nowMs: 0)
        outputs += out.count
        outputBytes += out.reduce(0) { $0 + $1.value.count }
    }
    let seconds = now() - start
    log(String(format: "decoding alone: %.0f events/s (%.0f%% of them daily events in their common form, read at %.0f events/s); %.2f outputs per event, %.0f bytes of output per event",
               Double(decoded) / decodeSeconds, 100 * Double(daily) / Double(inputs.count), Double(daily) / dailySeconds, Double(outputs) / Double(inputs.count), Double(outputBytes) / Double(inputs.count)))
    print(String(format: "1. processor alone (decode, join, step, encode outputs; no Kafka), %d thread%@: %.0f events/s (%d events, %.1f s)",
                 threads, threads == 1 ? "" : "s", Double(inputs.count) / seconds, inputs.count, seconds))
}

if arguments.processorOnly && latencyRate == nil { exit(0) }

// MARK: 0. The broker alone

/// The floor any member's latency stands on: a message produced (linger 5 ms, as the benchmark's producer) → read
/// by a consumer polling every few milliseconds, at 1,000 messages/s on 12 partitions, no member in between.
func brokerRoundTrip() throws -> (p50: Double, p99: Double) {
    let reader = try KafkaConsumer(KafkaConfig(bootstrapServers: bootstrap, ["fetch.wait.max.ms": "5"]))
    var starts: [TopicPartition: Int64] = [:]
    for p in 0..<12 { starts[TopicPartition(topics.deadLetter, Int32(p))] = KafkaOffset.end }
    try reader.assign(starts)
    // The assignment takes effect with the first fetches.
    _ = try reader.poll(maxMessages: 1, timeoutMs: 500)
    let count = 3_000
    let sent = Mutex<[Double]>(Array(repeating: .nan, count: count))
    let probes = (0..<count).map { (topic: topics.deadLetter, key: Array("probe-\($0)".utf8), value: withUnsafeBytes(of: $0) { Array($0) }) }
    let producerThread = Thread { _ = try? produce(probes, pacing: 1_000) { i, t in sent.withLock { $0[i] = t } } }
    producerThread.start()
    var latencies: [Double] = []
    let deadline = now() + 30
    while latencies.count < count && now() < deadline {
        for m in try reader.poll(maxMessages: 1_000, timeoutMs: 5) where m.value.count == 8 {
            let i = m.value.withUnsafeBytes { $0.loadUnaligned(as: Int.self) }
            if (0..<count).contains(i) { latencies.append(now() - sent.withLock { $0[i] }) }
        }
    }
    latencies.sort()
    return (latencies[latencies.count / 2] * 1000, latencies[min(latencies.count - 1, latencies.count * 99 / 100)] * 1000)
}

if latencyRate != nil || !arguments.processorOnly {
    let (p50, p99) = try brokerRoundTrip()
    print(String(format: "0. the broker alone: produced → read at 1,000 messages/s, p50 %.1f ms, p99 %.1f ms (no member in between)", p50, p99))
}

// MARK: 2. End to end, one member

func produce(_ batch: [(topic: String, key: [UInt8], value: [UInt8])], pacing rate: Double? = nil,
             sent: ((Int, Double) -> Void)? = nil) throws -> Double {
    let producer = try KafkaProducer(KafkaConfig(bootstrapServers: bootstrap, ["partitioner": "murmur2_random", "linger.ms": "5"]))
    let start = now()
    for (i, m) in batch.enumerated() {
        if let rate, i % 100 == 0 {
            let due = start + Double(i) / rate
            if due > now() { Thread.sleep(forTimeInterval: due - now()) }
        }
        try producer.produce(topic: m.topic, key: m.key, value: m.value)
        sent?(i, now())
        if i % 1000 == 0 { producer.poll() }
    }
    try producer.flush(timeoutMs: 300_000)
    return now() - start
}

// The end-to-end run reads the first promotion from the broker; a latency-only run does not.
if latencyRate == nil {
    let produceSeconds = try produce(first)
    print(String(format: "   producing the inputs to the broker: %.0f events/s (the broker's own ceiling on this machine)",
                 Double(first.count) / produceSeconds))
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

final class Member: @unchecked Sendable {
    let service: StreamService
    let stop = StopSignal()
    let processed = Counter()
    let thread: Thread
    let done = DispatchSemaphore(value: 0)

    let assigned = DispatchSemaphore(value: 0)

    /// `startAtEnd`: a new group that reads only what is produced after it joins.
    init(group: String, pollMs: Int32, maxBatch: Int, startAtEnd: Bool = false, mode: DeliveryMode = .exactlyOnce,
         statsSeconds: Double = 0) {
        var options = ServiceOptions(kafka: kafka, member: "bench")
        options.mode = mode
        if startAtEnd { options.kafka["auto.offset.reset"] = "latest" }
        options.group = group
        options.pollTimeoutMs = pollMs
        options.maxBatch = maxBatch
        options.statsIntervalSeconds = statsSeconds
        options.processor.gracePeriodMs = 1_000
        options.processor.threads = memberThreads
        let assigned = self.assigned
        let service = StreamService(model: model, options: options, events: { event in
            if event.name == "assigned" { assigned.signal() }
            if event.name == "stats" { log("member: \(event.message)") }
        })
        self.service = service
        let (stop, processed, done) = (self.stop, self.processed, self.done)
        service.onCommitted = { processed.value.store($0, ordering: .relaxed) }
        thread = Thread {
            do {
                try service.run(until: stop)
            } catch {
                // A figure measured on a member that stopped would be meaningless.
                FileHandle.standardError.write(Data("promo-stream-bench: the member failed: \(error)\n".utf8))
                exit(1)
            }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    func wait(forProcessed count: Int, timeout: Double) -> Bool {
        let deadline = now() + timeout
        while processed.value.load(ordering: .relaxed) < count && now() < deadline { usleep(1_000) }
        return processed.value.load(ordering: .relaxed) >= count
    }

    func finish() {
        stop.stop()
        done.wait()
    }
}

let endToEnd: Double
if let latencyRate {
    endToEnd = latencyRate
} else {
    let throughputMember = Member(group: "bench-\(UUID().uuidString)", pollMs: 100, maxBatch: 10_000, statsSeconds: 5)
    let startedAt = now()
    _ = throughputMember.wait(forProcessed: 1, timeout: 120)
    let firstBatchAt = now()
    let finished = throughputMember.wait(forProcessed: first.count, timeout: 1200)
    endToEnd = Double(first.count) / (now() - firstBatchAt)
    print(String(format: "2. end to end, one member, exactly-once: %.0f events/s (%d events; %.1f s to join the group and get the first batch)%@",
                 endToEnd, first.count, firstBatchAt - startedAt, finished ? "" : " — did not finish"))
    throughputMember.finish()
}

// MARK: 3. Latency at half that rate (and at a tenth, to show the floor)

/// Produces the second promotion's stream at `rate` for up to `seconds` and measures event → readable prediction.
func latency(_ events: ArraySlice<(topic: String, key: [UInt8], value: [UInt8])>, rate: Double, seconds: Double,
             mode: DeliveryMode = .exactlyOnce) throws -> (p50: Double, p99: Double, count: Int) {
    // A short poll so that a batch closes soon after its first message; under backlog batches grow by themselves.
    let member = Member(group: "bench-latency-\(UUID().uuidString)", pollMs: 5, maxBatch: 10_000, startAtEnd: true,
                        mode: mode, statsSeconds: 5)
    member.assigned.wait()
    defer { member.finish() }
    // Read predictions from the end of the topic, committed only, as a downstream consumer would.
    let reader = try KafkaConsumer(KafkaConfig(bootstrapServers: bootstrap,
                                               ["isolation.level": "read_committed", "fetch.wait.max.ms": "5"]))
    var starts: [TopicPartition: Int64] = [:]
    for p in 0..<12 { starts[TopicPartition(topics.predictions, Int32(p))] = KafkaOffset.end }
    try reader.assign(starts)
    let events = Array(events.prefix(Int(rate * seconds)))
    // The time the latest event of each item was sent: the event that makes its next prediction.
    let lastSent = Mutex<[String: Double]>([:])
    let keys = events.map { String(decoding: $0.key, as: UTF8.self) }
    let producerThread = Thread {
        _ = try? produce(events, pacing: rate) { i, t in lastSent.withLock { $0[keys[i]] = t } }
    }
    producerThread.start()
    var latencies: [Double] = []
    /// The worst latency of each 5 s of receiving, to tell a steady tail from a stall.
    var worst: [Int: Double] = [:]
    let readStart = now()
    let promotion = promotions[1]
    let deadline = now() + seconds + 30
    var idleSince = now()
    while now() < deadline && (now() - idleSince < 5 || latencies.isEmpty) {
        let messages = try reader.poll(maxMessages: 5_000, timeoutMs: 20)
        if !messages.isEmpty { idleSince = now() }
        for m in messages {
            let received = now()
            // A day applied without its buyer profile waited out its grace period by design: not an event's latency.
            guard case .prediction(let p)? = try? EventDecoder().decode(m.value), p.promotionID == promotion,
                  !(p.daysWithoutBuyers ?? []).contains(p.asOfDay ?? 0),
                  let sent = lastSent.withLock({ $0[p.itemID] }) else { continue }
            latencies.append(received - sent)
            worst[Int((received - readStart) / 5), default: 0] = max(worst[Int((received - readStart) / 5), default: 0], received - sent)
        }
    }
    latencies.sort()
    log("worst latency per 5 s of reading: " + worst.keys.sorted().map { String(format: "%.0f ms", worst[$0]! * 1000) }.joined(separator: ", "))
    func percentile(_ q: Double) -> Double {
        latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(q * Double(latencies.count)))] * 1000
    }
    return (percentile(0.5), percentile(0.99), latencies.count)
}

// Each run sends days the member has not seen: the light run the first events of the second promotion, the
// tenth-rate runs the next ones, the half-rate run the rest.
if let latencyRate {
    let (p50, p99, count) = try latency(second[...], rate: latencyRate, seconds: 30)
    print(String(format: "3. latency at %.0f events/s, event sent → prediction readable (read_committed): p50 %.1f ms, p99 %.1f ms (%d predictions)",
                 latencyRate, p50, p99, count))
    exit(0)
}
let slowCount = Int(endToEnd / 10 * 30)
let rest = second.dropFirst(30_000)
for (name, rate, events, mode) in [
    ("a light load", 1_000, second.prefix(30_000), DeliveryMode.exactlyOnce),
    ("a tenth of 2.", endToEnd / 10, rest.prefix(slowCount), .exactlyOnce),
    ("a tenth of 2., at-least-once", endToEnd / 10, rest.dropFirst(slowCount).prefix(slowCount), .atLeastOnce),
    ("half of 2.", endToEnd / 2, rest.dropFirst(2 * slowCount), .exactlyOnce),
] {
    let (p50, p99, count) = try latency(events, rate: rate, seconds: 30, mode: mode)
    print(String(format: "3. latency at %.0f events/s (%@), event sent → prediction readable (read_committed): p50 %.1f ms, p99 %.1f ms (%d predictions)",
                 rate, name, p50, p99, count))
}

// MARK: 4. Memory per item and restore time with many items in state

do {
    // States of real items, stepped through all their days, copied under new item ids up to `stateItems`.
    let records = templateRecords()
    let templates = try records.map { try StateCodec.decode($0) }
    let recordBytes = records.reduce(0) { $0 + $1.count } / max(records.count, 1)
    let producer = try KafkaProducer(KafkaConfig(bootstrapServers: bootstrap, ["linger.ms": "20", "batch.size": "1000000"]))
    let start = now()
    for i in 0..<stateItems {
        var state = templates[i % templates.count]
        state.key = ItemKey(promotionID: "bench", itemID: "state-\(i)")
        try producer.produce(topic: topics.changelog, partition: Int32(fnv1a64(state.key.itemID) % 12),
                             key: StreamProcessor.changelogKey(state.key), value: StateCodec.encode(state))
        if i % 10_000 == 0 { producer.poll() }
    }
    try producer.flush(timeoutMs: 600_000)
    log(String(format: "wrote %d changelog records of %d bytes in %.1f s", stateItems, recordBytes, now() - start))

    // A member's restore, as on assignment, without running the member.
    let service = StreamService(model: model, options: ServiceOptions(kafka: kafka, member: "restore"), events: { _ in })
    let before = residentBytes()
    let restoreStart = now()
    let restored = try service.restore(Set(0..<12))
    let restoreSeconds = now() - restoreStart
    let after = residentBytes()
    let items = service.itemCount
    print(String(format: "4. memory: %.0f bytes resident per item with %d items in state (H = %d, kept compactly after restore)",
                 Double(after - before) / Double(max(items, 1)), items, model.config.hidden))
    print(String(format: "5. restore: %d changelog records (%d items, %d bytes each) read and rebuilt in %.1f s",
                 restored, items, recordBytes, restoreSeconds))
}

try swapPhase()

// Throughput of the DINOP math, one core, release build: `swift run -c release promo-bench [--quick]`.
// Prints item-days per second for the step alone and with all four heads (batches of 1 and 256), and seconds
// per training epoch for 10,000 items × 20 days. See the README for the targets and what was measured.
// `promo-bench bop …`: BOP.md's candidate scorings per second instead (BOPBench.swift, Deploy/local/bop-bench.sh).
// `promo-bench competition …`: MARKETS.md competition's day close (CompetitionBench.swift, Deploy/local/competition-bench.sh).
internal import CJemalloc
import DINOP
import Foundation

let quick = CommandLine.arguments.contains("--quick")
BLAS.setThreads(1)
// The other benchmarks, each its own subcommand.
let subcommands: [String: ([String]) throws -> Void] = ["bop": bopBench, "competition": competitionBench]
if let name = CommandLine.arguments.dropFirst().first, let subcommand = subcommands[name] {
    do {
        try subcommand(Array(CommandLine.arguments.dropFirst(2)))
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("promo-bench \(name): \(error)\n".utf8))
        exit(1)
    }
}

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Best rate of three runs of about `budget` seconds each.
func rate(perCall work: Double, budget: Double = quick ? 0.3 : 1.5, _ body: () -> Void) -> Double {
    rates(perCall: work, budget: budget, body).wall
}

/// Best rate of three runs of about `budget` seconds each, by the wall clock and by this process's CPU time (what
/// another process's load does not change).
func rates(perCall work: Double, budget: Double, _ body: () -> Void) -> (wall: Double, cpu: Double) {
    var calls = 1
    while seconds({ for _ in 0..<calls { body() } }) < budget / 10 { calls *= 2 }
    var best = 0.0, bestCPU = 0.0
    for _ in 0..<3 {
        let startCPU = processCPUSeconds()
        let elapsed = seconds { for _ in 0..<(calls * 10) { body() } }
        best = max(best, Double(calls * 10) * work / elapsed)
        bestCPU = max(bestCPU, Double(calls * 10) * work / (processCPUSeconds() - startCPU))
    }
    return (best, bestCPU)
}

/// This process's CPU time (user and system), in seconds.
func processCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

let config = ModelConfig.default
let model = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 100_003), seed: 1)
let network = Network(model.parameters)
// The same model with MARKETS.md's market-embedding over 1,000 markets, every benchmark item in one of them (the
// worst case: an item of no listed market costs nothing extra by construction).
var marketConfig = config
marketConfig.extensions = [ModelExtension.marketEmbedding]
marketConfig.markets = (0..<1000).map { "id-\($0)" }
let marketNetwork = Network(try DINOPModel.random(config: marketConfig, dims: .defaults(for: marketConfig, rows: 100_003),
                                                  seed: 1).parameters)
// And with domain-attention too (its defaults: V' = 4099, d' = 8, gates [32, 16], D_m = 32): its parts are static,
// computed once when an item's encodings are built; per step the heads add one precomputed row.
var domainConfig = marketConfig
domainConfig.extensions.append(ModelExtension.domainAttention)
let domainNetwork = Network(try DINOPModel.random(config: domainConfig, dims: .defaults(for: domainConfig, rows: 100_003),
                                                  seed: 1).parameters)
print("DINOP math benchmark: H = \(config.hidden), A = \(config.attention), one OpenBLAS thread")
print(BLAS.configuration)
print("")
print("batch   step item-days/s   step+heads item-days/s   with market-embedding: step   step+heads   + domain-attention: step+heads")

var rng = SeededGenerator(seed: 2)
@MainActor func randomItem(days: Int) -> RawItem {
    func values(_ group: FeatureGroup) -> [Float] { config.names(group).map { _ in Float(exp(2 * rng.normal())) } }
    return RawItem(sii: config.siiFields.map { _ in "id-\(rng.next() % 1000)" }, sis: values(.sis), su: values(.su),
                   days: (0..<days).map { _ in RawDay(dis: values(.dis), du: values(.du)) }, act: values(.act))
}

/// Item-days per second of the step alone and with the heads, for `network` and a batch of `raw` items.
@MainActor func rates(_ network: Network<Float>, _ raw: [RawItem]) -> (step: Double, withHeads: Double) {
    let items = raw.map { network.encode($0) }
    var batch = ItemBatch(network: network)
    for item in items { batch.append(item, network: network) }
    let x = items.flatMap(\.dayInputs)
    var scorer = Scorer(network: network, capacity: raw.count)
    let step = rate(perCall: Double(raw.count)) { scorer.advance(&batch, rows: raw.count, x: x) }
    let withHeads = rate(perCall: Double(raw.count)) {
        scorer.advance(&batch, rows: raw.count, x: x)
        _ = scorer.outputs(batch, rows: raw.count)
    }
    return (step, withHeads)
}

for batchSize in [1, 256] {
    let raw = (0..<batchSize).map { _ in randomItem(days: 1) }
    let plain = rates(network, raw), markets = rates(marketNetwork, raw), domain = rates(domainNetwork, raw)
    print(String(format: "%5d %20.0f %24.0f %29.0f %12.0f %34.0f", batchSize, plain.step, plain.withHeads, markets.step,
                 markets.withHeads, domain.withHeads))
}

// Building an item's static encodings (sii, sis, act; with domain-attention both gate units, o and its head
// term), once per item and whenever it is recomputed.
print("")
print("static encodings, items/s (batches of 256):   plain   with market-embedding   + domain-attention")
do {
    let raw = (0..<256).map { _ in randomItem(days: 1) }
    let perNetwork = [network, marketNetwork, domainNetwork].map { net in
        let items = raw.map { net.encode($0) }
        return rate(perCall: 256) {
            var batch = ItemBatch(network: net)
            batch.append(contentsOf: items, network: net)
        }
    }
    print(String(format: "%51.0f %23.0f %18.0f", perNetwork[0], perNetwork[1], perNetwork[2]))
}

// The ceiling: OpenBLAS alone on the shapes of one batched day (B = 256).
print("")
print("OpenBLAS sgemm alone, B = 256 rows:")
for (name, n, k) in [("recurrent z,r  [2H × H]", 256, 128), ("heads' fused first layer [4·H_k × R]", 512, 256)] {
    let a = [Float](repeating: 0.5, count: 256 * k), w = [Float](repeating: 0.25, count: n * k)
    var c = [Float](repeating: 0, count: 256 * n)
    let flops = rate(perCall: 2.0 * 256 * Double(n * k)) {
        Float.gemm(transA: false, transB: true, m: 256, n: n, k: k, alpha: 1, a, lda: k, w, ldb: k, beta: 0, &c, ldc: n)
    }
    print(String(format: "  %-40@ %6.1f GFLOP/s", name as NSString, flops / 1e9))
}

let trainingItems = quick ? 1000 : 10_000
let examples = (0..<trainingItems).map { i in
    TrainingExample(item: randomItem(days: 20), labels: ItemLabels(
        gmv: exp(5 + rng.normal()), bestSeller: i % 10 == 0, slot: 1 + i % 10, joinedActivity: i % 3 == 0))
}
var trainer = Trainer(model: model, options: TrainingOptions())
let epochSeconds = seconds { _ = trainer.epoch(examples) }
print("")
print(String(format: "training: %.1f s per epoch of %d items × 20 days (batch %d, Adagrad, dropout %.1f)%@",
             epochSeconds * Double(10_000 / trainingItems), 10_000, TrainingOptions().batchSize,
             TrainingOptions().loss.dropout, quick ? " (scaled from 1,000 items)" : ""))

// `promo-bench bop`: BOP.md candidate scorings per second on one core, the Swift side of Deploy/local/bop-bench.sh
// (whose PyTorch peer, Deploy/local/bop_torch_peer.py, reads the same weights and workload).
//
//   promo-bench bop [--weights FILE | --write-weights FILE] [--workload FILE] [--json FILE]
//                   [--candidates C] [--batches 1,100,1000] [--seconds S]
//
// The workload is a recommendation request: one user with 49 purchases (ACMR's n_max − 1) scored against a batch of
// C candidates, so C sequences of n = 50 tokens, each its own pass (BOP.md). The ids are drawn from a fixed seed;
// `--workload` writes them (and this side's P(buy) of the C candidates) as JSON for the peer. The timed work is
// `BOPNetwork<Float>.probabilities` over the C sequences, from item rows to P(buy): the ids are hashed to rows
// once, outside the loop, on both sides (a service hashes a user's history once per request, not per candidate).
import BOP
import DINOP
import Foundation

/// The user's history, the candidate pool and the market of the benchmark: the same on every run.
struct BOPWorkload: Codable {
    var market: String
    var history: [String]
    var candidates: [String]
    /// This side's P(buy) of `candidates[0..<scored]` (float32 forward), for the peer to compare.
    var p: [Double]
}

func bopBench(_ arguments: [String]) throws {
    let options = try benchOptions(arguments, known: ["weights", "write-weights", "workload", "json", "candidates", "batches", "seconds"],
                                   usage: "promo-bench bop [--weights FILE | --write-weights FILE] [--workload FILE] "
                                       + "[--json FILE] [--candidates C] [--batches 1,100,1000] [--seconds S]")
    let candidates = Int(options["candidates"] ?? "100") ?? 0
    let seconds = Double(options["seconds"] ?? "3") ?? 0
    var batches = try (options["batches"] ?? "1,100,1000").split(separator: ",").map { part in
        guard let b = Int(part), b >= 1 else { throw BenchError("--batches takes positive integers, got \(part)") }
        return b
    }
    guard candidates >= 1, seconds > 0 else { throw BenchError("--candidates and --seconds must be positive") }
    if !batches.contains(candidates) { batches.append(candidates) }
    batches.sort()

    // The model: read, or ACMR's sizes at PyTorch's initialisation (seed 1), written for the peer.
    let model: BOPModel
    if let path = options["weights"] {
        model = try BOPModel(contentsOf: URL(fileURLWithPath: path))
    } else {
        model = try BOPModel.random(config: .acmr, markets: ["de", "jp"], seed: 1)
    }
    if let path = options["write-weights"] {
        try model.safetensors().write(to: URL(fileURLWithPath: path))
    }
    let config = model.config
    let network = BOPNetwork<Float>(model)

    // One user in market "de": 49 purchases (repeats possible, as in a real history) and a pool of candidates.
    var rng = SeededGenerator(seed: 2)
    let pool = batches.last ?? candidates  // sorted, and holds `candidates`
    let historyIDs = (0..<(config.maxHistory - 1)).map { _ in "item-\(rng.next() % 50_000)" }
    let candidateIDs = (0..<pool).map { _ in "item-\(rng.next() % 50_000)" }
    let market = "de"
    let history = historyIDs.map { model.itemRow($0) }, candidateRows = candidateIDs.map { model.itemRow($0) }
    let marketIndex = model.marketIndex(market)
    func score(_ count: Int) -> [Double] {
        network.probabilities((0..<count).map { BOPSequence(history: history, candidate: candidateRows[$0], market: marketIndex) })
    }
    // The rows above are what `model.sequence(purchases:candidate:market:)` gives for these ids.
    let check = model.sequence(purchases: historyIDs, candidate: candidateIDs[0], market: market)
    guard check == BOPSequence(history: history, candidate: candidateRows[0], market: marketIndex) else {
        throw BenchError("the benchmark's sequences differ from BOPModel.sequence's")
    }

    let p = score(candidates)
    if let path = options["workload"] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(BOPWorkload(market: market, history: historyIDs, candidates: candidateIDs, p: p))
            .write(to: URL(fileURLWithPath: path))
    }

    print("BOP scoring benchmark (Swift, BOPNetwork<Float>): d = \(config.width), L = \(config.layers), "
          + "g = \(config.heads), d_ff = \(config.ffn), V_b = \(config.itemRows), history \(history.count) + candidate, "
          + "one OpenBLAS thread")
    print(BLAS.configuration)
    print("P(buy) of the first 5 candidates: " + p.prefix(5).map { String(format: "%.8f", $0) }.joined(separator: " "))
    print("batch   candidate scorings/s (best of 3 runs of \(seconds) s), per wall second, per CPU second")
    var wallRates: [String: Double] = [:], cpuRates: [String: Double] = [:]
    for batch in batches {
        let (best, bestCPU) = rates(perCall: Double(batch), budget: seconds) { _ = score(batch) }
        wallRates[String(batch)] = best
        cpuRates[String(batch)] = bestCPU
        print(String(format: "%5d   %14.0f   %14.0f", batch, best, bestCPU))
    }
    if let path = options["json"] {
        let object: [String: Any] = ["side": "swift", "rates": wallRates, "cpu_rates": cpuRates, "p": Array(p.prefix(5)),
                                     "batch": candidates, "history": history.count]
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
    }
}


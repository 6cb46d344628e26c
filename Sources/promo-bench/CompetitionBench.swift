// `promo-bench competition`: MARKETS.md competition's day close on one core, the Swift side of
// Deploy/local/competition-bench.sh (whose PyTorch peer, Deploy/local/competition_torch_peer.py, attends over the
// same vectors).
//
//   promo-bench competition [--items M] [--width F] [--markets K] [--industries I] [--threads T] [--vectors FILE]
//                           [--json FILE]
//
// One promotion: M items in I industries and K markets (item i in industry i mod I, market (i / I) mod K), every
// item seen, each `f` drawn as leaky_relu(N(0, 1)) from a fixed seed. The timed work is `CompetitionAttention`,
// one industry at a time on each of T threads (an industry stage's day close): every item's competitive attention
// over its market's group and, with K > 1, its cooperative attention over the industry's other markets.
// `--vectors` writes the f's and this side's attended vectors of the first items (float32, raw) for the peer.
import DINOP
import Foundation
import Synchronization

func competitionBench(_ arguments: [String]) throws {
    let options = try benchOptions(arguments, known: ["items", "width", "markets", "industries", "threads", "vectors", "json"],
                                   usage: "promo-bench competition [--items M] [--width F] [--markets K] [--industries I] "
                                       + "[--threads T] [--vectors FILE] [--json FILE]")
    let items = Int(options["items"] ?? "100000") ?? 0, width = Int(options["width"] ?? "32") ?? 0
    let markets = Int(options["markets"] ?? "1") ?? 0, industries = Int(options["industries"] ?? "1") ?? 0
    let threads = Int(options["threads"] ?? "1") ?? 0
    guard (1...10_000_000).contains(items), (1...4_096).contains(width), (1...1_000).contains(markets),
          (1...100_000).contains(industries), (1...256).contains(threads) else {
        throw BenchError("--items 1…10,000,000, --width 1…4,096, --markets 1…1,000, --industries 1…100,000, --threads 1…256")
    }
    var rng = SeededGenerator(seed: 7)
    var f = [Float](repeating: 0, count: items * width)
    for j in f.indices {
        // Box–Muller from two uniforms in (0, 1].
        let u = (Double(rng.next() >> 11) + 1) / 9_007_199_254_740_992, v = Double(rng.next() >> 11) / 9_007_199_254_740_992
        let x = Float((-2 * Foundation.log(u)).squareRoot() * cos(2 * .pi * v))
        f[j] = x < 0 ? 0.01 * x : x
    }
    // Each industry's items and their f, as the stage instance that owns it holds them.
    let members = (0..<industries).map { industry in Array(stride(from: industry, to: items, by: industries)) }
    let parts = members.map { indices in
        (f: indices.flatMap { f[($0 * width)..<(($0 + 1) * width)] },
         keys: indices.map { CompetitionKey(promotion: "p", market: "m\(($0 / industries) % markets)", industry: "i") })
    }
    let before = peakResidentBytes()
    let results = IndustryResults(count: industries)
    let start = DispatchTime.now().uptimeNanoseconds
    let next = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: threads) { _ in
        while true {
            let industry = next.add(1, ordering: .relaxed).oldValue
            guard industry < industries else { return }
            let part = parts[industry]
            results.store(industry, CompetitionAttention(f: part.f, width: width, keys: part.keys,
                                                         seen: [Bool](repeating: true, count: part.keys.count),
                                                         cooperation: markets > 1))
        }
    }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let peak = peakResidentBytes()
    // Per industry, competitive M_m² per market plus cooperative M_m (M − M_m): M² item pairs in all.
    let pairs = members.reduce(0.0) { $0 + Double($1.count) * Double($1.count) }
    let largest = members.map(\.count).max() ?? 0
    let line = String(format: "competition day close: %d items, %d market(s) × %d industr%@, F = %d, %d thread(s): %.2f s (%.2f G item pairs/s); peak resident %.0f MiB (%.0f MiB before; an M × M float32 matrix of the largest industry would be %.1f GiB)",
                      items, markets, industries, industries == 1 ? "y" : "ies", width, threads, elapsed, pairs / elapsed / 1e9,
                      Double(peak) / 1_048_576, Double(before) / 1_048_576, Double(largest) * Double(largest) * 4 / 1_073_741_824)
    print(line)
    let attended = results.take(0)
    if let path = options["vectors"] {
        // f (M × F), then a and q of the first min(M, 256) items.
        let checked = min(members[0].count, 256)
        var bytes = Data()
        for part in [parts[0].f, Array(attended.a[0..<(checked * width)]), Array(attended.q[0..<(checked * width)])] {
            part.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        try bytes.write(to: URL(fileURLWithPath: path))
    }
    if let path = options["json"] {
        let json: [String: Any] = ["items": items, "width": width, "markets": markets, "industries": industries, "threads": threads, "seconds": elapsed,
                                   "peak_bytes": peak, "bytes_before": before]
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
    }
}

/// One slot per industry, each written by one worker and read after all have finished.
final class IndustryResults: @unchecked Sendable {
    private var slots: [CompetitionAttention<Float>?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func store(_ k: Int, _ result: CompetitionAttention<Float>) { lock.withLock { slots[k] = result } }
    func take(_ k: Int) -> CompetitionAttention<Float> { lock.withLock { slots[k] } ?? CompetitionAttention(f: [], width: 1, keys: [], seen: [], cooperation: false) }
}

/// The process's peak resident set (VmHWM), in bytes; 0 where /proc does not say.
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1_024
    }
    return 0
}

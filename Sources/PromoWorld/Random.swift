import Foundation

/// xoshiro256**, seeded through SplitMix64: fast, and the same stream on every platform, so a world is
/// reproducible from its seed.
struct WorldRandom: RandomNumberGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64, stream: UInt64 = 0) {
        var x = seed ^ (stream &* 0x9E37_79B9_7F4A_7C15)
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * unit() }

    /// Standard normal (Box–Muller; one of the pair is dropped for simplicity).
    mutating func normal() -> Double {
        let u = max(unit(), 1e-300)
        return (-2 * Foundation.log(u)).squareRoot() * cos(2 * Double.pi * unit())
    }

    /// Poisson: inversion for small means, a rounded normal approximation for large ones.
    mutating func poisson(_ mean: Double) -> Int {
        guard mean > 0 else { return 0 }
        if mean > 30 { return max(0, Int((mean + mean.squareRoot() * normal()).rounded())) }
        var k = 0
        var p = exp(-mean), cumulative = p
        let u = unit()
        while u > cumulative && k < 200 {
            k += 1
            p *= mean / Double(k)
            cumulative += p
        }
        return k
    }

    /// Gamma(shape, 1) by Marsaglia–Tsang (shape < 1 boosted).
    mutating func gamma(_ shape: Double) -> Double {
        if shape < 1 { return gamma(shape + 1) * pow(max(unit(), 1e-300), 1 / shape) }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = normal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = unit()
            if u < 1 - 0.0331 * x * x * x * x || Foundation.log(u) < 0.5 * x * x + d * (1 - v + Foundation.log(v)) {
                return d * v
            }
        }
    }

    /// Dirichlet with the given concentration per component.
    mutating func dirichlet(_ alpha: [Double]) -> [Double] {
        let draws = alpha.map { gamma($0) }
        let total = draws.reduce(0, +)
        return draws.map { $0 / total }
    }

    mutating func sigmoid(_ x: Double) -> Bool { unit() < 1 / (1 + exp(-x)) }
}

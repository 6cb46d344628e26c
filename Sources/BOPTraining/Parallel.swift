import Foundation
import Synchronization

/// Runs `body` on `parts` contiguous slices of `0 ..< count` at once and returns each slice's result, in order.
func inParallel<R: Sendable>(_ count: Int, parts: Int, _ body: @Sendable (Range<Int>) -> R) -> [R] {
    let parts = Swift.max(1, Swift.min(parts, count))
    guard parts > 1 else { return [body(0..<count)] }
    let results = Mutex([R?](repeating: nil, count: parts))
    DispatchQueue.concurrentPerform(iterations: parts) { p in
        let range = (count * p / parts)..<(count * (p + 1) / parts)
        let result = body(range)
        results.withLock { $0[p] = result }
    }
    return results.withLock { $0.compactMap { $0 } }
}

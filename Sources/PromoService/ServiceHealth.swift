import CoreMetrics
import Synchronization

/// What the member's probes answer: alive while its loop runs; ready once it has joined its group and every
/// partition it was assigned is restored from the changelog and consuming (false again while a rebalance restores,
/// while it rewinds after a failed batch, and once it stops). Written by the member's thread, read by the HTTP
/// server's.
public final class ServiceHealth: Sendable {
    private let state = Mutex(Snapshot())
    private let readyGauge = Gauge(label: "promo_ready")
    /// When the member's loop last went round (or a restore read a batch): what a watchdog checks for progress.
    private let lastBeat = Mutex<ContinuousClock.Instant?>(nil)

    public struct Snapshot: Sendable, Equatable {
        public var alive = false
        public var ready = false
        /// Assigned partitions of the input topics (by number), and those of them restored.
        public var assigned: [Int32] = []
        public var restored: [Int32] = []
        /// Why it is not ready, when it is not.
        public var waitingFor = "starting"
    }

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// The loop made progress: called once per round and per batch a restore reads.
    public func beat() {
        let now = ContinuousClock.now
        lastBeat.withLock { $0 = now }
    }

    /// Seconds since the loop's last `beat`; nil before its first (the member is still starting).
    public var secondsSinceBeat: Double? {
        guard let last = lastBeat.withLock({ $0 }) else { return nil }
        let since = (ContinuousClock.now - last).components
        return Double(since.seconds) + Double(since.attoseconds) / 1e18
    }

    func update(_ change: (inout Snapshot) -> Void) {
        let ready = state.withLock { snapshot in
            change(&snapshot)
            snapshot.ready = snapshot.alive && snapshot.waitingFor.isEmpty
            return snapshot.ready
        }
        readyGauge.record(ready ? 1 : 0)
    }
}

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

    /// The roles of one process, when this is their combined view (`init(combining:)`).
    private let parts: [(role: String, health: ServiceHealth)]

    public init() { parts = [] }

    /// The members of one process (its roles) seen as one: alive and ready when each is, waiting for what each
    /// waits for (named by role); the partitions are the first's.
    public init(combining parts: [(role: String, health: ServiceHealth)]) { self.parts = parts }

    public var snapshot: Snapshot {
        guard !parts.isEmpty else { return state.withLock { $0 } }
        let snapshots = parts.map { ($0.role, $0.health.snapshot) }
        var combined = Snapshot()
        combined.alive = snapshots.allSatisfy { $0.1.alive }
        combined.ready = snapshots.allSatisfy { $0.1.ready }
        (combined.assigned, combined.restored) = (snapshots.first?.1.assigned ?? [], snapshots.first?.1.restored ?? [])
        combined.waitingFor = snapshots.filter { !$0.1.ready }.map { "\($0.0): \($0.1.waitingFor)" }.joined(separator: "; ")
        return combined
    }

    /// The loop made progress: called once per round and per batch a restore reads.
    public func beat() {
        let now = ContinuousClock.now
        lastBeat.withLock { $0 = now }
    }

    /// Seconds since the loop's last `beat`; nil before its first (the member is still starting).
    public var secondsSinceBeat: Double? {
        if !parts.isEmpty {
            let each = parts.map(\.health.secondsSinceBeat)
            return each.contains { $0 == nil } ? nil : each.compactMap { $0 }.max()
        }
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

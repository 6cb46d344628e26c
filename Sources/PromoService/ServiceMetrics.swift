import CoreMetrics
import Foundation
import PromoKafka
import PromoStream

/// The member's metrics, through swift-metrics: whichever backend the process bootstrapped (Prometheus on
/// `/metrics` for `promo run`; none, so free, in tests of the processor). Names follow Prometheus conventions;
/// README "Operations" lists them.
struct ServiceMetrics {
    let batchMessages = Recorder(label: "promo_batch_messages")
    let processing = CoreMetrics.Timer(label: "promo_batch_processing_seconds")
    let eventToCommit = CoreMetrics.Timer(label: "promo_event_to_commit_seconds")
    let modelVersion = Gauge(label: "promo_model_version")
    let recomputeBacklog = Gauge(label: "promo_recompute_backlog")
    let restoreDuration = CoreMetrics.Timer(label: "promo_restore_seconds")
    let restores = Counter(label: "promo_restores_total")
    let restoredRecords = Counter(label: "promo_restored_records_total")
    let swaps = Counter(label: "promo_model_swaps_total")
    let refusals = Counter(label: "promo_model_refusals_total")
    let failedBatches = Counter(label: "promo_failed_batches_total")
    let clusterErrors = Counter(label: "promo_kafka_errors_total")
    let hotItems = Gauge(label: "promo_state_items", dimensions: [("form", "hot")])
    let compactItems = Gauge(label: "promo_state_items", dimensions: [("form", "compact")])
    let compactBytes = Gauge(label: "promo_state_compact_bytes")
    let residentBytes = Gauge(label: "promo_process_resident_bytes")
    /// MARKETS.md `competition`: pre-sale days the industry stage closed (committed; one per stage partition that
    /// closed it), vectors of days it had closed
    /// already (late days), and the item role's contexts left unpublished (another model version, or a day's close
    /// published already).
    let daysClosed = Counter(label: "promo_days_closed_total")
    let lateVectors = Gauge(label: "promo_competition_late_vectors")
    let unpublishedContexts = Gauge(label: "promo_competition_unpublished_contexts")

    func inputs(_ count: Int, topic: String) {
        Counter(label: "promo_input_messages_total", dimensions: [("topic", topic)]).increment(by: count)
    }

    func outputs(_ count: Int, kind: String) {
        Counter(label: "promo_output_records_total", dimensions: [("kind", kind)]).increment(by: count)
    }

    func deadLetter(cause: String) {
        Counter(label: "promo_dead_letters_total", dimensions: [("cause", cause)]).increment()
    }

    func transactionPhase(_ phase: String, _ duration: Duration) {
        CoreMetrics.Timer(label: "promo_transaction_phase_seconds", dimensions: [("phase", phase)])
            .recordNanoseconds(duration.nanoseconds)
    }

    func rebalance(_ event: String) {
        Counter(label: "promo_rebalances_total", dimensions: [("event", event)]).increment()
    }

    func lag(_ lag: Int64, of tp: TopicPartition) {
        Gauge(label: "promo_consumer_lag", dimensions: [("topic", tp.topic), ("partition", String(tp.partition))])
            .record(lag)
    }

    /// The sizes of the processor's state, and of the process.
    func state(_ processor: ShardedProcessor) {
        let sizes = processor.stateSizes
        hotItems.record(sizes.hot)
        compactItems.record(sizes.compact)
        compactBytes.record(sizes.compactBytes)
        recomputeBacklog.record(processor.staleCount)
        if let resident = Self.residentBytes() { residentBytes.record(resident) }
    }

    /// Resident set size from /proc (Linux); nil elsewhere.
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        return pageSize > 0 ? pages * pageSize : nil
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : whole &+ attoseconds / 1_000_000_000
    }
}

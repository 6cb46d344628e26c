/// Something a member did or saw that an operator, a test or a benchmark may wait for: a name, typed fields, and the
/// line a person reads. The member hands each to its `events` callback; `promo run` logs it with `event=<name>`
/// and the fields as metadata (in `--log-format json`, keys of the line's object), so a program reads the fields,
/// never the prose.
public struct ServiceEvent: Sendable, Equatable {
    public enum Level: Sendable, Equatable { case info, warning, error }

    public let name: String
    public let fields: [String: String]
    public let message: String
    public let level: Level

    init(_ name: String, _ message: String) { self.init(name, [:], message) }

    init(_ name: String, _ fields: [String: String], level: Level = .info, _ message: String) {
        self.name = name
        self.fields = fields
        self.message = message
        self.level = level
    }

    /// A line with nothing to wait for (a warning, a periodic summary).
    public static func note(_ message: String, level: Level = .info) -> ServiceEvent { ServiceEvent("note", [:], level: level, message) }

    static func list(_ partitions: some Sequence<Int32>) -> String { partitions.sorted().map(String.init).joined(separator: ",") }
}

extension ServiceEvent {
    static func servingModel(_ version: Int) -> ServiceEvent {
        ServiceEvent("serving_model", ["version": "\(version)"], "serving model version \(version)")
    }

    static func subscribed(member: String, group: String, mode: String, librdkafka: String, instance: String) -> ServiceEvent {
        ServiceEvent("subscribed", ["mode": mode, "instance": instance],
                     "member \(member) of group \(group) subscribed (\(mode), librdkafka \(librdkafka), transactions named …/\(instance)/<n>)")
    }

    /// Partitions assigned and restored: changelog records restored, items in state after it, and the records
    /// skipped by why (`skipped_uncommitted`: of transactions that did not commit, `skipped_other_application`,
    /// `skipped_inconsistent`: not fitting the model).
    static func assigned(_ partitions: Set<Int32>, records: Int, items: Int, seconds: Double, skipped: RestoreSkips) -> ServiceEvent {
        ServiceEvent("assigned", ["partitions": list(partitions), "records": "\(records)", "items": "\(items)",
                                  "seconds": String(format: "%.3f", seconds),
                                  "skipped_uncommitted": "\(skipped.uncommitted)",
                                  "skipped_other_application": "\(skipped.otherApplication)",
                                  "skipped_inconsistent": "\(skipped.inconsistent)"],
                     "assigned partitions \(partitions.sorted()): restored \(records) changelog records (\(items) items) in "
                        + String(format: "%.2f s", seconds) + skipped.summary)
    }

    /// A restore in progress (every `--stats-seconds`): changelog records read of those there were when it began,
    /// the rate, and the time left at that rate.
    static func restoring(_ partitions: Set<Int32>, read: Int, total: Int, seconds: Double) -> ServiceEvent {
        let rate = seconds > 0 ? Double(read) / seconds : 0
        let left = rate > 0 ? Double(max(total - read, 0)) / rate : 0
        return ServiceEvent("restoring", ["partitions": list(partitions), "read": "\(read)", "total": "\(total)",
                                          "records_per_second": String(format: "%.0f", rate),
                                          "eta_seconds": String(format: "%.0f", left)],
                            "restoring partitions \(partitions.sorted()): \(read) of \(total) changelog records, "
                                + String(format: "%.0f records/s, about %.0f s left", rate, left))
    }

    static func restoreTimedOut(_ partitions: Set<Int32>, seconds: Double) -> ServiceEvent {
        ServiceEvent("restore_timed_out", ["partitions": list(partitions), "seconds": String(format: "%.0f", seconds)],
                     level: .error, "restoring partitions \(partitions.sorted()) took longer than " + String(format: "%.0f s", seconds))
    }

    static func gaveUpWaiting(rejoins: Int, reason: String) -> ServiceEvent {
        ServiceEvent("gave_up_waiting", ["rejoins": "\(rejoins)"], level: .error, reason)
    }

    static func revoked(_ partitions: Set<Int32>) -> ServiceEvent {
        ServiceEvent("revoked", ["partitions": list(partitions)], "revoked partitions \(partitions.sorted())")
    }

    static func batchFailed(_ failures: Int, _ error: any Error) -> ServiceEvent {
        ServiceEvent("batch_failed", ["in_a_row": "\(failures)", "error": "\(error)"], level: .warning,
                     "batch failed (\(failures) in a row), will rewind to the committed state: \(error)")
    }

    static func rewound(_ partitions: Int) -> ServiceEvent {
        ServiceEvent("rewound", ["partitions": "\(partitions)"], "rewound \(partitions) partitions to their committed offsets")
    }

    static func stopping() -> ServiceEvent { ServiceEvent("stopping", "stopping: leaving the group") }

    static func stopped(messages: Int) -> ServiceEvent {
        ServiceEvent("stopped", ["messages": "\(messages)"], "stopped after \(messages) messages")
    }

    static func waitingForAssignment(seconds: Double, group: String, rejoinAfter: Double) -> ServiceEvent {
        ServiceEvent("waiting_for_assignment", ["seconds": String(format: "%.0f", seconds)],
                     String(format: "waiting %.0f s for group %@ to assign partitions (a member that left uncleanly keeps its partitions until its session.timeout.ms runs out; rejoining after %.0f s)",
                            seconds, group, rejoinAfter))
    }

    static func rejoining(after seconds: Int, group: String, attempt: Int, of attempts: Int) -> ServiceEvent {
        ServiceEvent("rejoining", ["attempt": "\(attempt)", "of": "\(attempts)"], level: .warning,
                     "no assignment after \(seconds) s: leaving and joining group \(group) again (attempt \(attempt) of \(attempts))")
    }

    static func createdChangelog(_ topic: String, partitions: Int, group: String) -> ServiceEvent {
        ServiceEvent("created_changelog", ["topic": topic, "partitions": "\(partitions)"],
                     "created the changelog topic \(topic) (\(partitions) partitions, compacted) for application \(group)")
    }

    /// The background recomputation after a switch is over: `items` were queued, `skipped` of them left as they
    /// were (a version that changed only other markets' columns predicts them bit-identically).
    static func recomputed(items: Int, skipped: Int, version: Int, seconds: Double) -> ServiceEvent {
        ServiceEvent("recomputed", ["items": "\(items - skipped)", "skipped": "\(skipped)", "version": "\(version)"],
                     String(format: "recomputed %d items under model version %d in %.2f s", items - skipped, version, seconds)
                        + (skipped > 0 ? " (\(skipped) left as they were: their markets' columns did not change)" : ""))
    }

    static func switchedModel(from previous: Int, to version: Int, parent: Int?, sha256: String, recompute: Int,
                              what: String = "items") -> ServiceEvent {
        ServiceEvent("switched_model", ["from": "\(previous)", "to": "\(version)", "recompute": "\(recompute)"],
                     "switched from model version \(previous) to \(version) (parent \(parent.map(String.init) ?? "none"), sha256 \(sha256.prefix(12))…); \(recompute) \(what) to recompute in the background")
    }

    static func refusedModel(_ version: Int, reason: String, serving: Int) -> ServiceEvent {
        ServiceEvent("refused_model", ["version": "\(version)", "reason": reason, "serving": "\(serving)"], level: .warning,
                     "refused model version \(version): \(reason); still serving version \(serving)")
    }

    static func modelUnreadable(_ version: Int, _ error: any Error) -> ServiceEvent {
        ServiceEvent("model_unreadable", ["version": "\(version)", "error": "\(error)"], level: .warning,
                     "model version \(version): cannot read its chunks yet (\(error)); will try again")
    }

    static func poisonPill(topic: String, partition: Int32, offset: Int64, reason: String) -> ServiceEvent {
        ServiceEvent("poison_pill", ["topic": topic, "partition": "\(partition)", "offset": "\(offset)"], level: .warning,
                     "dead-lettering \(topic) partition \(partition) offset \(offset): \(reason)")
    }

    static func fenced(member: String) -> ServiceEvent {
        ServiceEvent("fenced_transaction", ["of_member": member],
                     "ended the transaction member \(member) left open on partitions this member owns now")
    }

    /// What was in flight when the last run died: one record alone (`alone_crashes`: at how many crashes it was
    /// alone in flight) or a batch (processed one record at a time until it commits).
    static func crashSuspect(_ message: String, offsets: Int, aloneCrashes: Int?) -> ServiceEvent {
        var fields = ["offsets": "\(offsets)"]
        if let aloneCrashes { fields["alone_crashes"] = "\(aloneCrashes)" }
        return ServiceEvent("crash_suspect", fields, level: .warning, message)
    }

    /// The industry stage closed pre-sale days (MARKETS.md `competition`) in its partitions: their contexts are in the
    /// transaction about to commit. `days`: per promotion, the days as ranges (`double11-2026:3-5`).
    static func closingDays(_ closed: [(promotion: String, day: Int, items: Int)]) -> ServiceEvent {
        var byPromotion: [String: Set<Int>] = [:]
        for c in closed { byPromotion[c.promotion, default: []].insert(c.day) }
        let days = byPromotion.keys.sorted().map { promotion in
            var ranges: [ClosedRange<Int>] = []
            for day in (byPromotion[promotion] ?? []).sorted() {
                if let last = ranges.last, last.upperBound + 1 == day { ranges[ranges.count - 1] = last.lowerBound...day } else { ranges.append(day...day) }
            }
            return promotion + ":" + ranges.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
        }.joined(separator: " ")
        let items = closed.reduce(0) { $0 + $1.items }
        return ServiceEvent("closing_days", ["days": days, "items": "\(items)"],
                            "closing pre-sale days \(days): contexts for \(items) items, committing")
    }
    static func stats(_ message: String) -> ServiceEvent { ServiceEvent("stats", message) }

    static func heartbeat(seconds: Double, lag: Int64, partitions: Int, deadLetters: Int, waitingFor: String) -> ServiceEvent {
        ServiceEvent("heartbeat", ["lag": "\(lag)", "partitions": "\(partitions)", "dead_letters": "\(deadLetters)",
                                   "waiting_for": waitingFor],
                     String(format: "idle for %.0f s: lag %lld over %d partitions, %d dead letters since start, waiting for %@",
                            seconds, lag, partitions, deadLetters, waitingFor))
    }

    static func clusterErrors(count: Int, latest: any Error) -> ServiceEvent {
        ServiceEvent("kafka_errors", ["count": "\(count)", "latest": "\(latest)"], level: .warning,
                     "\(count) errors from the cluster that librdkafka retries (latest: \(latest))")
    }
}

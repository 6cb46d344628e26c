import Foundation
import PromoKafka

/// Keeps a member out of a crash loop on one record (a poison pill): restarted, it would restore, read the same
/// record and die again, and every partition it owns would stop for good.
///
/// Before a batch is processed, the offsets it spans are written to a small file (atomically, by rename: a
/// SIGKILL leaves either the old file or the new one); after the batch commits they are cleared. A start that
/// finds offsets still in flight knows the last run died on them:
/// - a batch of several records makes them *suspects*: the next run processes them one record per transaction;
/// - a record alone in flight at a crash counts one death on it; at two, the next run dead-letters it without
///   processing it (`poisonReason`) and goes on. A poison pill in a batch thus costs three crashes.
/// Graceful stops and failed batches (a broker error) clear the offsets: only a death leaves them.
final class CrashGuard {
    struct Range: Codable, Equatable {
        var topic: String
        var partition: Int32
        var first: Int64
        var last: Int64

        func contains(_ message: KafkaMessage) -> Bool { covers(message.topic, message.partition, message.offset) }

        func covers(_ topic: String, _ partition: Int32, _ offset: Int64) -> Bool {
            topic == self.topic && partition == self.partition && (first...last).contains(offset)
        }
    }

    struct Ledger: Codable, Equatable {
        /// What the running batch spans (empty between batches).
        var inflight: [Range] = []
        /// Records of batches that were in flight at a crash: processed one at a time until they commit.
        var suspects: [Range] = []
        /// Records that were alone in flight at a crash, with how often.
        var crashes: [Range: Int] = [:]
    }

    let file: URL
    private(set) var ledger: Ledger

    /// Reads the ledger left by the last run (none: a clean start) and turns what was in flight into suspects or
    /// crash counts. Throws when the folder cannot hold the file: better a clear error at start than no guard.
    init(file: URL, events: (ServiceEvent) -> Void) throws {
        self.file = file
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let data = try? Data(contentsOf: file) {
            do {
                ledger = try JSONDecoder().decode(Ledger.self, from: data)
            } catch {
                events(.note("crash marker \(file.path) is unreadable (\(error)); starting without it", level: .warning))
                ledger = Ledger()
            }
        } else {
            ledger = Ledger()
        }
        let inflight = ledger.inflight
        ledger.inflight = []
        if inflight.count == 1, let only = inflight.first, only.first == only.last {
            ledger.crashes[only, default: 0] += 1
            events(.crashSuspect("the last run died processing \(only.topic) partition \(only.partition) offset \(only.first) alone; it has been alone in flight at \(crashCount(only)) crashes",
                                 offsets: 1, aloneCrashes: crashCount(only)))
        } else if !inflight.isEmpty {
            ledger.suspects += inflight
            let count = inflight.reduce(0) { $0 + Int($1.last - $1.first + 1) }
            events(.crashSuspect("the last run died processing a batch of \(count) offsets (\(inflight.map { "\($0.topic)[\($0.partition)] \($0.first)...\($0.last)" }.joined(separator: ", "))); they are processed one at a time until they commit",
                                 offsets: count, aloneCrashes: nil))
        }
        try save()
    }

    /// At how many crashes the record was alone in flight. A crash in a batch blames none of its records: a
    /// SIGKILL from outside (an eviction, a chaos run) lands in some batch, and may land again while its records
    /// are retried one at a time; counting that as a death on the record would dead-letter valid input.
    private func crashCount(_ record: Range) -> Int { ledger.crashes[record] ?? 0 }

    /// Nothing is left over from an earlier crash.
    var isClean: Bool { ledger.suspects.isEmpty && ledger.crashes.isEmpty }

    /// Whether any of these messages must be processed one at a time.
    func needsIsolation(_ messages: [KafkaMessage]) -> Bool {
        guard !ledger.suspects.isEmpty || !ledger.crashes.isEmpty else { return false }
        return messages.contains { m in ledger.suspects.contains { $0.contains(m) } || ledger.crashes.keys.contains { $0.contains(m) } }
    }

    /// Why this message is skipped as a poison pill, or nil to process it.
    func poisonReason(_ message: KafkaMessage) -> String? {
        let record = Range(topic: message.topic, partition: message.partition, first: message.offset, last: message.offset)
        let crashes = crashCount(record)
        guard crashes >= 2 else { return nil }
        return "poison pill: the member died \(crashes) times while this record was in flight alone; skipped without processing"
    }

    /// Marks these messages in flight.
    func begin(_ messages: [KafkaMessage]) throws {
        guard !messages.isEmpty else { return }
        var spans: [TopicPartition: (Int64, Int64)] = [:]
        for m in messages {
            let span = spans[m.topicPartition] ?? (m.offset, m.offset)
            spans[m.topicPartition] = (min(span.0, m.offset), max(span.1, m.offset))
        }
        ledger.inflight = spans.map { Range(topic: $0.key.topic, partition: $0.key.partition, first: $0.value.0, last: $0.value.1) }
            .sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        try save()
    }

    /// Nothing in flight any more (the batch committed, or failed without a crash); suspects and crash counts
    /// below `committed` (the next offsets to read) are forgotten.
    func end(committed: [TopicPartition: Int64] = [:]) throws {
        let hadWork = !ledger.inflight.isEmpty
        ledger.inflight = []
        try forget(below: committed, save: hadWork)
    }

    /// Suspects and crash counts below these offsets are done with (another member may have processed them).
    func forget(below committed: [TopicPartition: Int64], save mustSave: Bool = false) throws {
        let before = ledger
        if !committed.isEmpty {
            ledger.suspects = ledger.suspects.compactMap { range in
                guard let next = committed[TopicPartition(range.topic, range.partition)], next > range.first else { return range }
                guard next <= range.last else { return nil }
                var rest = range
                rest.first = next
                return rest
            }
            ledger.crashes = ledger.crashes.filter { (committed[TopicPartition($0.key.topic, $0.key.partition)] ?? 0) <= $0.key.first }
        }
        if mustSave || ledger != before { try save() }
    }

    private func save() throws {
        if ledger == Ledger() {
            if FileManager.default.fileExists(atPath: file.path) { try FileManager.default.removeItem(at: file) }
        } else {
            try JSONEncoder().encode(ledger).write(to: file, options: .atomic)
        }
    }
}

extension CrashGuard.Range: Hashable {}

import Foundation
import PromoEvents
import PromoFeatures
import PromoKafka
import PromoStream

/// A group's predictions and dead letters as a read_committed reader of Apache Kafka sees them, on any broker:
/// a record counts when the transaction named in its `promo-txn` header is on a changelog partition's commit
/// chain (`CommitChain`, walked back from the group's committed changelog offsets). The local broker shows records
/// of aborted transactions; these are counted apart, never as outputs.
public struct CommittedOutputs: Sendable {
    public var predictions: [PredictionEvent] = []
    /// The transaction (its `promo-txn` id) of each prediction, in the same order.
    public var predictionTransactions: [String] = []
    public var deadLetters: [DeadLetter] = []
    /// Transactions on a commit chain, and all transactions seen in the records.
    public var committedTransactions = 0, seenTransactions = 0
    /// Output records of transactions that did not commit.
    public var uncommittedRecords = 0
    /// Output records no chain can judge (no header, or below where a chain was cut by compaction): should be 0
    /// on topics this build wrote.
    public var undecidedRecords = 0

    public init() {}

    /// Reads the topics to their current ends.
    public static func read(kafka: KafkaConfig, topics: ServiceTopics, group: String) throws -> CommittedOutputs {
        var config = kafka
        config["group.id"] = group
        config["enable.partition.eof"] = "true"
        config["isolation.level"] = "read_uncommitted"
        let admin = try KafkaAdmin(kafka)
        let changelogPartitions = try admin.partitionCount(topics.changelog) ?? 0
        let reader = try KafkaConsumer(config)
        defer { try? reader.close() }
        let changelogs = (0..<Int32(changelogPartitions)).map { TopicPartition(topics.changelog, $0) }
        let ends = try reader.committed(changelogs)

        var starts: [TopicPartition: Int64] = [:]
        for topic in [topics.changelog, topics.predictions, topics.deadLetter] {
            for p in 0..<Int32(try admin.partitionCount(topic) ?? 0) {
                let tp = TopicPartition(topic, p)
                let (low, high) = try reader.watermarks(tp)
                if high > low { starts[tp] = KafkaOffset.beginning }
            }
        }
        var links: [Int32: [Int64: CommitLink]] = [:]
        var outputs: [KafkaMessage] = []
        var seen = Set<[UInt8]>()
        try reader.readToEnd(from: starts) { messages in
            for m in messages {
                if let transaction = m.header(CommitLink.header) { seen.insert(transaction) }
                if m.topic == topics.changelog {
                    if let link = CommitLink.decode(m.value), link.application == group { links[m.partition, default: [:]][m.offset] = link }
                } else {
                    outputs.append(m)
                }
            }
        }
        var committed = Set<[UInt8]>()
        var whole = true
        for tp in changelogs {
            let chain = CommitChain(end: max(ends[tp] ?? -1, -1), links: links[tp.partition] ?? [:])
            committed.formUnion(chain.committed)
            whole = whole && chain.knownFrom == 0
        }

        var result = CommittedOutputs()
        result.committedTransactions = committed.count
        result.seenTransactions = seen.count
        let decoder = EventDecoder()
        for m in outputs {
            guard let transaction = m.header(CommitLink.header), whole else {
                result.undecidedRecords += 1
                continue
            }
            guard committed.contains(transaction) else {
                result.uncommittedRecords += 1
                continue
            }
            switch try? decoder.decode(m.value) {
            case .prediction(let p)?:
                result.predictions.append(p)
                result.predictionTransactions.append(String(decoding: transaction, as: UTF8.self))
            case .deadLetter(let d)?: result.deadLetters.append(d)
            default: result.undecidedRecords += 1
            }
        }
        return result
    }

    /// Exactly once, item by item: (item, sequence) pairs committed more than once, and sequence numbers missing
    /// below an item's highest.
    public var sequenceFaults: (duplicates: Int, gaps: Int) {
        var sequences: [ItemKey: [Int]] = [:]
        for p in predictions {
            sequences[ItemKey(promotionID: p.promotionID, itemID: p.itemID), default: []].append(p.sequence ?? 0)
        }
        var duplicates = 0, gaps = 0
        for list in sequences.values {
            let distinct = Set(list)
            duplicates += list.count - distinct.count
            gaps += (distinct.max() ?? 0) - distinct.filter { $0 >= 1 }.count
        }
        return (duplicates, gaps)
    }

    /// (item, sequence) pairs committed more than once, with the transactions that committed them.
    public var duplicated: [(item: ItemKey, sequence: Int, transactions: [String])] {
        struct Pair: Hashable { let item: ItemKey, sequence: Int }
        var seen: [Pair: [String]] = [:]
        for (p, transaction) in zip(predictions, predictionTransactions) {
            seen[Pair(item: ItemKey(promotionID: p.promotionID, itemID: p.itemID), sequence: p.sequence ?? 0), default: []]
                .append(transaction)
        }
        return seen.filter { $0.value.count > 1 }.map { ($0.key.item, $0.key.sequence, $0.value) }
            .sorted { ($0.item, $0.sequence) < ($1.item, $1.sequence) }
    }

    /// Each item's committed prediction with the highest sequence number.
    public var latest: [ItemKey: PredictionEvent] {
        var latest: [ItemKey: PredictionEvent] = [:]
        for p in predictions {
            let key = ItemKey(promotionID: p.promotionID, itemID: p.itemID)
            if (latest[key]?.sequence ?? Int.min) < (p.sequence ?? 0) { latest[key] = p }
        }
        return latest
    }

    /// Inputs (topic, partition, offset) dead-lettered more than once.
    public var deadLetteredTwice: Int {
        var sources: [String: Int] = [:]
        for d in deadLetters { sources["\(d.sourceTopic)/\(d.partition)/\(d.offset)", default: 0] += 1 }
        return sources.values.filter { $0 > 1 }.count
    }
}

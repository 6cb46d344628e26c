/// The record a transaction writes last to each changelog partition it touches (consumed from, or wrote state or
/// outputs for); its offset + 1 commits with the group's input offsets as that changelog partition's offset. It
/// names the transaction and the partition's committed end when the transaction began, so a partition's committed
/// transactions are found by walking back from its committed end (`CommitChain`), on any broker: the local one
/// shows records of aborted transactions to read_committed readers. Every record the transaction writes carries
/// its id in the `promo-txn` header.
public struct CommitLink: Sendable, Equatable {
    public static let header = "promo-txn"
    /// The links' key: compaction keeps only the newest, which is all a broker that hides aborted records needs.
    public static let key: [UInt8] = Array("~commit".utf8)
    /// The first byte of a link's value, which no `StateCodec` layout uses.
    static let layout: UInt8 = 0xC1

    public var application: String
    public var transaction: [UInt8]
    /// The partition's committed end (the offset after the last committed link) when the transaction began; -1
    /// when the group had committed none.
    public var previous: Int64

    public init(application: String, transaction: [UInt8], previous: Int64) {
        self.application = application
        self.transaction = transaction
        self.previous = previous
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.layout)
        w.string(application)
        w.u16(min(transaction.count, 0xFFFE))
        w.buffer += transaction.prefix(0xFFFE)
        w.i64(previous)
        return w.buffer
    }

    public static func isLink(_ value: [UInt8]) -> Bool { value.first == layout }

    /// Nil when the value is not a well-formed link.
    public static func decode(_ value: [UInt8]) -> CommitLink? {
        var r = ByteReader(value)
        guard (try? r.u8()) == layout, let application = try? r.string(), let count = try? r.u16(),
              let transaction = try? r.bytes(count), let previous = try? r.i64(), r.atEnd else { return nil }
        return CommitLink(application: application, transaction: transaction, previous: previous)
    }
}

/// Which transactions of one changelog partition committed, from its links and its committed end.
public struct CommitChain: Sendable {
    public private(set) var committed: Set<[UInt8]> = []
    /// The committed end; records at or beyond it did not commit. Nil: unknown (no group to ask).
    public let end: Int64?
    /// Below this offset the chain says nothing: it reached a link it cannot see (compacted away, or written before
    /// links existed). 0 when the chain is whole.
    public private(set) var knownFrom: Int64

    /// `links`: the partition's links by offset (of this application only).
    public init(end: Int64?, links: [Int64: CommitLink]) {
        self.end = end
        guard let end, end > 0 else {
            knownFrom = end == nil ? Int64.max : 0
            return
        }
        var w = end
        while true {
            guard let link = links[w - 1], link.previous < w else {
                knownFrom = w
                return
            }
            committed.insert(link.transaction)
            guard link.previous > 0 else {
                knownFrom = 0
                return
            }
            w = link.previous
        }
    }

    /// Whether the record at `offset`, written by `transaction` (its `promo-txn` header), committed; nil where the
    /// chain cannot tell (no header, or below what the chain covers): the caller judges by other means.
    public func verdict(offset: Int64, transaction: [UInt8]?) -> Bool? {
        guard let end, let transaction else { return nil }
        if offset >= end { return false }
        return offset >= knownFrom ? committed.contains(transaction) : nil
    }
}

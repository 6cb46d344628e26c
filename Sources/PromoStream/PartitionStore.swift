import PromoFeatures

/// A processor's partitions, each a `PartitionTable`. Tables are objects, so that changing one item of a
/// partition changes it in place: a table held in a dictionary as a value would be copied by every change made
/// through a lookup, unless it were taken out and put back around each one.
final class PartitionStore {
    private var tables: [Int32: PartitionTable] = [:]

    subscript(partition: Int32) -> PartitionTable? { tables[partition] }

    /// The partition's table, made empty when the processor has none yet.
    func table(_ partition: Int32) -> PartitionTable {
        if let table = tables[partition] { return table }
        let table = PartitionTable()
        tables[partition] = table
        return table
    }

    func replace(_ partition: Int32, with table: PartitionTable) { tables[partition] = table }
    func remove(_ partition: Int32) { tables[partition] = nil }

    var all: Dictionary<Int32, PartitionTable> { tables }

    var itemCount: Int { tables.values.reduce(0) { $0 + $1.count } }
    var hotCount: Int { tables.values.reduce(0) { $0 + $1.hotCount } }

    /// Items kept whole and compact, and the compact ones' bytes (O(items): for periodic metrics, not per batch).
    var sizes: StateSizes {
        tables.values.reduce(into: StateSizes()) { sizes, table in
            sizes.hot += table.hotCount
            sizes.compact += table.count - table.hotCount
            sizes.compactBytes += table.compactBytes
        }
    }
}

public struct StateSizes: Sendable, Equatable {
    public var hot = 0, compact = 0, compactBytes = 0
}

/// The items of one input partition: recently changed items whole ("hot"), the others as their changelog bytes
/// without the model state ("cold", about 60% of the size), recomputed from their inputs when they change again.
final class PartitionTable {
    private var hot: [ItemKey: ItemState] = [:]
    private var cold: [ItemKey: [UInt8]] = [:]
    /// Items whose latest day waits for its buyer profile, by when that started (stale entries are skipped).
    var waiting = FIFO<(since: Int64, key: ItemKey)>()
    var rollups = RollupTable()
    /// Per input topic (`ProcessorOptions.inputTopics`), the next offset after what was applied.
    var positions: [Int64] = []

    var count: Int { hot.count + cold.count }
    var hotCount: Int { hot.count }
    var compactBytes: Int { cold.values.reduce(0) { $0 + $1.count } }

    // Cold bytes decode: they are this processor's own encoding, or changelog records that decoded and passed
    // the shape checks when they were restored.
    func state(_ key: ItemKey) -> ItemState? {
        hot[key] ?? cold[key].map { try! StateCodec.decode($0) }
    }

    /// Removes an item to change it; `put` it back.
    func take(_ key: ItemKey) -> ItemState? {
        hot.removeValue(forKey: key) ?? cold.removeValue(forKey: key).map { try! StateCodec.decode($0) }
    }

    /// Changes an item in place, making it whole first when it is compact, or making it with `make` when new.
    func modify<R>(_ key: ItemKey, make: () -> ItemState, _ body: (inout ItemState) -> R) -> R {
        if let i = hot.index(forKey: key) { return body(&hot.values[i]) }
        var state = cold.removeValue(forKey: key).map { try! StateCodec.decode($0) } ?? make()
        let result = body(&state)
        hot[key] = state.moveOut()
        return result
    }

    /// Keeps an item whole (replacing its compact form, if it had one).
    func put(_ state: consuming ItemState) {
        let key = state.key
        if !cold.isEmpty { cold[key] = nil }
        hot[key] = consume state
    }

    func putCold(key: ItemKey, bytes: [UInt8]) {
        hot[key] = nil
        cold[key] = bytes
    }

    /// Every item, the cold ones decoded.
    func allStates() -> [ItemState] { Array(hot.values) + cold.values.map { try! StateCodec.decode($0) } }

    var hotStates: Dictionary<ItemKey, ItemState>.Values { hot.values }
    var coldKeys: Dictionary<ItemKey, [UInt8]>.Keys { cold.keys }

    /// Makes up to `count` hot items other than `recent` cold; returns how many.
    func cool(count: Int, keeping recent: Set<ItemKey>) -> Int {
        let chosen = Array(hot.keys.lazy.filter { !recent.contains($0) }.prefix(count))
        for key in chosen {
            if let state = hot.removeValue(forKey: key) { cold[key] = StateCodec.encode(state) }
        }
        return chosen.count
    }
}

/// A first-in first-out queue (grace periods in the order they started; items to recompute).
struct FIFO<Element> {
    private var entries: [Element] = []
    private var head = 0

    var first: Element? { head < entries.count ? entries[head] : nil }
    var elements: ArraySlice<Element> { entries[head...] }
    var count: Int { entries.count - head }

    mutating func append(_ element: Element) { entries.append(element) }

    mutating func removeFirst() {
        head += 1
        // Reclaim the consumed front now and then, so the queue's memory follows what is in it.
        if head >= 4096 && head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }
}

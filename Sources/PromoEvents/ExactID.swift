/// An id that compares and hashes by its UTF-8 bytes, as Kafka keys and BOP.md's `row(id)` read it. String's `==`
/// and hash treat canonically equivalent text as one ("é" and "e" + U+0301), which would merge two users or items
/// whose keys differ.
public struct ExactID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: String

    public init(_ value: String) { self.value = value }

    public static func == (a: Self, b: Self) -> Bool { a.value.utf8.elementsEqual(b.value.utf8) }

    /// The bytes, their count first, so that two ids hashed in a row cannot trade bytes.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(value.utf8.count)
        let contiguous: Void? = value.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if contiguous == nil { for byte in value.utf8 { hasher.combine(byte) } }
    }

    public static func < (a: Self, b: Self) -> Bool { a.value.utf8.lexicographicallyPrecedes(b.value.utf8) }

    public var description: String { value }
}

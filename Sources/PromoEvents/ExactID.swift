/// An id that compares and hashes by its UTF-8 bytes, as Kafka keys and BOP.md's `row(id)` read it. String's `==`
/// and hash treat canonically equivalent text as one ("é" and "e" + U+0301), which would merge two users or items
/// whose keys differ.
public struct ExactID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: String

    public init(_ value: String) { self.value = value }

    public static func == (a: Self, b: Self) -> Bool { a.value.utf8.elementsEqual(b.value.utf8) }

    public func hash(into hasher: inout Hasher) { ExactID.hash(value, into: &hasher) }

    public static func < (a: Self, b: Self) -> Bool { a.value.utf8.lexicographicallyPrecedes(b.value.utf8) }

    public var description: String { value }

    /// Hashes a string's bytes (its length first, so that two fields hashed in a row cannot trade bytes).
    public static func hash(_ value: String, into hasher: inout Hasher) {
        hasher.combine(value.utf8.count)
        let contiguous: Void? = value.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if contiguous == nil { for byte in value.utf8 { hasher.combine(byte) } }
    }

    /// Whether two optional strings are the same bytes.
    public static func same(_ a: String?, _ b: String?) -> Bool {
        switch (a, b) {
        case (nil, nil): true
        case let (a?, b?): a.utf8.elementsEqual(b.utf8)
        default: false
        }
    }
}

/// Writes one JSON object as UTF-8 bytes, fields in the order written. Fast enough for generating tens of millions
/// of events, and deterministic: the same event always gives the same bytes.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    private var needsComma: [Bool] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma.append(false)
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma.removeLast()
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma.append(false)
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma.removeLast()
    }

    /// Writes `"name":`; the next value call writes the value.
    public mutating func key(_ name: String) {
        separate()
        appendString(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma[needsComma.count - 1] = false
    }

    public mutating func string(_ value: String) {
        separate()
        appendString(value)
    }

    /// A finite number: integral values below 2^53 as integers, others in Swift's shortest round-trip form.
    /// JSON has no NaN or infinity: those are written as `null`, which no schema of the interface accepts for a
    /// number, so a reader refuses the event instead of a writer stopping the service. (The processor and the
    /// offline commands withhold non-finite predictions before they get here.)
    public mutating func number(_ value: Double) { floatingPoint(value) }

    /// A float32 value in its own shortest round-trip digits (about half of its `Double`'s).
    public mutating func number(_ value: Float) { floatingPoint(value) }

    private mutating func floatingPoint<F: BinaryFloatingPoint & TextOutputStreamable>(_ value: F) {
        guard value.isFinite else { return null() }
        separate()
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992 {
            integer(Int64(value), separated: true)
        } else {
            // Through TextOutputStream: the same shortest round-trip digits as `description`, without a String.
            value.write(to: &self)
        }
    }

    public mutating func integer(_ value: Int64) { integer(value, separated: false) }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    public mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    public mutating func field(_ name: String, _ value: String) { key(name); string(value) }
    public mutating func field(_ name: String, _ value: Double) { key(name); number(value) }
    public mutating func field(_ name: String, _ value: Int) { key(name); integer(Int64(value)) }
    public mutating func field(_ name: String, _ value: Bool) { key(name); bool(value) }

    /// Named numbers in `order` first (those present), then any others sorted by name.
    public mutating func numbers(_ name: String, _ values: [String: Double], order: [String]) {
        key(name)
        beginObject()
        for name in order { if let value = values[name] { field(name, value) } }
        if values.count > order.count || order.contains(where: { values[$0] == nil }) {
            let known = Set(order)
            for name in values.keys.sorted() where !known.contains(name) { field(name, values[name]!) }
        }
        endObject()
    }

    private mutating func integer(_ value: Int64, separated: Bool) {
        if !separated { separate() }
        if value == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        var magnitude = value.magnitude
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        let start = bytes.count
        while magnitude > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        }
        bytes[start...].reverse()
    }

    private mutating func separate() {
        guard let last = needsComma.last else { return }
        if last { bytes.append(UInt8(ascii: ",")) } else { needsComma[needsComma.count - 1] = true }
    }

    private mutating func appendString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them whole.
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            bytes.append(contentsOf: value.utf8)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension JSONWriter: TextOutputStream {
    public mutating func write(_ string: String) { bytes.append(contentsOf: string.utf8) }

    /// What the standard library's number formatting calls, with ASCII it formatted on the stack.
    public mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: buffer) }
}

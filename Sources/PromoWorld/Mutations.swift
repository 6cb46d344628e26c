/// Damaged and hostile variants of valid events, for fuzzing the decoder and the stream: bit flips, truncations,
/// values of another JSON type, huge and tiny numbers, another schema id, removed fields, stray bytes, deep
/// nesting. The same seed gives the same mutations.
public struct EventMutator {
    private var random: WorldRandom

    public init(seed: UInt64) { random = WorldRandom(seed: seed, stream: 0xF022) }

    public static let kinds = ["bit flip", "truncation", "type swap", "huge number", "other schema", "field removed",
                               "stray bytes", "deep nesting", "unchanged"]

    /// A mutation of `value` and the kind applied (one of `kinds`).
    public mutating func mutate(_ value: [UInt8]) -> (value: [UInt8], kind: String) {
        var bytes = value
        let kind = Self.kinds[Int(random.next() % UInt64(Self.kinds.count))]
        switch kind {
        case "bit flip":
            for _ in 0...(random.next() % 3) where !bytes.isEmpty {
                bytes[index(bytes.count)] ^= UInt8(1) << UInt8(random.next() % 8)
            }
        case "truncation":
            bytes = Array(bytes.prefix(index(bytes.count)))
        case "type swap":
            let replacements = ["\"7\"", "true", "null", "[]", "{}", "[1,2]", "\"\"", "-0", "1.5"]
            bytes = replaceValue(in: bytes, with: replacements[index(replacements.count)])
        case "huge number":
            let numbers = ["1e308", "-1e308", "1e39", "3.4028235e38", "-3.4e38", "1e-320", "123456789012345678901234567890",
                           "9007199254740993", "-9223372036854775809", "1e400", "0.0000000000000000000000000000001"]
            bytes = replaceNumber(in: bytes, with: numbers[index(numbers.count)])
        case "other schema":
            let schemas = ["item_profile/1", "daily_sales/1", "daily_buyers/1", "activity/1", "outcome/1", "prediction/1",
                           "rollup/1", "dead_letter/1", "daily_sales/2", "no_such/1", ""]
            bytes = replaceSchema(in: bytes, with: schemas[index(schemas.count)])
        case "field removed":
            bytes = removeField(from: bytes)
        case "stray bytes":
            let strays: [[UInt8]] = [[0], [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0x5C], [0x22], [0x1B, 0x5B, 0x33, 0x31, 0x6D]]
            bytes.insert(contentsOf: strays[index(strays.count)], at: index(bytes.count + 1))
        case "deep nesting":
            let depth = 100 + index(5000)
            bytes = Array(repeating: UInt8(ascii: "["), count: depth) + bytes + Array(repeating: UInt8(ascii: "]"), count: depth)
        default:
            break
        }
        return (bytes, kind)
    }

    private mutating func index(_ count: Int) -> Int { count <= 0 ? 0 : Int(random.next() % UInt64(count)) }

    /// Positions just after each `:` outside strings (where a value starts).
    private func valueStarts(_ bytes: [UInt8]) -> [Int] {
        var starts: [Int] = [], inString = false, escaped = false
        for (i, b) in bytes.enumerated() {
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
            } else if b == UInt8(ascii: "\"") {
                inString = true
            } else if b == UInt8(ascii: ":") {
                starts.append(i + 1)
            }
        }
        return starts
    }

    /// The end of the scalar value starting at `start` (a string, or up to `,` `}` `]`).
    private func scalarEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        if bytes[start] == UInt8(ascii: "{") || bytes[start] == UInt8(ascii: "[") { return nil }
        if bytes[start] == UInt8(ascii: "\"") {
            var i = start + 1
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
            return min(i + 1, bytes.count)
        }
        var i = start
        while i < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(bytes[i]) { i += 1 }
        return i
    }

    private mutating func replaceValue(in bytes: [UInt8], with text: String) -> [UInt8] {
        let candidates = valueStarts(bytes).compactMap { s in scalarEnd(bytes, from: s).map { (s, $0) } }
        guard !candidates.isEmpty else { return bytes }
        let (start, end) = candidates[index(candidates.count)]
        return Array(bytes[..<start]) + Array(text.utf8) + Array(bytes[end...])
    }

    private mutating func replaceNumber(in bytes: [UInt8], with text: String) -> [UInt8] {
        let numeric = Set("-0123456789".utf8)
        let candidates = valueStarts(bytes).filter { $0 < bytes.count && numeric.contains(bytes[$0]) }
            .compactMap { s in scalarEnd(bytes, from: s).map { (s, $0) } }
        guard !candidates.isEmpty else { return replaceValue(in: bytes, with: text) }
        let (start, end) = candidates[index(candidates.count)]
        return Array(bytes[..<start]) + Array(text.utf8) + Array(bytes[end...])
    }

    private func replaceSchema(in bytes: [UInt8], with schema: String) -> [UInt8] {
        let key = Array("\"schema\":\"".utf8)
        guard let start = bytes.firstRange(of: key)?.upperBound,
              let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return bytes }
        return Array(bytes[..<start]) + Array(schema.utf8) + Array(bytes[end...])
    }

    private mutating func removeField(from bytes: [UInt8]) -> [UInt8] {
        // A top-level or nested `"name":value` whose value is a scalar, with the comma before it.
        let candidates = valueStarts(bytes).compactMap { s -> (Int, Int)? in
            guard let end = scalarEnd(bytes, from: s),
                  let quote = bytes[..<(s - 1)].lastIndex(of: UInt8(ascii: "\"")),
                  let open = bytes[..<quote].lastIndex(of: UInt8(ascii: "\"")) else { return nil }
            let from = open > 0 && bytes[open - 1] == UInt8(ascii: ",") ? open - 1 : open
            let to = from == open && end < bytes.count && bytes[end] == UInt8(ascii: ",") ? end + 1 : end
            return (from, to)
        }
        guard !candidates.isEmpty else { return bytes }
        let (from, to) = candidates[index(candidates.count)]
        return Array(bytes[..<from]) + Array(bytes[to...])
    }
}

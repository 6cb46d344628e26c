import PromoEvents

/// `promo produce --raw`'s messages: each input line's bytes as they are, nothing decoded or checked (as kcat -P
/// sends them), so that malformed input (a dead letter to be) can be produced on purpose.
enum RawLines {
    struct Message: Equatable {
        var key: [UInt8]?
        var value: [UInt8]
    }

    /// One message per line: lines end at `\n` (not part of the value; a `\r` before it is kept, as are empty
    /// lines); a last line without `\n` counts too. The key: with `keyDelimiter`, what comes before its first
    /// occurrence in the line (kcat's -K; a line without it has no key); otherwise the line's `item_id` when the
    /// line happens to be a JSON object with one (as events are keyed), else none.
    static func messages(_ bytes: [UInt8], keyDelimiter: [UInt8]? = nil) -> [Message] {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if bytes.last == UInt8(ascii: "\n") || bytes.isEmpty { lines.removeLast() }
        return lines.map { line in
            if let keyDelimiter, !keyDelimiter.isEmpty {
                guard let cut = firstRange(of: keyDelimiter, in: line) else { return Message(key: nil, value: Array(line)) }
                return Message(key: Array(line[..<cut.lowerBound]), value: Array(line[cut.upperBound...]))
            }
            let itemID = (try? JSONParser.parse(line))?["item_id"]?.string
            return Message(key: itemID.map { Array($0.utf8) }, value: Array(line))
        }
    }

    private static func firstRange(of needle: [UInt8], in line: ArraySlice<UInt8>) -> Range<Int>? {
        guard line.count >= needle.count else { return nil }
        for start in line.startIndex...(line.endIndex - needle.count) where line[start..<(start + needle.count)].elementsEqual(needle) {
            return start..<(start + needle.count)
        }
        return nil
    }
}

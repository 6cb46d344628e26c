import Foundation
import PromoEvents

/// A dead letter as `promo watch` shows it: why it was rejected, where it came from, and the rejected bytes
/// readable (text when they are, else hex or base64) instead of the envelope's base64.
enum DeadLetterDisplay {
    static func line(_ letter: DeadLetter) -> String {
        var line = "dead letter: \(letter.reason) | from \(letter.sourceTopic)[\(letter.partition)]@\(letter.offset)"
        line += " at \(letter.failedAt)"
        if !letter.consumer.isEmpty { line += " by \(letter.consumer)" }
        if let key = letter.key { line += " | key \(bytes(key))" + cut(key.count, of: letter.keyBytes) }
        return line + " | value \(bytes(letter.value))" + cut(letter.value.count, of: letter.valueBytes)
    }

    private static func cut(_ kept: Int, of total: Int?) -> String {
        guard let total else { return "" }
        return " (its first \(kept) of \(total) bytes)"
    }

    /// The line for a message of the dead-letter topic; nil when it is not a dead letter (shown as it is).
    static func line(message value: [UInt8]) -> String? {
        guard case .deadLetter(let letter)? = try? EventDecoder().decode(value) else { return nil }
        return line(letter)
    }

    /// UTF-8 text without control characters (a tab aside) as it is; otherwise up to 64 bytes as hex, more as base64.
    static func bytes(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return "(empty)" }
        if let text = String(validating: bytes, as: UTF8.self),
           !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\t" }) {
            return text
        }
        if bytes.count <= 64 { return "hex " + bytes.map { String(format: "%02x", $0) }.joined() }
        return "base64 " + Data(bytes).base64EncodedString()
    }
}

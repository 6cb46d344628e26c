import Foundation
import Logging
import PromoEvents

/// Log lines to standard error, one per call, whole (threads never interleave within one): as text,
/// `2026-12-02T03:01:07.123Z info promo.member: message key=value …`, or as one JSON object,
/// `{"ts", "level", "logger", "message", …metadata}`, for log shippers.
struct StandardErrorLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let fields = metadata.merging(event.metadata ?? [:]) { $1 }.sorted { $0.key < $1.key }
        let time = Date().formatted(.iso8601.year().month().day().dateSeparator(.dash)
            .time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
        var line: [UInt8]
        switch format {
        case .text:
            var text = "\(time) \(event.level) \(label): \(event.message)"
            for (key, value) in fields { text += " \(key)=\(value)" }
            line = Array(text.utf8)
        case .json:
            var w = JSONWriter()
            w.beginObject()
            w.field("ts", time)
            w.field("level", "\(event.level)")
            w.field("logger", label)
            w.field("message", "\(event.message)")
            for (key, value) in fields { w.field(key, "\(value)") }
            w.endObject()
            line = w.bytes
        }
        line.append(10)
        line.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
    }
}

internal import CRdKafka

/// Receives librdkafka's own log lines: the syslog level (0 emergency … 7 debug), the facility (e.g. `FAIL`,
/// `REQTMOUT`) and the text. Called on librdkafka's internal threads, hence `@Sendable`.
public typealias KafkaLogHandler = @Sendable (_ level: Int32, _ facility: String, _ message: String) -> Void

/// What a client's librdkafka callbacks find through its opaque pointer: the log handler, and in subclasses
/// what the client's other callbacks need. Lives as long as the client's handle.
class ClientContext: @unchecked Sendable {
    let log: KafkaLogHandler?

    init(log: KafkaLogHandler?) { self.log = log }

    /// Points the configuration's opaque at `self` and, with a handler, routes librdkafka's log lines to it
    /// instead of its default writer to standard error.
    func install(on conf: OpaquePointer) {
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(self).toOpaque())
        guard log != nil else { return }
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, text in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
            context.log?(level, facility.map { String(cString: $0) } ?? "", text.map { String(cString: $0) } ?? "")
        }
    }
}

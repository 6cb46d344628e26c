import Logging
import PromoKafka

/// librdkafka's own log lines as swift-log records (label `rdkafka`, the facility as metadata), so they share the
/// member's format and level instead of librdkafka writing its own lines to standard error.
public enum LibrdkafkaLog {
    /// syslog's levels, as librdkafka uses them, to swift-log's.
    public static func level(syslog: Int32) -> Logger.Level {
        switch syslog {
        case ...2: .critical  // emergency, alert, critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    }

    /// A handler for `KafkaConfig.logHandler` that logs to `logger`; called on librdkafka's threads.
    public static func handler(_ logger: Logger) -> KafkaLogHandler {
        { level, facility, message in
            logger.log(level: Self.level(syslog: level), "\(message)", metadata: ["facility": "\(facility)"])
        }
    }
}

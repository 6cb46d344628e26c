import Foundation
import Logging
import Metrics
import Prometheus

/// How log lines are written: text for people, one JSON object per line for log shippers.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// The process's log and metric backends, set once at start.
public enum Observability {
    /// The registry `/metrics` renders: every swift-metrics metric of the process lands in it.
    public static let registry = PrometheusCollectorRegistry()

    /// swift-log to standard error in `format` at `level`; swift-metrics into `registry`. Call once, first.
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StandardErrorLogHandler(label: label, format: format)
            handler.logLevel = level
            return handler
        }
        var factory = PrometheusMetricsFactory(registry: registry)
        // Seconds-scale buckets for the batch, transaction and latency timers (the defaults stop at 10 s).
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        factory.defaultValueHistogramBuckets = [1, 10, 100, 500, 1000, 2500, 5000, 10000, 50000]
        MetricsSystem.bootstrap(factory)
    }
}

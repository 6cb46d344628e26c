internal import CRdKafka

/// An error reported by librdkafka, with what the caller should do about it.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` (negative: client-side, positive: broker error codes).
    public let code: Int32
    public let name: String
    public let message: String
    /// Doing the same again may succeed.
    public let isRetriable: Bool
    /// The client instance is unusable; only a new one can go on.
    public let isFatal: Bool
    /// The current transaction must be aborted before the producer can go on.
    public let requiresAbort: Bool

    public var description: String { "\(message) (\(name))" }

    init(code: rd_kafka_resp_err_t, _ context: String) {
        self.code = code.rawValue
        name = String(cString: rd_kafka_err2name(code))
        message = "\(context): \(String(cString: rd_kafka_err2str(code)))"
        isRetriable = false
        isFatal = code == RD_KAFKA_RESP_ERR__FATAL
        requiresAbort = false
    }

    /// Takes ownership of (and destroys) a `rd_kafka_error_t`.
    init(error: OpaquePointer, _ context: String) {
        defer { rd_kafka_error_destroy(error) }
        code = rd_kafka_error_code(error).rawValue
        name = String(cString: rd_kafka_error_name(error))
        message = "\(context): \(String(cString: rd_kafka_error_string(error)))"
        isRetriable = rd_kafka_error_is_retriable(error) != 0
        isFatal = rd_kafka_error_is_fatal(error) != 0
        requiresAbort = rd_kafka_error_txn_requires_abort(error) != 0
    }

    init(configuration message: String) {
        code = RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue
        name = "_INVALID_ARG"
        self.message = message
        isRetriable = false
        isFatal = false
        requiresAbort = false
    }

    /// A wait of the caller's own that ran out: the cluster did not answer in time. Not fatal; try again later.
    public static func timedOut(_ context: String) -> KafkaError { KafkaError(code: RD_KAFKA_RESP_ERR__TIMED_OUT, context) }

    /// Throws when a call returned an error object.
    static func check(_ error: OpaquePointer?, _ context: @autoclosure () -> String) throws {
        if let error { throw KafkaError(error: error, context()) }
    }

    static func check(_ code: rd_kafka_resp_err_t, _ context: @autoclosure () -> String) throws {
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: code, context()) }
    }
}

import CRdKafka

/// librdkafka configuration properties (see librdkafka's CONFIGURATION.md), validated when a client is made.
public struct KafkaConfig: Sendable {
    public var properties: [String: String]

    public init(bootstrapServers: String, _ properties: [String: String] = [:]) {
        self.properties = properties
        self.properties["bootstrap.servers"] = bootstrapServers
    }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// A new `rd_kafka_conf_t`; the caller owns it until `rd_kafka_new` takes it.
    func make() throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(configuration: "\(key)=\(value): \(text(errstr))")
            }
        }
        return conf
    }
}

/// Creates a client from a configuration, or throws librdkafka's reason.
func makeClient(_ type: rd_kafka_type_t, _ conf: OpaquePointer) throws -> OpaquePointer {
    var errstr = [CChar](repeating: 0, count: 512)
    guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
        rd_kafka_conf_destroy(conf)
        throw KafkaError(configuration: text(errstr))
    }
    return handle
}

public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

/// The text of a NUL-terminated error buffer librdkafka filled.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

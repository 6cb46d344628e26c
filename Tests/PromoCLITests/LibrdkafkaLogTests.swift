import Foundation
import Logging
import PromoKafka
import PromoServer
import Synchronization
import Testing

@Suite("librdkafka's log lines")
struct LibrdkafkaLogTests {
    @Test("syslog levels map to swift-log's")
    func levels() {
        #expect((0...7).map { LibrdkafkaLog.level(syslog: $0) }
                == [.critical, .critical, .critical, .error, .warning, .notice, .info, .debug])
    }

    @Test("a client's log lines reach the configuration's handler, with level and facility")
    func handlerGetsLines() throws {
        let lines = Mutex<[(level: Int32, facility: String, message: String)]>([])
        // Nothing listens on port 1: the metadata request fails to connect, which librdkafka logs (facility FAIL).
        var config = KafkaConfig(bootstrapServers: "127.0.0.1:1")
        config["socket.blocking.max.ms"] = "100"  // deprecated: a CONFWARN line as the client is made
        config.logHandler = { level, facility, message in lines.withLock { $0.append((level, facility, message)) } }
        let admin = try KafkaAdmin(config)
        #expect(throws: KafkaError.self) { try admin.partitionCount("promo.anything", timeoutMs: 2_000) }
        let seen = lines.withLock { $0 }
        #expect(seen.contains { $0.facility == "CONFWARN" && $0.message.contains("socket.blocking.max.ms") && $0.level == 4 })
        #expect(seen.contains { $0.facility == "FAIL" && $0.message.contains("127.0.0.1:1") && $0.level <= 4 })
    }
}

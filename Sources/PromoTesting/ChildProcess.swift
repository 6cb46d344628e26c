import Foundation

/// Executables built next to the test bundle (`swift build` builds them with the tests).
public func builtProduct(_ name: String) -> URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
}

/// A child process whose output lines can be awaited.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    public let name: String
    private let lock = NSCondition()
    private var lines: [String] = []
    private var partial = Data()
    /// Set once the output pipe reaches end of file: every line the process wrote is in `lines`.
    private var drained = false

    /// `outputOnly`: only standard output comes into `output` (standard error goes to the test's own), for a
    /// command whose output lines are data: a report line written to the same pipe could split one of them.
    public init(_ executable: URL, _ arguments: [String], name: String, stdin: Bool = false,
         environment: [String: String] = [:], outputOnly: Bool = false) throws {
        self.name = name
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = outputOnly ? FileHandle.standardError : out
        if stdin { process.standardInput = Pipe() }
        try process.run()
        // A thread of its own doing blocking reads: Foundation's `readabilityHandler` was seen to lose the end of
        // file on Linux, leaving `wait` to sit out its whole timeout after the process had exited.
        let reading = out.fileHandleForReading
        Thread.detachNewThread { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = read(reading.fileDescriptor, &buffer, buffer.count)
                if count < 0 && errno == EINTR { continue }
                let data = count > 0 ? Data(buffer[0..<count]) : Data()  // 0: end of file; < 0: taken as one
                guard let self else { return }
                self.take(data)
                if data.isEmpty { return }
            }
        }
    }

    /// Adds what the pipe gave (empty: its end) to `lines`.
    private func take(_ data: Data) {
        lock.lock()
        defer { lock.unlock() }
        partial.append(data)
        while let newline = partial.firstIndex(of: 10) {
            lines.append(String(decoding: partial[partial.startIndex..<newline], as: UTF8.self))
            partial.removeSubrange(partial.startIndex...newline)
        }
        if data.isEmpty {
            if !partial.isEmpty { lines.append(String(decoding: partial, as: UTF8.self)) }
            partial.removeAll()
            drained = true
        }
        lock.broadcast()
    }

    /// Waits for the first line (from `after` on) that satisfies `match`; nil on timeout or exit.
    public func awaitLine(after: Int = 0, timeout: TimeInterval = 60, _ match: (String) -> Bool) -> (index: Int, line: String)? {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        var next = after
        var exitSeen: Date?
        while true {
            while next < lines.count {
                if match(lines[next]) { return (next, lines[next]) }
                next += 1
            }
            if drained { return nil }
            // After the exit, the rest of the pipe is read (briefly: a descendant may still hold it open).
            if !process.isRunning {
                let seen = exitSeen ?? Date()
                exitSeen = seen
                if Date() >= seen.addingTimeInterval(5) { return nil }
            }
            if !lock.wait(until: min(deadline, Date().addingTimeInterval(0.5))) && Date() >= deadline { return nil }
        }
    }

    /// A `ServiceEvent` as a member logs it with `--log-format json`: its name and fields, and its line's index.
    public struct Event {
        public let index: Int
        public let name: String
        public let fields: [String: String]
        public subscript(_ key: String) -> String? { fields[key] }
    }

    public static func event(_ line: String, index: Int) -> Event? {
        guard line.hasPrefix("{"), let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let name = object["event"] as? String else { return nil }
        return Event(index: index, name: name, fields: object.compactMapValues { $0 as? String })
    }

    /// Every event named `name` so far.
    public func events(_ name: String) -> [Event] {
        output.enumerated().compactMap { Self.event($1, index: $0) }.filter { $0.name == name }
    }

    /// Waits for the first event named `name` (from line `after` on) whose fields satisfy `match`; nil on timeout
    /// or exit.
    public func awaitEvent(_ name: String, after: Int = 0, timeout: TimeInterval = 60,
                    where match: (Event) -> Bool = { _ in true }) -> Event? {
        awaitLine(after: after, timeout: timeout) { line in
            Self.event(line, index: 0).map { $0.name == name && match($0) } ?? false
        }.flatMap { Self.event($0.line, index: $0.index) }
    }

    /// Whether the process ended by this signal (SIGKILL from a test, say) rather than exiting.
    public func killed(by number: Int32) -> Bool {
        !process.isRunning && process.terminationReason == .uncaughtSignal && process.terminationStatus == number
    }

    public var output: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }

    public func write(_ line: String) {
        (process.standardInput as? Pipe)?.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to exit and its output to be read to the end, so `output` is complete; returns its
    /// status (SIGKILLs it first after `timeout`). A descendant still holding the pipe open ends the wait for the
    /// output after `timeout` too.
    @discardableResult
    public func wait(timeout: TimeInterval = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { signal(SIGKILL); process.waitUntilExit() }
        lock.lock()
        let outputDeadline = max(deadline, Date().addingTimeInterval(5))
        while !drained && lock.wait(until: outputDeadline) {}
        lock.unlock()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}


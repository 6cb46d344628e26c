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
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil }
            guard let self else { return }
            self.lock.lock()
            self.partial.append(data)
            while let newline = self.partial.firstIndex(of: 10) {
                self.lines.append(String(decoding: self.partial[self.partial.startIndex..<newline], as: UTF8.self))
                self.partial.removeSubrange(self.partial.startIndex...newline)
            }
            if data.isEmpty {
                if !self.partial.isEmpty { self.lines.append(String(decoding: self.partial, as: UTF8.self)) }
                self.partial.removeAll()
                self.drained = true
            }
            self.lock.broadcast()
            self.lock.unlock()
        }
        try process.run()
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


import Foundation

/// A line of an event file that could not be used, and why.
public struct RejectedLine: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var error: EventError
    public var description: String { "\(file):\(line): \(error)" }
}

/// Reads JSON-lines event files (one event per line, blank lines skipped). A bad line is reported and skipped;
/// reading goes on.
public enum EventFile {
    /// Calls `body` with each decoded event in file order, and `rejected` with each line that failed.
    public static func read(_ url: URL, decoder: EventDecoder, rejected: (RejectedLine) -> Void,
                            _ body: (Event) throws -> Void) throws {
        let data = try contents(of: url)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0, number = 0
            while start < bytes.count {
                number += 1
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
                let line = UnsafeBufferPointer(rebasing: bytes[start..<end])
                start = end + 1
                guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { continue }
                do {
                    try body(try decoder.decode(line))
                } catch let error as EventError {
                    rejected(RejectedLine(file: url.lastPathComponent, line: number, error: error))
                }
            }
        }
    }
}

extension EventFile {
    /// The file's bytes, or an error that says what is wrong with the path (Foundation's own is
    /// `Error Domain=NSCocoaErrorDomain Code=256 "(null)"` for a folder).
    /// Event files, with each folder given (a promotion, as `promo generate` writes one) replaced by its `.jsonl`
    /// files in name order.
    public static func expand(_ paths: [String]) throws(EventFileError) -> [URL] {
        var urls: [URL] = []
        for path in paths {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                throw EventFileError(path: path, reason: "no such file or folder")
            }
            guard isFolder.boolValue else {
                urls.append(URL(fileURLWithPath: path))
                continue
            }
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
                throw EventFileError(path: path, reason: "the folder cannot be listed")
            }
            urls += names.filter { $0.hasSuffix(".jsonl") }.sorted().map { URL(fileURLWithPath: path).appendingPathComponent($0) }
        }
        return urls
    }

    static func contents(of url: URL) throws(EventFileError) -> Data {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
            throw EventFileError(path: url.path, reason: "no such file")
        }
        guard !isFolder.boolValue else { throw EventFileError(path: url.path, reason: "is a folder, not a JSON-lines file") }
        do {
            return try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            let why = FileManager.default.isReadableFile(atPath: url.path) ? "cannot be read" : "is not readable (permissions)"
            throw EventFileError(path: url.path, reason: why)
        }
    }
}

/// An event file that cannot be read at all.
public struct EventFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Appends events to a JSON-lines file through a buffer.
public final class EventFileWriter {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    public private(set) var count = 0

    public init(_ url: URL) throws {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        handle = try FileHandle(forWritingTo: url)
        buffer.reserveCapacity(1 << 20)
    }

    public func write(_ event: Event) throws {
        buffer.append(contentsOf: event.encoded())
        buffer.append(UInt8(ascii: "\n"))
        count += 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Appends already-encoded lines (each ending in a newline).
    public func write(lines: [UInt8], count: Int) throws {
        try flush()
        try handle.write(contentsOf: lines)
        self.count += count
    }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    public func close() throws {
        try flush()
        try handle.close()
    }
}

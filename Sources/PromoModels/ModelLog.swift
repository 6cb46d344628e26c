import Foundation
import PromoEvents

/// What the model topic holds, as read so far, message by message: every announcement in order, and where each
/// version's chunks are (offsets, not bytes: a member keeps no weights it does not serve, and fetches a version's
/// chunks when it is announced).
public struct ModelLog: Sendable {
    public struct Entry: Sendable {
        public var offset: Int64
        public var announcement: ModelAnnouncement
    }

    public private(set) var announcements: [Entry] = []
    /// version → chunk → offset of its latest copy.
    public private(set) var chunkOffsets: [Int: [Int: Int64]] = [:]
    private let decoder = EventDecoder()

    public init() {}

    /// Reads one message of the topic. Returns the announcement it carries, if any; throws why a message is
    /// neither a chunk nor a readable announcement (the log goes on without it).
    @discardableResult
    public mutating func add(offset: Int64, key: [UInt8]?, value: [UInt8]) throws(ModelLogError) -> ModelAnnouncement? {
        let keyText = key.map { String(decoding: $0, as: UTF8.self) } ?? ""
        if let (version, chunk) = ModelPackage.parseChunkKey(keyText) {
            chunkOffsets[version, default: [:]][chunk] = offset
            return nil
        }
        guard keyText == ModelPackage.announcementKey else {
            throw ModelLogError(offset: offset, reason: "key \"\(keyText)\" is neither `model` nor `model:<version>:<chunk>`")
        }
        guard !value.isEmpty else { return nil }  // a tombstone
        let event: Event
        do { event = try decoder.decode(value) } catch {
            throw ModelLogError(offset: offset, reason: "unreadable announcement: \(error)")
        }
        guard case .announcement(let announcement) = event else {
            throw ModelLogError(offset: offset, reason: "schema \(event.schema) under key `model`")
        }
        announcements.append(Entry(offset: offset, announcement: announcement))
        return announcement
    }

    /// Where to read a version's chunks: the offset of every chunk's latest copy.
    public func chunkOffsets(of version: Int) -> [Int: Int64] { chunkOffsets[version] ?? [:] }
}

public struct ModelLogError: Error, CustomStringConvertible {
    public var offset: Int64
    public var reason: String
    public var description: String { "model topic offset \(offset): \(reason)" }
}

internal import COpenSSL
import DINOP
import Foundation
import PromoEvents

/// A model version as it travels on the model topic (Topics/topics/promo.models.json): its weight file in raw
/// chunks of at most `chunkSize` bytes under keys `model:<version>:<chunk>`, then an announcement under key
/// `model` naming the version, its parent, the file's size, chunk count and SHA-256.
public struct ModelPackage: Sendable {
    public static let chunkSize = 1_048_576
    public static let announcementKey = "model"

    public var announcement: ModelAnnouncement
    public var chunks: [Data]

    public init(model: DINOPModel, createdAt: Date = Date(), metrics: [String: Double] = [:], trainedOn: String? = nil) {
        let file = model.safetensors()
        chunks = stride(from: 0, to: file.count, by: Self.chunkSize).map { file[$0..<min($0 + Self.chunkSize, file.count)] }
        announcement = ModelAnnouncement(version: model.version, parent: model.parent, sha256: sha256Hex(file),
                                         bytes: file.count, chunks: chunks.count, createdAt: Self.timestamp(createdAt),
                                         metrics: metrics, trainedOn: trainedOn)
    }

    public static func chunkKey(version: Int, chunk: Int) -> String { "model:\(version):\(chunk)" }

    /// Chunks of `bytes`, rounded up without `bytes + chunkSize - 1`, which an announced size near Int.max would
    /// overflow.
    static func chunkCount(bytes: Int) -> Int { bytes / chunkSize + (bytes % chunkSize == 0 ? 0 : 1) }

    /// An announcement's `created_at`: RFC 3339, UTC, whole seconds.
    public static func timestamp(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// (version, chunk) of a chunk key; nil for the announcement key or anything else.
    public static func parseChunkKey(_ key: String) -> (version: Int, chunk: Int)? {
        let parts = key.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "model", let version = Int(parts[1]), let chunk = Int(parts[2]),
              version >= 1, chunk >= 0 else { return nil }
        return (version, chunk)
    }

    /// Puts the announced version's chunks together and checks them against the announcement before anything
    /// is loaded: every chunk present, the announced size, the announced SHA-256, a DINOP weight file whose own
    /// version is the announced one.
    public static func assemble(_ announcement: ModelAnnouncement, chunks: [Int: Data]) throws(ModelPackageError) -> DINOPModel {
        let file = try assembledFile(announcement, chunks: chunks)
        let model: DINOPModel
        do { model = try ModelFile.read(file) } catch {
            throw .notAModel(version: announcement.version, "\(error)")
        }
        guard model.version == announcement.version else {
            throw .versionMismatch(announced: announcement.version, file: model.version)
        }
        return model
    }

    /// The announced version's file from its chunks, checked against the announcement (every chunk, the size, the
    /// SHA-256), not yet read as a model: for readers of another part of it (a combined file's BOP model).
    public static func assembledFile(_ announcement: ModelAnnouncement, chunks: [Int: Data]) throws(ModelPackageError) -> Data {
        // The chunk count follows from the size; checked first, so that no announced number sizes a loop or an
        // allocation before the chunks are known to be there.
        let expected = chunkCount(bytes: announcement.bytes)
        guard announcement.chunks == expected else {
            throw .wrongChunkCount(version: announcement.version, announced: announcement.chunks, bytes: announcement.bytes)
        }
        let missing = Array((0..<announcement.chunks).lazy.filter { chunks[$0] == nil }.prefix(11))
        guard missing.isEmpty else { throw .missingChunks(version: announcement.version, missing) }
        var file = Data(capacity: (0..<announcement.chunks).reduce(0) { $0 + chunks[$1]!.count })
        for i in 0..<announcement.chunks { file.append(chunks[i]!) }
        guard file.count == announcement.bytes else {
            throw .wrongSize(version: announcement.version, announced: announcement.bytes, found: file.count)
        }
        let digest = sha256Hex(file)
        guard digest == announcement.sha256 else {
            throw .checksumMismatch(version: announcement.version, announced: announcement.sha256, found: digest)
        }
        return file
    }
}

/// Why a model version from the topic was refused.
public enum ModelPackageError: Error, CustomStringConvertible, Equatable {
    case missingChunks(version: Int, [Int])
    case wrongChunkCount(version: Int, announced: Int, bytes: Int)
    case wrongSize(version: Int, announced: Int, found: Int)
    case checksumMismatch(version: Int, announced: String, found: String)
    case notAModel(version: Int, String)
    case versionMismatch(announced: Int, file: Int)

    public var description: String {
        switch self {
        case .missingChunks(let v, let chunks):
            "version \(v): chunks \(chunks.prefix(10).map(String.init).joined(separator: ", "))\(chunks.count > 10 ? "…" : "") missing from the model topic"
        case .wrongChunkCount(let v, let announced, let bytes):
            "version \(v): \(bytes) bytes make \(ModelPackage.chunkCount(bytes: bytes)) chunks of \(ModelPackage.chunkSize), the announcement says \(announced)"
        case .wrongSize(let v, let announced, let found):
            "version \(v): the chunks hold \(found) bytes, the announcement says \(announced)"
        case .checksumMismatch(let v, let announced, let found):
            "version \(v): SHA-256 of the chunks is \(found), the announcement says \(announced)"
        case .notAModel(let v, let why): "version \(v): the chunks are not a DINOP weight file: \(why)"
        case .versionMismatch(let announced, let file): "announced as version \(announced), the weight file says \(file)"
        }
    }
}

/// Lower-case hex SHA-256 (OpenSSL's libcrypto).
public func sha256Hex(_ data: Data) -> String {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    let ok = data.withUnsafeBytes { bytes in
        EVP_Digest(bytes.baseAddress, bytes.count, &digest, &length, EVP_sha256(), nil)
    }
    precondition(ok == 1 && length == 32, "EVP_Digest(SHA-256) failed")
    return digest.map { String(format: "%02x", $0) }.joined()
}

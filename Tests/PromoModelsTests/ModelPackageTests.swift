import DINOP
import Foundation
import PromoEvents
import PromoModels
import Testing

/// A model whose weight file needs several chunks.
func largeModel(version: Int = 4) throws -> DINOPModel {
    var config = ModelConfig.default
    config.hidden = 16
    config.attention = 8
    var model = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 20_011, encoderWidth: 8, headHidden: 16), seed: 1)
    model.version = version
    model.parent = version - 1
    return model
}

@Test("SHA-256 matches the FIPS 180-2 test vectors")
func sha256Vectors() {
    #expect(sha256Hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(sha256Hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
}

@Test("a weight file split into chunks assembles back into the same model, checked against its announcement")
func chunksRoundTrip() throws {
    let model = try largeModel()
    let package = ModelPackage(model: model, metrics: ["holdout_gmv_mae": 12.5], trainedOn: "test")
    let file = model.safetensors()
    #expect(package.chunks.count == (file.count + ModelPackage.chunkSize - 1) / ModelPackage.chunkSize && package.chunks.count > 1)
    #expect(package.chunks.dropLast().allSatisfy { $0.count == ModelPackage.chunkSize })
    #expect(package.announcement.bytes == file.count && package.announcement.version == 4 && package.announcement.parent == 3)
    let chunks = Dictionary(uniqueKeysWithValues: package.chunks.enumerated().map { ($0.offset, $0.element) })
    let back = try ModelPackage.assemble(package.announcement, chunks: chunks)
    #expect(back.safetensors() == file)
    // The announcement is a valid model_announcement/1 event.
    let event = try EventDecoder().decode(Event.announcement(package.announcement).encoded())
    #expect(event == .announcement(package.announcement))
}

@Test("a corrupt or missing chunk, a wrong checksum or size, and a mislabelled version are refused with the reason")
func damagedPackagesRefused() throws {
    let package = ModelPackage(model: try largeModel())
    let chunks = Dictionary(uniqueKeysWithValues: package.chunks.enumerated().map { ($0.offset, $0.element) })
    let a = package.announcement

    var corrupt = chunks
    corrupt[1]![corrupt[1]!.startIndex + 100] ^= 0xFF
    #expect(throws: ModelPackageError.self) { try ModelPackage.assemble(a, chunks: corrupt) }
    do { _ = try ModelPackage.assemble(a, chunks: corrupt) } catch {
        guard case .checksumMismatch(4, a.sha256, _) = error else { Issue.record("\(error)"); return }
        #expect(error.description.contains("SHA-256"))
    }

    var missing = chunks
    missing[0] = nil
    #expect(throws: ModelPackageError.missingChunks(version: 4, [0])) { try ModelPackage.assemble(a, chunks: missing) }

    var badDigest = a
    badDigest.sha256 = String(repeating: "0", count: 64)
    #expect(throws: ModelPackageError.self) { try ModelPackage.assemble(badDigest, chunks: chunks) }

    var badSize = a
    badSize.bytes += 1
    #expect(throws: ModelPackageError.wrongSize(version: 4, announced: a.bytes + 1, found: a.bytes)) {
        try ModelPackage.assemble(badSize, chunks: chunks)
    }

    // Announced numbers that would size a loop or an allocation are checked against each other first.
    var manyChunks = a
    manyChunks.chunks = Int.max
    #expect(throws: ModelPackageError.wrongChunkCount(version: 4, announced: Int.max, bytes: a.bytes)) {
        try ModelPackage.assemble(manyChunks, chunks: chunks)
    }
    var hugeFile = a
    hugeFile.bytes = Int.max - ModelPackage.chunkSize
    #expect(throws: ModelPackageError.self) { try ModelPackage.assemble(hugeFile, chunks: chunks) }
    hugeFile.bytes = Int.max    // rounding up to whole chunks must not overflow
    #expect(throws: ModelPackageError.self) { try ModelPackage.assemble(hugeFile, chunks: chunks) }

    // The right bytes announced under another version number.
    let other = ModelPackage(model: try largeModel(version: 5))
    let otherChunks = Dictionary(uniqueKeysWithValues: other.chunks.enumerated().map { ($0.offset, $0.element) })
    var relabelled = other.announcement
    relabelled.version = 6
    #expect(throws: ModelPackageError.versionMismatch(announced: 6, file: 5)) {
        try ModelPackage.assemble(relabelled, chunks: otherChunks)
    }

    // Checksummed bytes that are not a weight file.
    let junk = Data(repeating: 7, count: 100)
    let junkAnnouncement = ModelAnnouncement(version: 2, parent: 1, sha256: sha256Hex(junk), bytes: 100, chunks: 1, createdAt: "2026-11-23T00:00:00Z")
    #expect(throws: ModelPackageError.self) { try ModelPackage.assemble(junkAnnouncement, chunks: [0: junk]) }
}

@Test("the model log keeps announcements in order and the latest offset of every chunk; other messages are refused")
func modelLog() throws {
    var log = ModelLog()
    let a = ModelPackage(model: try largeModel()).announcement
    #expect(try log.add(offset: 0, key: Array("model:4:0".utf8), value: [1]) == nil)
    #expect(try log.add(offset: 1, key: Array("model:4:1".utf8), value: [2]) == nil)
    #expect(try log.add(offset: 2, key: Array("model:4:0".utf8), value: [3]) == nil)
    #expect(try log.add(offset: 3, key: Array("model".utf8), value: Event.announcement(a).encoded()) == a)
    #expect(log.chunkOffsets(of: 4) == [0: 2, 1: 1])
    #expect(log.announcements.map(\.offset) == [3])
    #expect(throws: ModelLogError.self) { try log.add(offset: 4, key: Array("model".utf8), value: Array("{".utf8)) }
    #expect(throws: ModelLogError.self) { try log.add(offset: 5, key: Array("weights".utf8), value: [0]) }
    #expect(throws: ModelLogError.self) { try log.add(offset: 6, key: nil, value: [0]) }
    #expect(ModelPackage.parseChunkKey("model:12:3")! == (12, 3))
    for bad in ["model:0:1", "model:1:-1", "model:x:1", "model:1", "model:1:2:3"] { #expect(ModelPackage.parseChunkKey(bad) == nil) }
    #expect(log.announcements.count == 1)
}

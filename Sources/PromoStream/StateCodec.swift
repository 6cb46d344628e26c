import PromoFeatures

/// The binary value of an item's changelog record (topic `promo.state-changelog`), also the compact in-memory
/// form of an item: its inputs, not its model state (which a restored or compact item recomputes from its days,
/// so the record stays valid across model versions). Little-endian; version byte first, so a later layout can be
/// told apart. Floats keep their bits. Layout 3 adds a `Provenance` header (which application wrote the record,
/// and the input positions it commits with); layout 2 added the model version of the item's last prediction. A flag
/// bit of layout 3 adds the last pre-sale day whose close the item published (MARKETS.md `competition`).
/// Layouts 1 and 2 are still read (no provenance; that version unknown in layout 1).
public enum StateCodec {
    static let version: UInt8 = 3

    public static func encode(_ s: ItemState, provenance: Provenance = Provenance()) -> [UInt8] {
        var w = ByteWriter()
        w.buffer.reserveCapacity(64 + provenance.application.utf8.count + 8 * provenance.positions.count
                                 + 4 * (s.sis.count + s.su.count + s.dayValues.count + (s.act?.count ?? 0)))
        w.u8(version)
        w.string(provenance.application)
        w.u8(UInt8(truncatingIfNeeded: provenance.positions.count))
        for position in provenance.positions.prefix(255) { w.i64(position) }
        w.string(s.key.promotionID)
        w.string(s.key.itemID)
        var flags: UInt8 = 0
        if s.hasProfile { flags |= 1 }
        if s.act != nil { flags |= 2 }
        if s.pendingSince != nil { flags |= 8 }
        if s.lastGMV != nil { flags |= 16 }
        if s.predictedBy != nil { flags |= 32 }
        if s.closedDay != nil { flags |= 64 }
        w.u8(flags)
        w.u16(s.sii.count)
        for id in s.sii { w.optionalString(id) }
        w.floats(s.sis)
        w.floats(s.su)
        if let act = s.act {
            w.optionalString(s.activityID)
            w.floats(act)
        }
        w.u16(s.dayNumbers.count)
        for day in s.dayNumbers { w.u16(Int(day)) }
        w.bytes(s.dayFlags)
        w.compactFloats(s.dayValues)
        if let pending = s.pendingSince {
            w.i64(pending)
            w.u16(s.waitingDay ?? 0)
        }
        w.i64(Int64(s.sequence))
        if let gmv = s.lastGMV { w.f64(gmv) }
        if let version = s.predictedBy { w.i64(Int64(version)) }
        if let day = s.closedDay { w.u16(day) }
        return w.buffer
    }

    /// The record's state, without its provenance.
    public static func decode(_ bytes: [UInt8]) throws -> ItemState { try decodeWithProvenance(bytes).state }

    public static func decodeWithProvenance(_ bytes: [UInt8]) throws -> (state: ItemState, provenance: Provenance) {
        var r = ByteReader(bytes)
        let v = try r.u8()
        guard (1...version).contains(v) else {
            throw StateCodecError("changelog record layout \(v), this build reads 1 to \(version)")
        }
        var provenance = Provenance()
        if v >= 3 {
            provenance.application = try r.string()
            provenance.positions = try (0..<Int(r.u8())).map { _ in try r.i64() }
        }
        let key = ItemKey(promotionID: try r.string(), itemID: try r.string())
        let flags = try r.u8()
        let sii = try (0..<r.u16()).map { _ in try r.optionalString() }
        var state = ItemState(key: key, siiCount: sii.count, nSis: 0, nU: 0)
        state.sii = sii
        state.hasProfile = flags & 1 != 0
        state.sis = try r.floats()
        state.su = try r.floats()
        if flags & 2 != 0 {
            state.activityID = try r.optionalString()
            state.act = try r.floats()
        }
        let dayCount = try r.u16()
        state.dayNumbers = try (0..<dayCount).map { _ in UInt16(try r.u16()) }
        state.dayFlags = try r.bytes(dayCount)
        state.dayValues = try r.compactFloats()
        if flags & 8 != 0 {
            state.pendingSince = try r.i64()
            state.waitingDay = try r.u16()
        }
        state.sequence = Int(try r.i64())
        if flags & 16 != 0 { state.lastGMV = try r.f64() }
        if v >= 2, flags & 32 != 0 { state.predictedBy = Int(try r.i64()) }
        if flags & 64 != 0 { state.closedDay = try r.u16() }
        guard r.atEnd else { throw StateCodecError("changelog record has \(r.remaining) trailing bytes") }
        return (state, provenance)
    }
}

/// Who wrote a changelog record and what it commits with: the application (the consumer group) and, per input
/// topic in `ServiceTopics.inputs` order, the position in the record's partition after the batch that wrote it,
/// which is the offset that batch commits. A record whose positions lie beyond the group's committed offsets
/// belongs to a transaction that never committed (a broker that shows aborted records) and is not restored.
/// Empty for a record written outside a member (the compact in-memory form, benchmarks): always restored.
public struct Provenance: Sendable, Equatable {
    public var application = ""
    public var positions: [Int64] = []

    public init(application: String = "", positions: [Int64] = []) {
        self.application = application
        self.positions = positions
    }
}

extension Provenance {
    /// Throws unless the record is one to restore: written by `application` (either may be unnamed) from input
    /// positions no later than the group's `committed` offsets (by input topic, 0 where none), so by a transaction
    /// that committed.
    func verify(application expected: String, committed: [Int64], topics: [String]) throws(RestoreError) {
        if !application.isEmpty, !expected.isEmpty, application != expected {
            throw RestoreError.otherApplication(application, expected: expected)
        }
        for (i, position) in positions.enumerated() {
            let limit = i < committed.count ? committed[i] : 0
            guard position <= limit else {
                throw RestoreError.uncommitted(topic: i < topics.count ? topics[i] : "input \(i)", position: position, committed: limit)
            }
        }
    }
}

public struct StateCodecError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

struct ByteWriter {
    var buffer: [UInt8] = []

    mutating func u8(_ v: UInt8) { buffer.append(v) }
    mutating func u16(_ v: Int) {
        precondition(v >= 0 && v < 0xFFFF)
        withUnsafeBytes(of: UInt16(v).littleEndian) { buffer.append(contentsOf: $0) }
    }
    mutating func u32(_ v: Int) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func f32(_ v: Float) { u32(Int(v.bitPattern)) }
    mutating func f64(_ v: Double) { i64(Int64(bitPattern: v.bitPattern)) }
    mutating func bytes(_ b: [UInt8]) { buffer += b }
    mutating func string(_ s: String) {
        u32(s.utf8.count)
        buffer += s.utf8
    }
    /// Length 0xFFFFFFFF marks nil.
    mutating func optionalString(_ s: String?) {
        if let s { string(s) } else { buffer += [0xFF, 0xFF, 0xFF, 0xFF] }
    }
    /// Lossless and smaller for counts: a bitmap marks the values that are whole numbers in 0..<2^28, written as
    /// LEB128 varints (1–4 bytes); the others keep their 4 bytes. Day inputs are mostly counts (units, orders,
    /// views…) and shares that are often exactly 0 or 1.
    mutating func compactFloats(_ values: [Float]) {
        u32(values.count)
        let bitmapStart = buffer.count, start = bitmapStart + (values.count + 7) / 8
        // Written through a pointer into room for the worst case (every value 4 bytes), then trimmed: appending
        // byte by byte was a tenth of the processor's time.
        buffer.append(contentsOf: repeatElement(0, count: start - bitmapStart + 4 * values.count))
        let end = buffer.withUnsafeMutableBufferPointer { buffer in
            values.withUnsafeBufferPointer { values in
                let out = buffer.baseAddress!
                var at = start
                for i in 0..<values.count {
                    let v = values[i]
                    if Self.isSmallWhole(v) {
                        out[bitmapStart + i >> 3] |= 1 << UInt8(i & 7)
                        var n = UInt32(v)
                        while n >= 0x80 {
                            out[at] = UInt8(truncatingIfNeeded: n) | 0x80
                            at += 1
                            n >>= 7
                        }
                        out[at] = UInt8(n)
                        at += 1
                    } else {
                        let bits = v.bitPattern.littleEndian
                        withUnsafeBytes(of: bits) { UnsafeMutableRawPointer(out + at).copyMemory(from: $0.baseAddress!, byteCount: 4) }
                        at += 4
                    }
                }
                return at
            }
        }
        buffer.removeLast(buffer.count - end)
    }

    static func isSmallWhole(_ v: Float) -> Bool {
        // In range, the conversion to an integer and back is exact only for whole numbers.
        v >= 0 && v < 268_435_456 && Float(UInt32(v)) == v && v.bitPattern != Float(-0.0).bitPattern
    }

    mutating func floats(_ values: [Float]) {
        u16(values.count)
        #if _endian(little)
        values.withUnsafeBytes { buffer.append(contentsOf: $0) }
        #else
        for v in values { f32(v) }
        #endif
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { position == bytes.count }
    var remaining: Int { bytes.count - position }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n <= remaining else { throw StateCodecError("changelog record ends early at byte \(position)") }
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    private mutating func unsigned(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt64(b) << UInt64(8 * i) }
        return v
    }

    mutating func u8() throws -> UInt8 { try take(1).first! }
    mutating func u16() throws -> Int { Int(try unsigned(2)) }
    mutating func u32() throws -> Int { Int(try unsigned(4)) }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try unsigned(8)) }
    mutating func f32() throws -> Float { Float(bitPattern: UInt32(try unsigned(4))) }
    mutating func f64() throws -> Double { Double(bitPattern: try unsigned(8)) }
    mutating func bytes(_ n: Int) throws -> [UInt8] { Array(try take(n)) }
    mutating func string() throws -> String { String(decoding: try take(Int(try unsigned(4))), as: UTF8.self) }
    mutating func optionalString() throws -> String? {
        let n = Int(try unsigned(4))
        return n == 0xFFFF_FFFF ? nil : String(decoding: try take(n), as: UTF8.self)
    }
    mutating func compactFloats() throws -> [Float] {
        let n = Int(try unsigned(4))
        let bitmap = try take((n + 7) / 8)
        var out = [Float]()
        out.reserveCapacity(n)
        for i in 0..<n {
            if bitmap[bitmap.startIndex + i / 8] & (1 << UInt8(i % 8)) != 0 {
                var value: UInt32 = 0, shift: UInt32 = 0, byte: UInt8
                repeat {
                    byte = try u8()
                    guard shift < 28 else { throw StateCodecError("changelog record has an overlong varint at byte \(position)") }
                    value |= UInt32(byte & 0x7F) << shift
                    shift += 7
                } while byte & 0x80 != 0
                out.append(Float(value))
            } else {
                out.append(try f32())
            }
        }
        return out
    }

    mutating func floats() throws -> [Float] {
        let n = try u16()
        let raw = try take(4 * n)
        #if _endian(little)
        return [Float](unsafeUninitializedCapacity: n) { buffer, count in
            raw.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            count = n
        }
        #else
        return [Float](unsafeUninitializedCapacity: n) { buffer, count in
            var i = raw.startIndex
            for k in 0..<n {
                buffer[k] = Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16
                                  | UInt32(raw[i + 3]) << 24)
                i += 4
            }
            count = n
        }
        #endif
    }
}

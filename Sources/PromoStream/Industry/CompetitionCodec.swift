import DINOP

/// The binary records of the competition topics (internal to one application, so not public events): a tag byte,
/// then the fields. The repartition topic carries vectors and watermarks; the context topic carries contexts.
/// Decoding is strict: a wrong tag, a field out of range, a non-finite value or bytes left over are errors.
public enum CompetitionCodec {
    static let vectorTag: UInt8 = 1, watermarkTag: UInt8 = 2, contextTag: UInt8 = 3

    /// A repartition topic's record.
    public enum StageInput: Sendable, Equatable {
        case vector(CompetitionVector)
        case watermark(DayWatermark)
    }

    /// The repartition topic's key of an industry: every market of it goes to one stage partition.
    public static func industryKey(promotion: String, industry: String) -> [UInt8] {
        var w = ByteWriter()
        w.string(promotion)
        w.string(industry)
        return w.buffer
    }

    public static func encode(_ v: CompetitionVector) -> [UInt8] {
        var w = ByteWriter()
        w.u8(vectorTag)
        for s in [v.item, v.promotion, v.market, v.industry] { w.string(s) }
        w.u32(v.day)
        w.i64(Int64(v.version))
        w.u32(Int(v.itemPartition))
        vector(v.f, into: &w)
        return w.buffer
    }

    public static func encode(_ m: DayWatermark) -> [UInt8] {
        var w = ByteWriter()
        w.u8(watermarkTag)
        w.string(m.promotion)
        w.u32(Int(m.partition))
        w.u32(Int(m.partitions))
        w.u32(m.day)
        return w.buffer
    }

    public static func encode(_ c: CompetitionContext) -> [UInt8] {
        var w = ByteWriter()
        w.u8(contextTag)
        w.string(c.item)
        w.string(c.promotion)
        w.u32(c.day)
        w.i64(Int64(c.version))
        w.u32(Int(c.itemPartition))
        vector(c.a, into: &w)
        vector(c.q, into: &w)
        return w.buffer
    }

    public static func decodeStageInput(_ bytes: [UInt8]) throws -> StageInput {
        var r = ByteReader(bytes)
        let input: StageInput
        switch try r.u8() {
        case vectorTag:
            let (item, promotion, market, industry) = (try r.string(), try r.string(), try r.string(), try r.string())
            let day = try self.day(&r), version = try self.version(&r), partition = try self.partition(&r)
            input = .vector(CompetitionVector(item: item, promotion: promotion, market: market, industry: industry, day: day,
                                              f: try vector(&r, "f"), version: version, itemPartition: partition))
        case watermarkTag:
            let promotion = try r.string(), partition = try self.partition(&r), partitions = try self.partition(&r)
            guard partitions > 0, partition < partitions else {
                throw StateCodecError("watermark of partition \(partition) of \(partitions)")
            }
            let day = try r.u32()
            guard day <= maximumDay else { throw StateCodecError("watermark day \(day) (at most \(maximumDay))") }
            input = .watermark(DayWatermark(promotion: promotion, partition: partition, partitions: partitions, day: day))
        case let tag: throw StateCodecError("competition record tag \(tag) is not one of the repartition topic's")
        }
        guard r.atEnd else { throw StateCodecError("\(r.remaining) bytes after the competition record") }
        return input
    }

    public static func decodeContext(_ bytes: [UInt8]) throws -> CompetitionContext {
        var r = ByteReader(bytes)
        let tag = try r.u8()
        guard tag == contextTag else { throw StateCodecError("competition record tag \(tag) is not a context's") }
        let item = try r.string(), promotion = try r.string(), day = try self.day(&r), version = try self.version(&r)
        let partition = try self.partition(&r), a = try vector(&r, "a"), q = try vector(&r, "q")
        guard a.count == q.count else { throw StateCodecError("a has \(a.count) values, q \(q.count)") }
        guard r.atEnd else { throw StateCodecError("\(r.remaining) bytes after the competition context") }
        return CompetitionContext(item: item, promotion: promotion, day: day, a: a, q: q, version: version, itemPartition: partition)
    }

    /// Pre-sale days are numbered from 1 (MODEL.md bounds them far below this).
    static let maximumDay = 1 << 16

    private static func day(_ r: inout ByteReader) throws -> Int {
        let day = try r.u32()
        guard (1...maximumDay).contains(day) else { throw StateCodecError("day \(day) (1…\(maximumDay))") }
        return day
    }

    private static func version(_ r: inout ByteReader) throws -> Int {
        let version = try r.i64()
        guard version >= 0 else { throw StateCodecError("model version \(version)") }
        return Int(version)
    }

    private static func partition(_ r: inout ByteReader) throws -> Int32 {
        let p = try r.u32()
        guard p <= Int(Int32.max) else { throw StateCodecError("partition \(p)") }
        return Int32(p)
    }

    private static func vector(_ values: [Float], into w: inout ByteWriter) {
        w.u32(values.count)
        for v in values { w.f32(v) }
    }

    private static func vector(_ r: inout ByteReader, _ name: String) throws -> [Float] {
        let n = try r.u32()
        guard (1...CompetitionSizes.largest).contains(n) else {
            throw StateCodecError("\(name) of \(n) values (1…\(CompetitionSizes.largest))")
        }
        guard r.remaining >= 4 * n else { throw StateCodecError("\(name) of \(n) values ends early") }
        let values = try (0..<n).map { _ in try r.f32() }
        guard values.allSatisfy(\.isFinite) else { throw StateCodecError("\(name) is not finite") }
        return values
    }
}

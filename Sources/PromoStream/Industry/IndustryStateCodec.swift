import DINOP

/// The industry stage's changelog records (`IndustryDays.Record`): a layout byte, the provenance, then the record.
enum IndustryStateCodec {
    static let layout: UInt8 = 1
    /// Bounds on what a corrupt record can make a restore allocate.
    static let largest = 1 << 16

    static func encode(_ record: IndustryDays.Record, provenance: Provenance) -> [UInt8] {
        var w = ByteWriter()
        w.u8(layout)
        w.string(provenance.application)
        w.u8(UInt8(truncatingIfNeeded: min(provenance.positions.count, 255)))
        for position in provenance.positions.prefix(255) { w.i64(position) }
        switch record {
        case .item(let promotion, let industry, let item, let market, let itemPartition, let vectors):
            w.u8(UInt8(ascii: "i"))
            for s in [promotion, industry, item, market] { w.string(s) }
            w.u32(Int(itemPartition))
            w.u32(vectors.count)
            for v in vectors {
                w.u32(v.day)
                w.i64(Int64(v.version))
                w.u32(v.f.count)
                for x in v.f { w.f32(x) }
            }
        case .promotion(let name, let partitions, let watermarks, let closed, let firstHeard, let industries):
            w.u8(UInt8(ascii: "p"))
            w.string(name)
            w.u32(Int(partitions))
            w.u32(watermarks.count)
            for (p, day) in watermarks.sorted(by: { $0.key < $1.key }) {
                w.u32(Int(p))
                w.u32(day)
            }
            w.u32(closed)
            w.u32(firstHeard.count)
            for (day, ms) in firstHeard.sorted(by: { $0.key < $1.key }) {
                w.u32(day)
                w.i64(ms)
            }
            w.u32(industries.count)
            for s in industries { w.string(s) }
        }
        return w.buffer
    }

    static func decode(_ bytes: [UInt8]) throws -> (IndustryDays.Record, Provenance) {
        var r = ByteReader(bytes)
        let v = try r.u8()
        guard v == layout else { throw StateCodecError("industry stage record layout \(v), this build reads \(layout)") }
        let provenance = Provenance(application: try r.string(), positions: try (0..<Int(r.u8())).map { _ in try r.i64() })
        func count(_ what: String) throws -> Int {
            let n = try r.u32()
            guard n <= largest else { throw StateCodecError("\(n) \(what) (at most \(largest))") }
            return n
        }
        let record: IndustryDays.Record
        switch try r.u8() {
        case UInt8(ascii: "i"):
            let (promotion, industry, item, market) = (try r.string(), try r.string(), try r.string(), try r.string())
            let partition = try r.u32()
            guard partition <= Int(Int32.max) else { throw StateCodecError("partition \(partition)") }
            var vectors: [IndustryDays.Record.Vector] = []
            for _ in 0..<(try count("vectors")) {
                let day = try r.u32(), version = try r.i64(), n = try count("values of f")
                guard day >= 1, version >= 0, r.remaining >= 4 * n else { throw StateCodecError("a vector of day \(day) does not read") }
                let f = try (0..<n).map { _ in try r.f32() }
                guard f.allSatisfy(\.isFinite) else { throw StateCodecError("a vector of day \(day) is not finite") }
                vectors.append(.init(day: day, f: f, version: Int(version)))
            }
            record = .item(promotion: promotion, industry: industry, item: item, market: market, itemPartition: Int32(partition),
                           vectors: vectors)
        case UInt8(ascii: "p"):
            let name = try r.string(), partitions = try r.u32()
            guard partitions <= Int(Int32.max) else { throw StateCodecError("\(partitions) partitions") }
            var watermarks: [Int32: Int] = [:]
            for _ in 0..<(try count("watermarks")) {
                let p = try r.u32(), day = try r.u32()
                guard p < partitions else { throw StateCodecError("a watermark of partition \(p) of \(partitions)") }
                watermarks[Int32(p)] = day
            }
            let closed = try r.u32()
            var firstHeard: [Int: Int64] = [:]
            for _ in 0..<(try count("days heard of")) { firstHeard[try r.u32()] = try r.i64() }
            let industries = try (0..<(try count("industries"))).map { _ in try r.string() }
            record = .promotion(name: name, partitions: Int32(partitions), watermarks: watermarks, closed: closed,
                                firstHeard: firstHeard, industries: industries)
        case let tag: throw StateCodecError("industry stage record kind \(tag)")
        }
        guard r.atEnd else { throw StateCodecError("\(r.remaining) bytes after the industry stage record") }
        return (record, provenance)
    }
}

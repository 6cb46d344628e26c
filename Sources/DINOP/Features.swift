/// FNV-1a, 64-bit, over the UTF-8 bytes of `s` (MODEL.md, "Categorical ids").
@inlinable
public func fnv1a64(_ s: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in s.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01b3
    }
    return hash
}

/// Raw inputs of one pre-sale day. A missing value is NaN; `du == nil` means no buyer profile arrived.
public struct RawDay: Sendable, Equatable {
    public var dis: [Float]
    public var du: [Float]?

    public init(dis: [Float], du: [Float]?) {
        self.dis = dis
        self.du = du
    }
}

/// Raw inputs of one item, in the config's feature order. A missing numeric value is NaN.
public struct RawItem: Sendable, Equatable {
    /// One id per `sii_fields` entry; nil or empty takes row 0.
    public var sii: [String?]
    public var sis: [Float]
    public var su: [Float]
    /// Pre-sale days in increasing order.
    public var days: [RawDay]
    /// Activity features, when the JA head is asked about an activity.
    public var act: [Float]?

    public init(sii: [String?], sis: [Float], su: [Float], days: [RawDay], act: [Float]? = nil) {
        self.sii = sii
        self.sis = sis
        self.su = su
        self.days = days
        self.act = act
    }
}

/// Maps named values onto a group's vector, by the feature names of the model config.
public struct FeatureMapper: Sendable {
    public let config: ModelConfig
    private let positions: [FeatureGroup: [String: Int]]

    public init(config: ModelConfig) {
        self.config = config
        var positions: [FeatureGroup: [String: Int]] = [:]
        for group in FeatureGroup.allCases {
            positions[group] = Dictionary(uniqueKeysWithValues: config.names(group).enumerated().map { ($1, $0) })
        }
        self.positions = positions
    }

    /// The group's vector: values by name, NaN for names absent from `values`; names the model lacks are ignored.
    public func vector(_ group: FeatureGroup, _ values: [String: Double]) -> [Float] {
        var out = [Float](repeating: .nan, count: config.count(group))
        for (name, value) in values {
            if let i = positions[group]![name] { out[i] = Float(value) }
        }
        return out
    }

    public func siiIDs(_ ids: [String: String]) -> [String?] { config.siiFields.map { ids[$0] } }

    /// Where each of `names` goes in the group's vector (nil for names the model lacks), for callers that carry
    /// values by position rather than by name.
    public func positions(_ group: FeatureGroup, of names: [String]) -> [Int?] { names.map { positions[group]![$0] } }
}

/// Normalisation of every numeric group: `x = (T(raw) − mean) / std`, and a missing value gives 0.
public struct Normaliser<T: DINOPScalar>: Sendable {
    /// By `FeatureGroup.ordinal` (an array, not a map: this runs per item and day when serving).
    private var mean: [[T]?] = Array(repeating: nil, count: FeatureGroup.allCases.count)
    private var std: [[T]?] = Array(repeating: nil, count: FeatureGroup.allCases.count)
    private var takesLog: [[Bool]?] = Array(repeating: nil, count: FeatureGroup.allCases.count)

    public init(_ parameters: Parameters<T>) {
        let config = parameters.layout.config
        for group in FeatureGroup.allCases where parameters.layout.spec("\(group.rawValue).norm.mean") != nil {
            mean[group.ordinal] = Array(parameters["\(group.rawValue).norm.mean"])
            std[group.ordinal] = Array(parameters["\(group.rawValue).norm.std"])
            let logs = config.log1pNames(group)
            takesLog[group.ordinal] = config.names(group).map { logs.contains($0) }
        }
    }

    /// `T_i(raw_i)` of MODEL.md, or nil for a missing value.
    public static func transformed(_ raw: Float, log1p: Bool) -> Double? {
        guard !raw.isNaN else { return nil }
        return log1p ? Foundation.log1p(max(Double(raw), 0)) : Double(raw)
    }

    public func normalise(_ group: FeatureGroup, _ raw: [Float], into out: UnsafeMutablePointer<T>) {
        let mean = mean[group.ordinal]!, std = std[group.ordinal]!, logs = takesLog[group.ordinal]!
        precondition(raw.count == mean.count, "\(group.rawValue) has \(raw.count) values, the model \(mean.count)")
        for i in 0..<raw.count {
            if let t = Self.transformed(raw[i], log1p: logs[i]) {
                out[i] = (T(t) - mean[i]) / std[i]
            } else {
                out[i] = 0
            }
        }
    }

    public func normalise(_ group: FeatureGroup, _ raw: [Float]) -> [T] {
        [T](unsafeUninitializedCapacity: raw.count) { buffer, count in
            normalise(group, raw, into: buffer.baseAddress!)
            count = raw.count
        }
    }
}

import Foundation

/// An item's inputs normalised for the network.
public struct EncodedItem<T: DINOPScalar>: Sendable {
    /// Embedding row per sii field.
    public var rows: [Int]
    public var sis: [T]
    public var su: [T]
    /// One row `[x_dis | x_du | x_su]` per day (the network's fused input), `days × inputWidth`.
    public var dayInputs: [T]
    public var dayCount: Int
    public var act: [T]?
    /// The item's position in `markets` (MARKETS.md `m`), nil when none: its market terms are left out.
    public var market: Int?
    /// Per field, its row of `sii.spec.<f>` (MARKETS.md `domain-attention`); empty without that extension or a market.
    public var specRows: [Int]
}

extension Network {
    /// Normalises and hashes an item's raw inputs (MODEL.md, "Inputs of one item").
    // Not `exported`: this compiler (6.3.1) then leaves the Float specialization out of the release object while
    // callers link to it. The generic entry dispatches to the specialization at run time.
    @_specialize(where T == Float)
    public func encode(_ item: RawItem) -> EncodedItem<T> {
        let config = layout.config
        precondition(item.sii.count == config.siiFields.count)
        let rows = zip(item.sii, layout.dims.embeddingRows).map { id, v -> Int in
            guard let id, !id.isEmpty else { return 0 }
            return Int(fnv1a64(id) % UInt64(v))
        }
        let su = normaliser.normalise(.su, item.su)
        var inputs = [T](repeating: 0, count: item.days.count * inputWidth)
        inputs.withUnsafeMutableBufferPointer { buffer in
            for (t, day) in item.days.enumerated() {
                let row = buffer.baseAddress! + t * inputWidth
                normaliser.normalise(.dis, day.dis, into: row)
                normaliser.normalise(.du, day.du ?? Array(repeating: .nan, count: nU), into: row + nDis)
                for j in 0..<nU { row[nDis + nU + j] = su[j] }
            }
        }
        let act = config.has(.ja) ? item.act.map { normaliser.normalise(.act, $0) } : nil
        let market = config.readsMarkets ? config.marketIndex(config.marketID(item.sii)) : nil
        let specRows = market.flatMap { m in layout.domainAttention?.specRows(market: m, ids: item.sii) } ?? []
        return EncodedItem(rows: rows, sis: normaliser.normalise(.sis, item.sis), su: su,
                           dayInputs: inputs, dayCount: item.days.count, act: act, market: market, specRows: specRows)
    }
}

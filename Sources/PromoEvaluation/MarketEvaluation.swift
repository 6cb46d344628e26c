import DINOP
import Foundation
import PromoEvents
import PromoFeatures

/// Evaluation across markets (MARKETS.md): which market each item is in, scores assembled from models that each
/// saw some markets, and the rows of one market's table.
public struct MarketSplit: Sendable {
    /// The items' market ids, by `ItemRecord.profile` `market` (empty when missing).
    public let marketOfItem: [String]
    /// Market ids by number of items, most first (ties by id).
    public let markets: [String]

    public init(_ items: LabelledItems) {
        marketOfItem = items.records.map { $0.profile?.ids["market"] ?? "" }
        let counts = Dictionary(marketOfItem.map { ($0, 1) }, uniquingKeysWith: +)
        markets = counts.keys.sorted { (counts[$0]!, $1) > (counts[$1]!, $0) }
    }

    /// Positions of the items of `market`.
    public func indices(of market: String) -> [Int] { marketOfItem.indices.filter { marketOfItem[$0] == market } }
}

extension ItemScores {
    /// The scores of the items at `indices`, in that order.
    public func subset(_ indices: [Int]) -> ItemScores {
        ItemScores(gmv: indices.map { gmv[$0] }, bsp: bsp.map { s in indices.map { s[$0] } },
                   slot: slot.map { s in indices.map { s[$0] } }, ja: ja.map { s in indices.map { s[$0] } })
    }

    /// Scores of `count` items put together from parts, each the scores of the items at its indices (every item in
    /// exactly one part). A head some part lacks is missing for all.
    public static func assembled(count: Int, _ parts: [(indices: [Int], scores: ItemScores)]) -> ItemScores {
        var gmv = [Double](repeating: .nan, count: count)
        var bsp: [Double]? = [Double](repeating: .nan, count: count), slot: [Int]? = [Int](repeating: 0, count: count)
        var ja: [Double?]? = [Double?](repeating: nil, count: count)
        for (indices, scores) in parts {
            for (k, i) in indices.enumerated() {
                gmv[i] = scores.gmv[k]
                if let s = scores.bsp { bsp?[i] = s[k] } else { bsp = nil }
                if let s = scores.slot { slot?[i] = s[k] } else { slot = nil }
                if let s = scores.ja { ja?[i] = s[k] } else { ja = nil }
            }
        }
        return ItemScores(gmv: gmv, bsp: bsp, slot: slot, ja: ja)
    }
}

extension ModelConfig {
    /// This config with MARKETS.md `market-embedding` over `markets`.
    public func withMarketEmbedding(_ markets: [String]) -> ModelConfig {
        var config = self
        config.extensions = [ModelExtension.marketEmbedding]
        config.markets = markets.filter { !$0.isEmpty }
        return config
    }
}

extension ModelConfig {
    /// This config with MARKETS.md `market-embedding` and `domain-attention` over `markets`.
    public func withDomainAttention(_ markets: [String]) -> ModelConfig {
        var config = withMarketEmbedding(markets)
        config.extensions.append(ModelExtension.domainAttention)
        return config
    }
}

/// CATN's ablation of MARKETS.md's `competition`, each on top of a base config.
public enum CompetitionVariant: String, CaseIterable, Sendable {
    case full = "+ competition"
    /// θ pinned at 1 (`comp.theta` = 30, not trained), so `c_i = f_i`: the item's own vector, no competitor's.
    case withoutCompetitive = "+ competition without competitive attention"
    /// `cooperation: false`: no `q_i`.
    case withoutCooperative = "+ competition without cooperative attention"

    /// `base` with the extension, cooperation as the variant has it.
    public func config(_ base: ModelConfig) -> ModelConfig {
        var config = base
        if !config.has(extension: ModelExtension.competition) { config.extensions.append(ModelExtension.competition) }
        config.competition.cooperation = self != .withoutCooperative
        return config
    }

    /// A freshly initialised `model` of `config(_:)` and its training options, pinned as the variant needs.
    public func pin(_ model: inout DINOPModel, _ options: inout TrainingOptions) {
        guard self == .withoutCompetitive, model.layout.spec("comp.theta") != nil else { return }
        model.parameters["comp.theta"] = [30]  // σ(30) is 1 in float32
        options.frozen.insert("comp.theta")
    }
}

/// A table of named figures per row (MARKETS.md's discriminator accuracies, the feature importance), as text or
/// as JSON (`{"title", "columns": [...], "rows": [{"name", "values": [...]}]}`) for scripts that average seeds.
public struct FigureTable: Sendable {
    public var title: String
    public var columns: [String]
    public var rows: [(name: String, values: [Double])] = []

    public init(title: String, columns: [String]) {
        self.title = title
        self.columns = columns
    }

    public var text: String {
        var lines = [title, "", "| | " + columns.joined(separator: " | ") + " |",
                     "|---|" + String(repeating: "---:|", count: columns.count)]
        for row in rows {
            lines.append("| \(row.name) | " + row.values.map { $0.isNaN ? "—" : String(format: "%.3f", $0) }.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        var w = JSONWriter()
        w.beginObject()
        w.field("title", title)
        w.key("columns")
        w.beginArray()
        for column in columns { w.string(column) }
        w.endArray()
        w.key("rows")
        w.beginArray()
        for row in rows {
            w.beginObject()
            w.field("name", row.name)
            w.key("values")
            w.beginArray()
            for v in row.values { w.number(v) }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

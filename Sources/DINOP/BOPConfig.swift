import Foundation

/// BOP.md's `bop` config object: the transformer's sizes. All six keys are required in a file (the number of
/// attention heads cannot be read off the tensors); an unknown key is refused.
public struct BOPConfig: Codable, Equatable, Sendable {
    /// `d`, `L`, `g`, `d_ff`, `n_max` (tokens, the candidate included), `V_b`.
    public var width: Int, layers: Int, heads: Int, ffn: Int, maxHistory: Int, itemRows: Int

    /// ACMR's sizes, the trainer's defaults.
    public static let acmr = BOPConfig(width: 32, layers: 4, heads: 8, ffn: 128, maxHistory: 50, itemRows: 200_003)

    public init(width: Int, layers: Int, heads: Int, ffn: Int, maxHistory: Int, itemRows: Int) {
        (self.width, self.layers, self.heads, self.ffn, self.maxHistory, self.itemRows) = (width, layers, heads, ffn, maxHistory, itemRows)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case width, layers, heads, ffn, maxHistory = "max_history", itemRows = "item_rows"
    }

    public init(from decoder: any Decoder) throws {
        if let problem = try unknownKey(decoder, CodingKeys.self, in: "bop") { throw BOPError.invalidConfig(problem) }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func required(_ key: CodingKeys) throws -> Int {
            guard let value = try c.decodeIfPresent(Int.self, forKey: key) else {
                throw BOPError.invalidConfig("bop needs \"\(key.stringValue)\" (all six keys are required in a file)")
            }
            return value
        }
        self.init(width: try required(.width), layers: try required(.layers), heads: try required(.heads),
                  ffn: try required(.ffn), maxHistory: try required(.maxHistory), itemRows: try required(.itemRows))
    }

    /// The most any size may be, so that no product of a few of them overflows.
    public static let largest = 1 << 24
    /// The most encoder layers.
    public static let mostLayers = 1024

    /// Checks what the math relies on.
    public func validate() throws {
        for (value, name) in [(width, "width"), (layers, "layers"), (heads, "heads"), (ffn, "ffn"),
                              (maxHistory, "max_history"), (itemRows, "item_rows")] {
            guard (1...Self.largest).contains(value) else {
                throw BOPError.invalidConfig("bop.\(name) must be in 1...\(Self.largest), got \(value)")
            }
        }
        // The layout lists 12 tensors per layer: a file's count must not make that list the allocation it is meant
        // to refuse before anything else.
        guard layers <= Self.mostLayers else { throw BOPError.invalidConfig("bop.layers must be in 1...\(Self.mostLayers), got \(layers)") }
        guard width % heads == 0 else { throw BOPError.invalidConfig("bop.width \(width) is not divisible by bop.heads \(heads)") }
        guard maxHistory >= 1 else { throw BOPError.invalidConfig("bop.max_history must count the candidate") }
    }

}

/// Errors of the BOP model; each message is meant for the person who runs the command.
public enum BOPError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case wrongFile(String)
    /// An item model and a BOP model that one combined file cannot hold.
    case incompatible(String)

    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid BOP config: \(why)"
        case .wrongFile(let why): "not a BOP weight file (dinop/2 with extension bop): \(why)"
        case .incompatible(let why): "the item model and the BOP model do not combine: \(why)"
        }
    }
}

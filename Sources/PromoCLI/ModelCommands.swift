import ArgumentParser
import DINOP
import Foundation
import PromoServer

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Write a freshly initialised dinop/1 weight file.")

    @Option(help: "Output weight file.") var out: String
    @Option(help: "A feature config file (the weight file's config keys, each optional); flags below override it.")
    var config: String?
    @Option(help: "Hidden size H of the TUC-GRU.") var hidden: Int?
    @Option(help: "Attention size A.") var attention: Int?
    @Option(help: "Comma-separated heads (gmv,bsp,ss,ja).") var heads: String?
    @Option(help: "Rows V_f of each sii embedding table.") var embeddingRows = 100_003
    @Option(help: "Width d_f of each sii embedding.") var embeddingWidth = 16
    @Option(help: "Width of the sii, sis and act encoders (D).") var encoderWidth = 64
    @Option(help: "Hidden width H_k of each head.") var headHidden = 128
    @Option(help: "Seed of the initial weights.") var seed: UInt64 = 1
    @Option(help: "Model version written to the file.") var version = 1

    func validate() throws {
        for (value, flag) in [(hidden ?? 1, "--hidden"), (attention ?? 1, "--attention"), (embeddingWidth, "--embedding-width"),
                              (encoderWidth, "--encoder-width"), (headHidden, "--head-hidden")] {
            try FlagCheck.inRange(value, FlagCheck.layerSize, flag)
        }
        try FlagCheck.inRange(embeddingRows, 1...50_000_000, "--embedding-rows")
        try FlagCheck.atLeast(version, 1, "--version")
    }

    func run() throws {
        var modelConfig = try config.map { try loadConfigFile($0, base: .default) } ?? .default
        if let hidden { modelConfig.hidden = hidden }
        if let attention { modelConfig.attention = attention }
        if let heads { modelConfig.heads = heads.split(separator: ",").map { String($0) } }
        let dims = ModelDimensions.defaults(for: modelConfig, rows: embeddingRows, width: embeddingWidth,
                                            encoderWidth: encoderWidth, headHidden: headHidden)
        do {
            var model = try DINOPModel.random(config: modelConfig, dims: dims, seed: seed)
            model.version = version
            try model.write(to: URL(fileURLWithPath: out))
            report("wrote \(out): version \(version), \(model.layout.count) parameters")
        } catch let error as ModelError {
            throw ValidationError(error.description)
        }
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Print a weight file's version, parent, config and tensors.")

    @Argument(help: "A dinop/1 weight file.") var file: String

    func run() throws {
        let model = try loadModel(file)
        print(describe(model))
    }
}

/// The text `promo model inspect` prints.
public func describe(_ model: DINOPModel) -> String {
    var lines = [
        "format:     \(DINOPModel.format)",
        "version:    \(model.version)",
        "parent:     \(model.parent.map(String.init) ?? "-")",
        "parameters: \(model.layout.count)",
        "config:     \(model.config.jsonString)",
        "",
    ]
    let nameWidth = max(model.layout.specs.map(\.name.count).max() ?? 0, 30)
    lines.append("tensor".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  shape          count")
    for spec in model.layout.specs {
        let shape = "[" + spec.shape.map(String.init).joined(separator: ", ") + "]"
        lines.append(spec.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  "
                     + shape.padding(toLength: 14, withPad: " ", startingAt: 0) + " " + String(spec.count))
    }
    for (name, tensor) in model.extraTensors.sorted(by: { $0.key < $1.key }) {
        lines.append(name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  \(tensor.shape) (extension, not run)")
    }
    return lines.joined(separator: "\n")
}

/// Loads a weight file, turning a model error into a clear command-line error.
func loadModel(_ path: String) throws -> DINOPModel {
    do {
        return try WeightFile.load(path)
    } catch let error as PromoServerError {
        throw ValidationError(error.description)
    }
}

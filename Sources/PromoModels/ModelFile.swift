import BOP
import DINOP
import Foundation

/// What every reader of an item-model weight file runs (a member's `--model`, a version from the model topic, one
/// about to be published): the item model, and when the file lists BOP.md's `bop` extension, its BOP part too. The
/// item reader keeps that part without reading it; a version whose BOP part the recommendation role would refuse
/// must not reach the topic.
public enum ModelFile {
    public static func read(_ data: Data) throws -> DINOPModel {
        let model = try DINOPModel(safetensors: data)
        if model.config.has(extension: ModelExtension.bop) { _ = try BOPModel(safetensors: data) }
        return model
    }

    public static func read(contentsOf url: URL) throws -> DINOPModel {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.notSafetensors("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try read(data)
    }
}

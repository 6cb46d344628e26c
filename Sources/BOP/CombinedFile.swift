import DINOP
import Foundation

extension BOPModel {
    /// One `dinop/2` file with the item model and this BOP model (BOP.md): the item model's config with `bop` among
    /// its extensions and this model's `bop` object, its tensors, and these. The item role serves it as an item
    /// model (publishing each item's `rep` when this model has `bop.rep.weight`); the recommendation role reads the
    /// BOP part. It travels on the model topic as an item-model version: `version` and `parent` (by default the
    /// item model's) name it there.
    public func combined(with item: DINOPModel, version: Int? = nil, parent: Int?? = nil) throws -> DINOPModel {
        var config = item.config
        // A market-free item model takes the BOP model's markets; otherwise both index the same list.
        if !config.readsMarkets { config.markets = markets }
        guard config.markets.map({ Array($0.utf8) }) == markets.map({ Array($0.utf8) }) else {
            throw BOPError.incompatible("the item model's markets \(config.markets) are not the BOP model's \(markets); both index one list")
        }
        if let repWidth, repWidth != item.layout.representationWidth {
            throw BOPError.incompatible("bop.rep.weight takes a rep of width \(repWidth); the item model's is \(item.layout.representationWidth)")
        }
        if repWidth != nil, item.layout.representationWidth > DINOPModel.largestPublishedRepresentation {
            throw BOPError.incompatible("the item model's rep has \(item.layout.representationWidth) values; a prediction carries at most \(DINOPModel.largestPublishedRepresentation)")
        }
        if let other = item.extraTensors.keys.sorted().first(where: { !$0.hasPrefix("bop.") }) {
            throw BOPError.incompatible("the item model holds tensor \"\(other)\", which no dinop/2 reader takes")
        }
        if !config.has(extension: ModelExtension.bop) { config.extensions.append(ModelExtension.bop) }
        config.bop = self.config
        let layout: ParameterLayout
        do { layout = try ParameterLayout(config: config, dims: item.layout.dims) } catch {
            throw BOPError.incompatible("the combined config is not valid: \(error)")
        }
        // The `bop` extension adds no item tensor: the item model's values keep their places.
        guard layout.specs.map(\.name) == item.layout.specs.map(\.name), layout.count == item.parameters.values.count else {
            throw BOPError.incompatible("the combined config places the item model's tensors differently")
        }
        var tensors: [String: StoredTensor] = [:]
        for spec in self.layout.specs { tensors[spec.name] = StoredTensor(shape: spec.shape, values: Array(values[spec.range])) }
        return DINOPModel(parameters: Parameters(layout: layout, values: item.parameters.values), version: version ?? item.version,
                          parent: parent ?? item.parent, extraTensors: tensors)
    }
}

import Foundation

extension Prediction {
    /// Why this prediction cannot be published, or nil when it can: every value must be a finite float32 number,
    /// which is how consumers (and a PyTorch reader) hold them. A NaN or infinite head output, or a GMV whose
    /// `expm1` overflows, comes from inputs or weights far outside anything the model was trained on.
    public var notFiniteReason: String? {
        func bad(_ value: Double) -> Bool { !value.isFinite || abs(value) > Double(Float.greatestFiniteMagnitude) }
        var problems: [String] = []
        for (name, value) in [("gmv", gmv), ("bsp", bsp)] { if let value, bad(value) { problems.append("\(name) = \(value)") } }
        if let probabilities = slotProbabilities, probabilities.contains(where: bad) {
            problems.append("slot probabilities \(probabilities.map { "\($0)" }.joined(separator: ", "))")
        }
        if let ja, bad(ja) { problems.append("ja = \(ja)") }
        if let rep, let at = rep.firstIndex(where: bad) { problems.append("rep[\(at)] = \(rep[at])") }
        return problems.isEmpty ? nil : "prediction not finite: " + problems.joined(separator: "; ")
    }
}

extension DINOPModel {
    /// Refuses weights that give a prediction that is not finite (`Prediction.notFiniteReason`) for ordinary
    /// inputs: an item with every feature missing (at the normalisation means), and items whose every
    /// transformed feature lies one unit below or above its mean, each with no day and with `days` days, with and
    /// without an activity. Finite weights can still overflow (a bias of 1e4 in the GMV head, weights of 3e38, a
    /// normalisation std of 1e-38): such a file would otherwise load and then fail on every item it scores.
    public func checkOrdinaryPredictions(days: Int = 20) throws(ModelError) {
        let network = Network(parameters)
        var scorer = Scorer(network: network, capacity: 8)
        let config = self.config
        func raw(_ group: FeatureGroup, shift: Float?) -> [Float] {
            let names = config.names(group), logs = config.log1pNames(group)
            guard let shift, layout.spec("\(group.rawValue).norm.mean") != nil else {
                return Array(repeating: .nan, count: names.count)
            }
            // The raw value whose transform T_i lies `shift` from the mean.
            return zip(names, parameters["\(group.rawValue).norm.mean"]).map { name, mean in
                let t = mean + shift
                return logs.contains(name) ? Float(Foundation.expm1(Double(max(t, 0)))) : t
            }
        }
        var items: [(String, RawItem)] = []
        for shift in [nil, -1, 1] as [Float?] {
            let level = shift.map { "every feature \($0 > 0 ? "one above" : "one below") its mean" } ?? "every feature missing"
            for dayCount in [0, max(days, 1)] {
                for activity in config.has(.ja) ? [false, true] : [false] {
                    let day = RawDay(dis: raw(.dis, shift: shift), du: raw(.du, shift: shift))
                    let item = RawItem(sii: Array(repeating: nil, count: config.siiFields.count),
                                       sis: raw(.sis, shift: shift), su: raw(.su, shift: shift),
                                       days: Array(repeating: day, count: dayCount),
                                       act: activity ? raw(.act, shift: shift) : nil)
                    items.append(("an item with \(level), \(dayCount) days\(activity ? ", an activity" : "")", item))
                }
            }
        }
        // One item of each listed market (MARKETS.md), so that every market's own parts are run too.
        if config.readsMarkets, let field = config.marketField {
            for market in config.markets {
                var ids = [String?](repeating: nil, count: config.siiFields.count)
                ids[field] = market
                let day = RawDay(dis: raw(.dis, shift: nil), du: raw(.du, shift: nil))
                items.append(("an item of market \(market) with every feature missing",
                              RawItem(sii: ids, sis: raw(.sis, shift: nil), su: raw(.su, shift: nil),
                                      days: Array(repeating: day, count: max(days, 1)), act: nil)))
            }
        }
        let predictions = scorer.predict(items.map { network.encode($0.1) })
        for ((what, _), prediction) in zip(items, predictions) {
            if let reason = prediction.notFiniteReason {
                throw .unusable("for \(what) the weights give a \(reason)")
            }
        }
    }
}

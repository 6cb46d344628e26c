@testable import DINOP
import Foundation
import Testing

@Suite("MARKETS.md domain-attention")
struct DomainAttentionTests {
    /// A double-precision model with every domain-attention tensor random (the heads' `o` weights and the
    /// discriminators too, which a fresh model starts at zero) and a batch with items of three listed markets,
    /// unlisted ones and one without a market id.
    func fixture(seed: UInt64) throws -> (ParameterLayout, Parameters<Double>, [RawItem], [ItemLabels]) {
        let config = smallDomainConfig()
        let layout = try ParameterLayout(config: config, dims: domainDims(config))
        let parameters = randomParameters(layout, seed: seed, scale: 1.5).converted(to: Double.self)
        var rng = SeededGenerator(seed: seed + 1)
        var raw = [0, 1, 3, 6, 2, 6, 4].map { randomItem(config, days: $0, rng: &rng, activity: $0 != 2) }
        for (i, id) in ["id-1", "id-2", "id-2", "id-5", "id-1"].enumerated() { raw[i + 1].sii[0] = id }
        raw[6].sii[0] = nil
        raw[3].sii[3] = ""  // an empty id takes its market block's first spec row
        let labels = raw.indices.map { i in
            ItemLabels(gmv: exp(2 + rng.normal()), bestSeller: i % 2 == 0, slot: 1 + i % 10, joinedActivity: i % 3 == 0)
        }
        return (layout, parameters, raw, labels)
    }

    /// Every value the objectives read: the task loss (with L2) and the unweighted domain terms.
    struct Objectives {
        var task: Double, discriminator: Double, entropy: Double, spec: Double
    }

    func objectives(_ p: Parameters<Double>, _ raw: [RawItem], _ labels: [ItemLabels], _ options: LossOptions) -> Objectives {
        let network = Network(p)
        var pass = BatchPass(network: network, items: raw.map { network.encode($0) }, labels: labels)
        var unused = SeededGenerator(seed: 0)
        pass.forward(dropout: 0, rng: &unused)
        var scratch = Parameters<Double>.zeros(p.layout)
        let (domain, _, _) = pass.domainTerms(options: options.domain, into: &scratch)
        return Objectives(task: pass.loss(options: options).0.total, discriminator: domain.discriminator,
                          entropy: domain.entropy, spec: domain.spec)
    }

    /// Central finite differences in float64 of the objective each tensor follows (MARKETS.md): what lies below
    /// `rep` and `o` follows the task loss, `λ_spec ·` the discrimination term and the adversarial term (`λ_adv ·`
    /// the entropy, or `−λ ·` the discriminator's cross-entropy through the reversal layer); `dom.c` follows its own
    /// cross-entropy only (the entropy term gives it nothing, the reversal does not flip its own gradient); `dom.m`
    /// the discrimination term.
    @Test("finite-difference check of every domain-attention tensor, for each adversarial term",
          arguments: AdversarialTerm.allCases)
    func finiteDifferences(adversarial: AdversarialTerm) throws {
        let (layout, parameters, raw, labels) = try fixture(seed: 31)
        var options = LossOptions()
        options.dropout = 0
        options.l2 = 1e-2
        options.domain.adversarial = adversarial
        options.domain.adversarialWeight = 0.7
        options.domain.specWeight = 0.4
        options.domain.progress = 0.3
        let reversal = options.domain.reversalScale
        #expect(reversal > 0 && reversal < 0.7)

        func objective(_ spec: TensorSpec, _ p: Parameters<Double>) -> Double {
            let o = objectives(p, raw, labels, options)
            if spec.name.hasPrefix("dom.c.") { return o.task + o.discriminator }
            let adversarialTerm = switch adversarial {
            case .none: 0.0
            case .entropy: options.domain.adversarialWeight * o.entropy
            case .reversal: -reversal * o.discriminator
            }
            return o.task + options.domain.specWeight * o.spec + adversarialTerm
        }

        let network = Network(parameters)
        var pass = BatchPass(network: network, items: raw.map { network.encode($0) }, labels: labels)
        var unused = SeededGenerator(seed: 0)
        pass.forward(dropout: 0, rng: &unused)
        let (_, dOutputs) = pass.loss(options: options)
        var gradient = Parameters<Double>.zeros(layout)
        let (losses, dRep, dO) = pass.domainTerms(options: options.domain, into: &gradient)
        #expect(losses.items == 5 && losses.discriminator > 0 && losses.spec > 0 && losses.entropy < 0)
        pass.backward(dOutputs: dOutputs, options: options, dRepExtra: dRep, dO: dO, into: &gradient)

        let checked = expectGradientsMatch(layout, gradient, items: pass.items, perTensor: 5, seed: 33,
                                           label: "\(adversarial) ") { spec, i in
            // 1e-5, not 1e-6: the domain terms add to the objective's size, and so to its rounding noise.
            let eps = 1e-5
            var plus = parameters, minus = parameters
            plus.values[i] += eps
            minus.values[i] -= eps
            return (objective(spec, plus) - objective(spec, minus)) / (2 * eps)
        }
        #expect(checked > 150)
    }

    /// The entropy term's gradient really reaches `rep` and the reversal's flips sign: with the task loss and the
    /// discrimination term switched off, the gradient below `rep` is the adversarial term's alone.
    @Test("the adversarial terms push rep, with the reversal's sign")
    func adversarialDirections() throws {
        let (layout, parameters, raw, labels) = try fixture(seed: 41)
        func repGradient(_ adversarial: AdversarialTerm) -> [Double] {
            var options = LossOptions()
            options.dropout = 0
            options.l2 = 0
            options.domain.adversarial = adversarial
            options.domain.progress = 1
            let network = Network(parameters)
            var pass = BatchPass(network: network, items: raw.map { network.encode($0) }, labels: labels)
            var unused = SeededGenerator(seed: 0)
            pass.forward(dropout: 0, rng: &unused)
            var gradient = Parameters<Double>.zeros(layout)
            return pass.domainTerms(options: options.domain, into: &gradient).dRep
        }
        let none = repGradient(.none), reversal = repGradient(.reversal), entropy = repGradient(.entropy)
        #expect(none.allSatisfy { $0 == 0 })
        #expect(reversal.contains { abs($0) > 1e-6 } && entropy.contains { abs($0) > 1e-6 })
        // λ at p = 1 is λ_adv · (2 / (1 + e^−10) − 1): the reversal's gradient is −λ times the discriminator's.
        var options = DomainLossOptions()
        options.progress = 1
        #expect(abs(options.reversalScale - 0.1 * (2 / (1 + exp(-10.0)) - 1)) < 1e-12)
        options.progress = 0
        #expect(options.reversalScale == 0)
    }

    @Test("incremental scoring equals the batch pass with domain-attention (market-embedding on and off)",
          arguments: [true, false])
    func incrementalMatchesBatch(marketEmbedding: Bool) throws {
        let config = smallDomainConfig(hidden: 16, attention: 8, marketEmbedding: marketEmbedding)
        let layout = try ParameterLayout(config: config, dims: domainDims(config))
        let network = Network(randomParameters(layout, seed: 5, scale: 2))
        var rng = SeededGenerator(seed: 6)
        let items = (0...30).map { days in network.encode(randomItem(config, days: days, rng: &rng)) }
        #expect(items.contains { $0.market != nil } && items.contains { $0.market == nil })
        var pass = BatchPass(network: network, items: items, labels: items.map { _ in ItemLabels() })
        var unused = SeededGenerator(seed: 0)
        pass.forward(dropout: 0, rng: &unused)
        var scorer = Scorer(network: network, capacity: items.count)
        let predictions = scorer.predict(items)
        let width = network.outputWidth
        for (position, index) in pass.order.enumerated() {
            let batchRaw = Array(pass.outputs[(position * width)..<((position + 1) * width)])
            let batchPrediction = network.decode(batchRaw, days: items[index].dayCount, hasActivity: items[index].act != nil)
            let incremental = predictions[index]
            #expect(relativeClose(incremental.gmv!, batchPrediction.gmv!, rtol: 1e-5, atol: 1e-6))
            #expect(relativeClose(incremental.bsp!, batchPrediction.bsp!, rtol: 1e-5, atol: 1e-7))
            for (a, b) in zip(incremental.slotProbabilities!, batchPrediction.slotProbabilities!) {
                #expect(relativeClose(a, b, rtol: 1e-5, atol: 1e-7))
            }
        }
    }

    @Test("items without a listed market take the shared parts alone; o's term changes a listed market's prediction")
    func marketNoneIsShared() throws {
        let config = smallDomainConfig(marketEmbedding: false)
        let layout = try ParameterLayout(config: config, dims: domainDims(config))
        let parameters = randomParameters(layout, seed: 8, scale: 2)
        var rng = SeededGenerator(seed: 9)
        var item = randomItem(config, days: 4, rng: &rng)
        // The same item with its market's parts zeroed predicts as with an unlisted market.
        var zeroed = parameters
        for spec in layout.specs where spec.name.hasPrefix("spec.fc.") || spec.name.hasSuffix(".spec.weight") {
            for i in spec.range { zeroed.values[i] = 0 }
        }
        func gmv(_ p: Parameters<Float>, market: String?) -> Double {
            item.sii[0] = market
            let network = Network(p)
            var scorer = Scorer(network: network, capacity: 1)
            return scorer.predict([network.encode(item)])[0].bsp!
        }
        #expect(gmv(parameters, market: "unlisted") == gmv(zeroed, market: "unlisted"))
        #expect(gmv(parameters, market: nil) == gmv(zeroed, market: nil))
        #expect(gmv(parameters, market: "id-3") != gmv(zeroed, market: "id-3"))
    }
}

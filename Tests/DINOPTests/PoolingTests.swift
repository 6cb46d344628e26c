@testable import DINOP
import Foundation
import Testing

@Suite("Attention pooling and batching")
struct PoolingTests {
    /// MODEL.md: incremental (online-softmax) pooling agrees with the batch formula to 1e-5 relative.
    @Test("incremental pooling equals the batch formula (also with market-embedding)",
          arguments: [(16, 8, 1 as UInt64, false), (128, 64, 2, false), (16, 8, 3, true)])
    func incrementalMatchesBatch(hidden: Int, attention: Int, seed: UInt64, markets: Bool) throws {
        let config = markets ? smallMarketConfig(hidden: hidden, attention: attention) : smallConfig(hidden: hidden, attention: attention)
        let layout = try ParameterLayout(config: config, dims: smallDims(config))
        let network = Network(randomParameters(layout, seed: seed, scale: 2))
        var rng = SeededGenerator(seed: seed + 100)
        let items = (0...30).map { days in network.encode(randomItem(config, days: days, rng: &rng)) }
        if markets { #expect(items.contains { $0.market != nil } && items.contains { $0.market == nil }) }

        // The batch form, over all items at once.
        var pass = BatchPass(network: network, items: items, labels: items.map { _ in ItemLabels() })
        var dropoutRNG = SeededGenerator(seed: 0)
        pass.forward(dropout: 0, rng: &dropoutRNG)

        // The incremental form, fed the same day blocks so both see bit-identical h and scores.
        var scorer = Scorer(network: network, capacity: items.count)
        var batch = ItemBatch(network: network)
        for index in pass.order { batch.append(items[index], network: network) }
        for t in pass.active.indices {
            let k = network.inputWidth
            let block = Array(pass.x[(pass.offsets[t] * k)..<((pass.offsets[t] + pass.active[t]) * k)])
            scorer.advance(&batch, rows: pass.active[t], x: block)
        }
        let h = network.hidden
        var incremental = [[Float]](repeating: [], count: items.count)
        for (position, index) in pass.order.enumerated() {
            let acc = batch.acc[(position * h)..<((position + 1) * h)]
            incremental[index] = items[index].dayCount == 0 ? Array(repeating: 0, count: h)
                                                             : acc.map { $0 / batch.scoreSum[position] }
        }
        var spread: Float = 0
        for (position, itemIndex) in pass.order.enumerated() {
            let batchForm = pass.pooled[(position * network.hidden)..<((position + 1) * network.hidden)]
            for (a, b) in zip(incremental[itemIndex], batchForm) {
                #expect(relativeClose(Double(a), Double(b), rtol: 1e-5, atol: 1e-7),
                        "item with \(items[itemIndex].dayCount) days: incremental \(a), batch \(b)")
            }
            if items[itemIndex].dayCount > 1 {
                let weights = (0..<items[itemIndex].dayCount).map { pass.attentionWeights[pass.offsets[$0] + position] }
                spread = max(spread, weights.max()! - weights.min()!)
            }
        }
        // The check means something only if the attention is far from uniform.
        #expect(spread > 0.05)
    }

    @Test("a batch of many items gives each item's own prediction")
    func batchedEqualsSingle() throws {
        let config = smallConfig(hidden: 32, attention: 16)
        let layout = try ParameterLayout(config: config, dims: smallDims(config))
        let network = Network(randomParameters(layout, seed: 3))
        var rng = SeededGenerator(seed: 4)
        let items = (0..<40).map { _ in network.encode(randomItem(config, days: Int(rng.next() % 15), rng: &rng,
                                                                 activity: rng.unit() < 0.5)) }
        var wide = Scorer(network: network, capacity: 64)
        var narrow = Scorer(network: network, capacity: 1)
        let together = wide.predict(items)
        let alone = narrow.predict(items)
        for (a, b) in zip(together, alone) {
            #expect(a.daysSeen == b.daysSeen && a.slot == b.slot && (a.ja == nil) == (b.ja == nil))
            #expect(relativeClose(a.gmv!, b.gmv!, rtol: 1e-5, atol: 1e-6))
            #expect(relativeClose(a.bsp!, b.bsp!, rtol: 1e-5, atol: 1e-7))
            if let ja = a.ja { #expect(relativeClose(ja, b.ja!, rtol: 1e-5, atol: 1e-7)) }
        }
    }

    @Test("vectorised sigmoid and tanh match libm")
    func elementwise() {
        var values = (0..<4001).map { Float($0 - 2000) / 100 }
        values += [1e-4, -1e-4, 1e-7, 0, 90, -90, 200, -200]
        var s = values, t = values
        Float.sigmoid(&s, count: s.count)
        Float.tanh(&t, count: t.count)
        for (i, x) in values.enumerated() {
            let sigmoid = 1 / (1 + exp(-Double(x))), tanh = Foundation.tanh(Double(x))
            #expect(relativeClose(Double(s[i]), sigmoid, rtol: 3e-7, atol: 1e-30), "sigmoid(\(x))")
            #expect(relativeClose(Double(t[i]), tanh, rtol: 3e-7, atol: 1e-30), "tanh(\(x))")
        }
    }
}

import DINOP

/// An item to step: its state (taken out of its table while it is computed) and the days to step it through.
struct StepJob {
    var partition: Int32
    var state: ItemState
    var steps: [Int]
    /// Stepped from day zero (the stored model state does not cover a prefix of `steps`).
    var fresh: Bool
}

/// Steps many items through their days together, one GEMM per day and chunk of `batchRows` items, from their
/// stored model state (or from day zero): MODEL.md's incremental form, batched.
struct BatchedStepper {
    let version: Int
    let batchRows: Int
    /// Whether predictions carry the item's `rep` (a file with BOP.md's `bop.rep.weight`).
    let representation: Bool
    private let network: Network<Float>
    private var scorer: Scorer<Float>

    init(model: DINOPModel, batchRows: Int) {
        version = model.version
        representation = model.publishesRepresentation
        self.batchRows = batchRows
        network = Network(model.parameters)
        scorer = Scorer(network: network, capacity: batchRows)
    }

    /// Steps every job and hands each, in place and with its index, to `body` with its new model state (its `appliedDays` holding
    /// only the days stepped now) and its prediction. Longest first, so that the items still stepping on day t
    /// are a prefix of each chunk.
    mutating func step(_ jobs: inout [StepJob], _ body: (Int, inout StepJob, HotState, Prediction) -> Void) {
        let order = jobs.indices.sorted { (jobs[$0].steps.count, $1) > (jobs[$1].steps.count, $0) }
        for start in stride(from: 0, to: order.count, by: batchRows) {
            let chunk = order[start..<min(start + batchRows, order.count)]
            let results = jobs.withUnsafeMutableBufferPointer { evaluate(chunk, of: $0) }
            for (i, (hot, prediction)) in zip(chunk, results) { body(i, &jobs[i], hot, prediction) }
        }
    }

    /// The jobs at `chunk` (longest first) as one batch per day. Changes no job.
    /// (The jobs are mutable only so that their states are read in place: calling a method of a state read
    /// from a buffer or an array copies all of it first.)
    private mutating func evaluate(_ chunk: ArraySlice<Int>, of jobs: UnsafeMutableBufferPointer<StepJob>) -> [(HotState, Prediction)] {
        // A local copy: calling into a stored struct of `self` would copy it per call.
        let network = self.network
        let (nDis, nU) = (network.nDis, network.nU)
        let encoded = chunk.map { i in
            let steps = jobs[i].steps
            return network.encode(inPlace(&jobs[i].state) { $0.rawItem(days: steps, nDis: nDis, nU: nU) })
        }
        var batch = ItemBatch(network: network)
        batch.append(contentsOf: encoded, network: network)
        let hd = network.hidden
        for (row, i) in chunk.enumerated() where !jobs[i].fresh {
            guard let hot = jobs[i].state.hot else { continue }
            batch.days[row] = hot.appliedDays.count
            batch.h.replaceSubrange((row * hd)..<((row + 1) * hd), with: hot.h)
            batch.acc.replaceSubrange((row * hd)..<((row + 1) * hd), with: hot.acc)
            batch.maxScore[row] = hot.maxScore
            batch.scoreSum[row] = hot.scoreSum
        }
        let k = network.inputWidth
        let longest = chunk.first.map { jobs[$0].steps.count } ?? 0
        var x = [Float](repeating: 0, count: chunk.count * k)
        for t in 0..<longest {
            let active = chunk.prefix { jobs[$0].steps.count > t }.count
            for row in 0..<active {
                x.replaceSubrange((row * k)..<((row + 1) * k), with: encoded[row].dayInputs[(t * k)..<((t + 1) * k)])
            }
            scorer.advance(&batch, rows: active, x: x)
        }
        let predictions = scorer.predictions(batch, rows: chunk.count, representation: representation)
        return zip(chunk, predictions).enumerated().map { row, item in
            (HotState(modelVersion: version, appliedDays: jobs[item.0].steps.map { UInt16($0) },
                      h: Array(batch.h[(row * hd)..<((row + 1) * hd)]), acc: Array(batch.acc[(row * hd)..<((row + 1) * hd)]),
                      maxScore: batch.maxScore[row], scoreSum: batch.scoreSum[row]),
             item.1)
        }
    }
}

import DINOP

/// An item to step: its state (taken out of its table while it is computed) and the days to step it through.
struct StepJob {
    var partition: Int32
    var state: ItemState
    var steps: [Int]
    /// Stepped from day zero (the stored model state does not cover a prefix of `steps`).
    var fresh: Bool
    /// MARKETS.md `competition`: the item's `f` is wanted as of each day stepped after this one, and as of its
    /// latest day in any case (nil: not wanted).
    var vectorsAfter: Int? = nil
    /// The industry stage's `a` and `q` for the last day of `steps`: the prediction reads them.
    var attended: (a: [Float], q: [Float])? = nil
}

/// What stepping one job gives.
struct StepResult {
    /// The new model state, its `appliedDays` holding only the days stepped now.
    var hot: HotState
    var prediction: Prediction
    /// With `vectorsAfter`: the item's `f` as of each day wanted, oldest first.
    var vectors: [(day: Int, f: [Float])] = []
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

    /// Steps every job and hands each, in place and with its index, to `body` with what it gave. Longest first, so
    /// that the items still stepping on day t are a prefix of each chunk.
    mutating func step(_ jobs: inout [StepJob], _ body: (Int, inout StepJob, StepResult) -> Void) {
        let order = jobs.indices.sorted { (jobs[$0].steps.count, $1) > (jobs[$1].steps.count, $0) }
        for start in stride(from: 0, to: order.count, by: batchRows) {
            let chunk = order[start..<min(start + batchRows, order.count)]
            let results = jobs.withUnsafeMutableBufferPointer { evaluate(chunk, of: $0) }
            for (i, result) in zip(chunk, results) { body(i, &jobs[i], result) }
        }
    }

    /// The jobs at `chunk` (longest first) as one batch per day. Changes no job.
    /// (The jobs are mutable only so that their states are read in place: calling a method of a state read
    /// from a buffer or an array copies all of it first.)
    private mutating func evaluate(_ chunk: ArraySlice<Int>, of jobs: UnsafeMutableBufferPointer<StepJob>) -> [StepResult] {
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
        var vectors = [[(day: Int, f: [Float])]](repeating: [], count: chunk.count)
        let wantsVectors = chunk.contains { jobs[$0].vectorsAfter != nil }
        /// Appends the `f` of `rows` (of the batch's first `active`) as of the day `day(row)` gives.
        func take(_ rows: [Int], rows active: Int, day: (Int) -> Int) {
            guard let f = scorer.competitionVectors(batch, rows: active), let width = scorer.competitionWidth else { return }
            for row in rows { vectors[row].append((day(row), Array(f[(row * width)..<((row + 1) * width)]))) }
        }
        for t in 0..<longest {
            let active = chunk.prefix { jobs[$0].steps.count > t }.count
            for row in 0..<active {
                x.replaceSubrange((row * k)..<((row + 1) * k), with: encoded[row].dayInputs[(t * k)..<((t + 1) * k)])
            }
            scorer.advance(&batch, rows: active, x: x)
            guard wantsVectors else { continue }
            let wanted = (0..<active).filter { row in
                let job = jobs[chunk[chunk.startIndex + row]]
                return job.vectorsAfter.map { job.steps[t] > $0 || t == job.steps.count - 1 } ?? false
            }
            if !wanted.isEmpty { take(wanted, rows: active, day: { jobs[chunk[chunk.startIndex + $0]].steps[t] }) }
        }
        // An item stepped through no day now (a changed activity) sends its `f` as of its latest applied day.
        if wantsVectors {
            let wanted = chunk.indices.map { $0 - chunk.startIndex }.filter { row in
                let job = jobs[chunk[chunk.startIndex + row]]
                return job.vectorsAfter != nil && job.steps.isEmpty && job.state.hot?.appliedDays.last != nil
            }
            if !wanted.isEmpty {
                take(wanted, rows: chunk.count, day: { Int(jobs[chunk[chunk.startIndex + $0]].state.hot?.appliedDays.last ?? 0) })
            }
        }
        let predictions: [Prediction]
        let attended = chunk.compactMap { jobs[$0].attended }
        if attended.count == chunk.count {
            predictions = scorer.predictions(batch, rows: chunk.count, attended: attended.flatMap(\.a),
                                             neighbours: attended.flatMap(\.q), representation: representation)
        } else {
            predictions = scorer.predictions(batch, rows: chunk.count, representation: representation)
        }
        return zip(chunk, predictions).enumerated().map { row, item in
            StepResult(hot: HotState(modelVersion: version, appliedDays: jobs[item.0].steps.map { UInt16($0) },
                                     h: Array(batch.h[(row * hd)..<((row + 1) * hd)]),
                                     acc: Array(batch.acc[(row * hd)..<((row + 1) * hd)]),
                                     maxScore: batch.maxScore[row], scoreSum: batch.scoreSum[row]),
                       prediction: item.1, vectors: vectors[row])
        }
    }
}

import DINOP
import Foundation
import Synchronization

/// Training's progress: epoch k of the most N, seconds per epoch, the ETA should it run all N (early stopping may
/// end it sooner), the best validation loss so far; and each epoch's losses per task on a line of its own.
final class EpochProgress: Sendable {
    let reporter: ProgressReporter
    let maxEpochs: Int
    private let state = Mutex(Progress())

    private struct Progress {
        var epoch = 0
        var best: (loss: Double, epoch: Int)?
        var finished = false
    }

    init(label: String, maxEpochs: Int, output: ProgressReporter.Output = .standardError,
         clock: @escaping @Sendable () -> Double = ProgressReporter.monotonicSeconds,
         sink: @escaping @Sendable (String) -> Void = ProgressReporter.writeStandardError) {
        self.maxEpochs = maxEpochs
        reporter = ProgressReporter(label: label, total: maxEpochs, unit: "epoch", output: output, clock: clock, sink: sink)
    }

    /// Trainer's `progress`. An epoch 1 after others starts the count again (a fine-tune schedule's next run).
    func epoch(_ report: EpochReport) {
        let best: String = state.withLock { state in
            if report.epoch <= state.epoch { state = Progress() }
            state.epoch = report.epoch
            if report.improved || state.best == nil { state.best = (report.validation.total, report.epoch) }
            return Self.best(state.best)
        }
        if report.epoch == 1 { reporter.restart(total: maxEpochs, elapsed: report.seconds) }
        func task(_ head: Head) -> String {
            report.validation.perTask[head].map { String(format: " %@ %.3f", head.rawValue, $0) } ?? ""
        }
        // MARKETS.md: how well the discriminator tells the markets from rep in training, against always naming the
        // largest market, and its loss on o.
        let domain = report.training.domain.map { d in
            String(format: "; markets from rep %.1f%% (discriminator loss %.3f), from o: loss %.3f", 100 * Double(d.discriminatorCorrect) / Double(Swift.max(d.items, 1)),
                   d.discriminator, d.spec)
        } ?? ""
        reporter.note(String(format: "%@ epoch %d: train %.4f, validation %.4f (%@ )%@ %.1fs%@", reporter.label, report.epoch,
                             report.training.total, report.validation.total, Head.allCases.map(task).joined(), domain,
                             report.seconds, report.improved ? " *" : ""))
        reporter.update(report.epoch, detail: best)
    }

    /// The final line; says so when early stopping ended training before the most epochs.
    func finish() {
        let (epochs, best) = state.withLock { state in
            state.finished = true
            return (state.epoch, Self.best(state.best))
        }
        let stoppedEarly = epochs < maxEpochs ? "stopped early, " : ""
        reporter.finish(epochs, detail: stoppedEarly + best)
    }

    /// `finish`, unless no epoch ran since the last one: for a caller that only learns training ended when it
    /// says something else (a fine-tune job's next log line).
    func finishIfRunning() {
        let running = state.withLock { $0.epoch > 0 && !$0.finished }
        if running { finish() }
    }

    private static func best(_ best: (loss: Double, epoch: Int)?) -> String {
        best.map { String(format: "best validation %.4f (epoch %d)", $0.loss, $0.epoch) } ?? "no validation yet"
    }
}

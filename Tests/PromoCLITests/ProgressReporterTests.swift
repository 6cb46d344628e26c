@testable import DINOP
import Foundation
@testable import PromoCLI
import Synchronization
import Testing

/// A clock the test moves and a sink that keeps what was written, so the throttle is driven deterministically.
final class ProgressHarness: Sendable {
    let now = Mutex(0.0)
    let written = Mutex<[String]>([])

    var clock: @Sendable () -> Double { { self.now.withLock { $0 } } }
    var sink: @Sendable (String) -> Void { { text in self.written.withLock { $0.append(text) } } }

    func at(_ seconds: Double, _ body: () -> Void) {
        now.withLock { $0 = seconds }
        body()
    }

    /// What was written since the last call.
    func take() -> [String] {
        written.withLock { written in
            defer { written = [] }
            return written
        }
    }
}

@Suite("Progress on standard error")
struct ProgressReporterTests {
    @Test("the line has done/total, percent, rate and an ETA from the mean rate")
    func figures() {
        #expect(ProgressReporter.line(label: "generate", unit: "item", done: 250, total: 1000, elapsed: 5, detail: "")
                == "generate: 250/1000 items (25.0%), 50.0 items/s, ETA 0:00:15")
        #expect(ProgressReporter.line(label: "train", unit: "epoch", done: 3, total: 20, elapsed: 6, detail: "best 0.5")
                == "train: 3/20 epochs (15.0%), 2.0 s/epoch, ETA 0:00:34, best 0.5")
        #expect(ProgressReporter.line(label: "x", unit: "message", done: 0, total: 10, elapsed: 3, detail: "")
                == "x: 0/10 messages (0.0%), - messages/s, ETA -:--:--")
        #expect(ProgressReporter.percent(0, 0) == "100.0%")  // nothing to do is all done
        #expect(ProgressReporter.rate(12_345.6, unit: "item") == "12346 items/s")
        #expect(ProgressReporter.clock(3725.2) == "1:02:06")
        #expect(ProgressReporter.clock(59.0) == "0:00:59")
        #expect(ProgressReporter.clock(.infinity) == "-:--:--")
        #expect(ProgressReporter.finalLine(label: "generate", unit: "item", done: 1000, total: 1000, elapsed: 20, detail: "")
                == "generate: 1000/1000 items (100.0%) in 0:00:20, 50.0 items/s")
    }

    @Test("on a terminal one line is rewritten in place, at most every 0.1 s, and the final line ends it")
    func terminalThrottle() {
        let h = ProgressHarness()
        let progress = ProgressReporter(label: "gen", total: 100, unit: "item", output: .terminal(), clock: h.clock, sink: h.sink)
        h.at(1.0) { progress.update(10) }
        h.at(1.05) { progress.update(11) }
        h.at(1.09) { progress.update(12) }
        h.at(1.1) { progress.update(20) }
        let lines = h.take()
        #expect(lines == ["\rgen: 10/100 items (10.0%), 10.0 items/s, ETA 0:00:09\u{1B}[K",
                          "\rgen: 20/100 items (20.0%), 18.2 items/s, ETA 0:00:05\u{1B}[K"])
        h.at(1.12) { progress.note("warning: something") }
        #expect(h.take() == ["\r\u{1B}[Kwarning: something\n\rgen: 20/100 items (20.0%), 18.2 items/s, ETA 0:00:05\u{1B}[K"])
        h.at(2.0) { progress.finish(100) }
        #expect(h.take() == ["\rgen: 100/100 items (100.0%) in 0:00:02, 50.0 items/s\u{1B}[K\n"])
    }

    @Test("elsewhere a plain line at most every N seconds, and always a final one")
    func plainLinesThrottle() {
        let h = ProgressHarness()
        let progress = ProgressReporter(label: "gen", total: 1000, unit: "item", output: .lines(everySeconds: 10),
                                        clock: h.clock, sink: h.sink)
        h.at(5) { progress.update(100) }
        #expect(h.take().isEmpty)
        h.at(10) { progress.update(200) }
        h.at(15) { progress.update(300) }
        #expect(h.take() == ["gen: 200/1000 items (20.0%), 20.0 items/s, ETA 0:00:40\n"])
        h.at(20) { progress.update(400) }
        #expect(h.take() == ["gen: 400/1000 items (40.0%), 20.0 items/s, ETA 0:00:30\n"])
        h.at(21) { progress.note("a note") }
        #expect(h.take() == ["a note\n"])
        h.at(25) { progress.finish(1000) }
        #expect(h.take() == ["gen: 1000/1000 items (100.0%) in 0:00:25, 40.0 items/s\n"])
    }

    @Test("epochs: k of N, seconds per epoch from the first epoch's own time, the best validation so far")
    func epochs() {
        let h = ProgressHarness()
        let progress = EpochProgress(label: "train", maxEpochs: 10, output: .terminal(), clock: h.clock, sink: h.sink)
        func epoch(_ k: Int, validation: Double, improved: Bool) -> EpochReport {
            EpochReport(epoch: k, training: LossBreakdown(total: 1), validation: LossBreakdown(total: validation),
                        seconds: 2, improved: improved)
        }
        // Loading data took 30 s before the first epoch: the rate counts from the epoch's start, not from there.
        h.at(32) { progress.epoch(epoch(1, validation: 0.5, improved: true)) }
        let first = h.take().joined()
        #expect(first.contains("train epoch 1: train 1.0000, validation 0.5000"))
        #expect(first.contains("train: 1/10 epochs (10.0%), 2.0 s/epoch, ETA 0:00:18, best validation 0.5000 (epoch 1)"))
        h.at(34) { progress.epoch(epoch(2, validation: 0.4, improved: true)) }
        h.at(36) { progress.epoch(epoch(3, validation: 0.45, improved: false)) }
        #expect(h.take().joined().contains("3/10 epochs (30.0%), 2.0 s/epoch, ETA 0:00:14, best validation 0.4000 (epoch 2)"))
        h.at(36) { progress.finish() }
        #expect(h.take() == ["\rtrain: 3/10 epochs (30.0%) in 0:00:06, 2.0 s/epoch, stopped early, best validation 0.4000 (epoch 2)\u{1B}[K\n"])
        h.at(40) { progress.finishIfRunning() }
        #expect(h.take().isEmpty)
    }
}

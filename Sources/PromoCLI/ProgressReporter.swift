import Foundation
import Synchronization

/// Progress of long work on standard error: done/total, percent, rate and ETA. On a terminal one status line is
/// rewritten in place (at most ten times a second); otherwise (a log file, a pipe) a plain line is written at most
/// every `everySeconds`, so a log is not flooded. `finish` always writes a final line. Results stay on standard
/// output; this never writes there.
final class ProgressReporter: Sendable {
    enum Output: Sendable, Equatable {
        /// Rewrite one line with `\r`, at most every `minimumSeconds`.
        case terminal(minimumSeconds: Double = 0.1)
        /// One line at most every `everySeconds`.
        case lines(everySeconds: Double)

        /// A terminal when standard error is one, else lines every 10 s.
        static var standardError: Output { isatty(2) != 0 ? .terminal() : .lines(everySeconds: 10) }
    }

    let label: String
    /// Singular ("item", "epoch"): the rate reads "items/s", or "s/epoch" when below one per second.
    let unit: String
    let output: Output
    private let clock: @Sendable () -> Double
    private let sink: @Sendable (String) -> Void
    private let state: Mutex<State>

    private struct State {
        var total: Int
        var start: Double
        /// When a line was last written, and the status line on screen (terminal only), for `note` to redraw it.
        var lastShown: Double?
        var onScreen: String?
    }

    init(label: String, total: Int, unit: String, output: Output = .standardError,
         clock: @escaping @Sendable () -> Double = ProgressReporter.monotonicSeconds,
         sink: @escaping @Sendable (String) -> Void = ProgressReporter.writeStandardError) {
        self.label = label
        self.unit = unit
        self.output = output
        self.clock = clock
        self.sink = sink
        state = Mutex(State(total: total, start: clock()))
    }

    /// Counts again from zero, as from `elapsed` seconds ago (a schedule's next run, noticed after its first step).
    func restart(total: Int, elapsed: Double = 0) {
        let now = clock()
        state.withLock {
            $0.total = total
            $0.start = now - elapsed
            $0.lastShown = nil
            $0.onScreen = nil
        }
    }

    /// `done` of the total so far; written only when the throttle allows. `detail` is appended to the line;
    /// `total`, when given, replaces the total (work that learns its size as it goes).
    func update(_ done: Int, total: Int? = nil, detail: String = "") {
        let now = clock()
        let text: String? = state.withLock { state in
            if let total { state.total = total }
            switch output {
            case .terminal(let minimum):
                if let last = state.lastShown, now - last < minimum { return nil }
            case .lines(let every):
                if now - (state.lastShown ?? state.start) < every { return nil }
            }
            state.lastShown = now
            let line = Self.line(label: label, unit: unit, done: done, total: state.total, elapsed: now - state.start,
                                 detail: detail)
            guard case .terminal = output else { return line + "\n" }
            state.onScreen = line
            return "\r" + line + Self.clearToEndOfLine
        }
        if let text { sink(text) }
    }

    /// The final line, whatever the throttle: done/total, the time taken and the mean rate.
    func finish(_ done: Int, detail: String = "") {
        let now = clock()
        let text: String = state.withLock { state in
            state.lastShown = now
            state.onScreen = nil
            let line = Self.finalLine(label: label, unit: unit, done: done, total: state.total,
                                      elapsed: now - state.start, detail: detail)
            guard case .terminal = output else { return line + "\n" }
            return "\r" + line + Self.clearToEndOfLine + "\n"
        }
        sink(text)
    }

    /// A line of its own (a warning, an epoch's losses) that stays; on a terminal the status line is redrawn below it.
    func note(_ line: String) {
        let text: String = state.withLock { state in
            guard case .terminal = output else { return line + "\n" }
            let redraw = state.onScreen.map { "\r" + $0 + Self.clearToEndOfLine } ?? ""
            return "\r" + Self.clearToEndOfLine + line + "\n" + redraw
        }
        sink(text)
    }

    // MARK: Formatting

    static let clearToEndOfLine = "\u{1B}[K"

    /// `label: done/total units (percent), rate, ETA h:mm:ss[, detail]`.
    static func line(label: String, unit: String, done: Int, total: Int, elapsed: Double, detail: String) -> String {
        let rate = elapsed > 0 && done > 0 ? Double(done) / elapsed : nil
        let eta = rate.map { Double(max(total - done, 0)) / $0 }
        var parts = ["\(done)/\(total) \(unit)s (\(percent(done, total)))", rate.map { self.rate($0, unit: unit) } ?? "- \(unit)s/s",
                     "ETA \(clock(eta))"]
        if !detail.isEmpty { parts.append(detail) }
        return "\(label): " + parts.joined(separator: ", ")
    }

    /// `label: done/total units (percent) in h:mm:ss, rate[, detail]`.
    static func finalLine(label: String, unit: String, done: Int, total: Int, elapsed: Double, detail: String) -> String {
        var parts = ["\(done)/\(total) \(unit)s (\(percent(done, total))) in \(clock(elapsed, rounding: .toNearestOrAwayFromZero))"]
        if elapsed > 0 && done > 0 { parts.append(rate(Double(done) / elapsed, unit: unit)) }
        if !detail.isEmpty { parts.append(detail) }
        return "\(label): " + parts.joined(separator: ", ")
    }

    static func percent(_ done: Int, _ total: Int) -> String {
        let share: Double = total > 0 ? 100 * Double(done) / Double(total) : 100
        return String(format: "%.1f%%", share)
    }

    /// Per second when at least one a second ("1200 items/s", "2.5 epochs/s"), else seconds each ("3.2 s/epoch").
    static func rate(_ perSecond: Double, unit: String) -> String {
        if perSecond >= 100 { return String(format: "%.0f %@s/s", perSecond, unit) }
        if perSecond >= 1 { return String(format: "%.1f %@s/s", perSecond, unit) }
        return String(format: "%.1f s/%@", 1 / perSecond, unit)
    }

    /// `h:mm:ss`, rounded up (an ETA) or as asked; `-:--:--` when unknown or absurd.
    static func clock(_ seconds: Double?, rounding: FloatingPointRoundingRule = .up) -> String {
        guard let seconds, seconds.isFinite, seconds >= 0, seconds < 360_000_000 else { return "-:--:--" }
        let whole = Int(seconds.rounded(rounding))
        return String(format: "%d:%02d:%02d", whole / 3600, whole / 60 % 60, whole % 60)
    }

    // MARK: Defaults

    static let monotonicSeconds: @Sendable () -> Double = {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }

    static let writeStandardError: @Sendable (String) -> Void = { text in
        FileHandle.standardError.write(Data(text.utf8))
    }
}

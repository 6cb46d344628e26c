import Foundation
import Logging
import PromoService
import ServiceLifecycle

/// Tells systemd how `promo run` is doing (`Type=notify`): `READY=1` once the member is first ready (as `/ready`
/// turns 200), `WATCHDOG=1` every half watchdog period while the member's loop makes progress (a stuck loop stops
/// the pings, and systemd restarts the process), `STOPPING=1` when a shutdown begins.
public struct SystemdNotifyService: Service {
    let notifier: SystemdNotifier
    let isReady: @Sendable () -> Bool
    let isLoopAlive: @Sendable () -> Bool
    let logger: Logger

    /// `isLoopAlive`: the loop went round within the watchdog period (see `ServiceHealth.secondsSinceBeat`).
    public init(_ notifier: SystemdNotifier, logger: Logger, isReady: @escaping @Sendable () -> Bool,
                isLoopAlive: @escaping @Sendable () -> Bool) {
        self.notifier = notifier
        self.isReady = isReady
        self.isLoopAlive = isLoopAlive
        self.logger = logger
    }

    /// For a member: ready as `/ready` says; alive while its loop beat within the watchdog period (before its
    /// first beat the member is starting, which `TimeoutStartSec` bounds).
    public static func member(_ health: ServiceHealth, notifier: SystemdNotifier, logger: Logger) -> SystemdNotifyService {
        let period = notifier.watchdogPeriod ?? .infinity
        return SystemdNotifyService(notifier, logger: logger, isReady: { health.snapshot.ready },
                                    isLoopAlive: { health.secondsSinceBeat.map { $0 < period } ?? true })
    }

    /// The notifications run on a thread of their own, never on the concurrency pool: whether systemd hears from
    /// the member must depend on the member's loop alone, not on whether the pool's threads are free.
    public func run() async throws {
        let stop = StopSignal()
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    notify(until: stop)
                    continuation.resume()
                }
                thread.name = "promo-systemd"
                thread.start()
            }
        } onCancelOrGracefulShutdown: {
            stop.stop()
        }
    }

    /// The notifications until `stop`, then `STOPPING=1`; blocks the calling thread.
    public func notify(until stop: StopSignal) {
        // Often enough to notice readiness promptly and to ping on time; never a busy loop, whatever WATCHDOG_USEC says.
        let tick = max(0.01, min(0.25, (notifier.pingInterval ?? 1) / 4))
        let start = ContinuousClock.now
        var schedule = NotifySchedule(pingInterval: notifier.pingInterval)
        while !stop.isStopped {
            let elapsed = ContinuousClock.now - start
            let now = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            for state in schedule.due(now: now, ready: isReady(), loopAlive: isLoopAlive()) {
                Self.send(state, notifier, logger)
            }
            stop.wait(upTo: .seconds(tick))
        }
        Self.send("STOPPING=1", notifier, logger)
    }

    private static func send(_ state: String, _ notifier: SystemdNotifier, _ logger: Logger) {
        do {
            try notifier.send(state)
        } catch {
            logger.warning("systemd notification failed: \(error)", metadata: ["state": "\(state)"])
        }
    }
}

/// Which notifications are due: `READY=1` once, the first time the member is ready; `WATCHDOG=1` at most every
/// `pingInterval` seconds, and only while the loop is alive.
struct NotifySchedule {
    let pingInterval: Double?
    private var readySent = false
    private var lastPing: Double?

    init(pingInterval: Double?) { self.pingInterval = pingInterval }

    mutating func due(now: Double, ready: Bool, loopAlive: Bool) -> [String] {
        var states: [String] = []
        if ready && !readySent {
            readySent = true
            states.append("READY=1")
        }
        if let pingInterval, loopAlive, lastPing.map({ now - $0 >= pingInterval }) ?? true {
            lastPing = now
            states.append("WATCHDOG=1")
        }
        return states
    }
}

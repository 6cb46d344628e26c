import Dispatch
import Foundation
import PromoService

/// Turns SIGTERM and SIGINT into a stop request instead of an exit.
final class StopOnSignals {
    private var sources: [DispatchSourceSignal] = []

    init(_ stop: StopSignal) {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.stop() }
            source.resume()
            sources.append(source)
        }
    }
}

import Foundation
import Logging
import PromoService
import ServiceLifecycle

/// The consumer-group member as a lifecycle service. Its loop blocks (librdkafka polls, BLAS), so it runs on a
/// thread of its own, never on the concurrency pool; a graceful shutdown (SIGTERM, SIGINT) or a cancellation asks it
/// to stop after the batch in flight, and `run` returns once it has committed and left the group.
public struct MemberService: Service {
    let service: StreamService
    let stop = StopSignal()

    public init(_ service: StreamService) { self.service = service }

    public func run() async throws {
        let service = self.service, stop = self.stop
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        try service.run(until: stop)
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "promo-member"
                thread.start()
            }
        } onCancelOrGracefulShutdown: {
            stop.stop()
        }
    }
}

/// The fine-tuner of `promo run --finetune-every`: the same schedule as `promo finetune --every`, on a thread of
/// its own (a fine-tune takes minutes of one core). A graceful shutdown abandons a fine-tune in progress between
/// two minibatches (nothing is published) and `run` returns when its thread has.
public struct FineTunerService: Service {
    let job: FineTuneJob
    let interval: Double

    public init(_ job: FineTuneJob, every interval: Double) {
        self.job = job
        self.interval = interval
    }

    public func run() async throws {
        let job = self.job, interval = self.interval
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    job.repeatEvery(interval)
                    continuation.resume()
                }
                thread.name = "promo-finetune"
                thread.start()
            }
        } onCancelOrGracefulShutdown: {
            job.stop.stop()
        }
    }
}

// The stream processor's benchmark, release build. See the README ("Benchmarks") for the figures and targets.
//   swift run -c release promo-stream-bench processor EVENTS.jsonl MODEL
import CJemalloc
import DINOP
import Foundation
import PromoEvents
import PromoStream

BLAS.setThreads(1)
let arguments = CommandLine.arguments

func elapsed(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Events of a JSON-lines file as input messages, partitioned by item id like the producer's murmur2 would spread them.
func loadMessages(_ path: String, partitions: Int32 = 12) throws -> [InputMessage] {
    var messages: [InputMessage] = []
    try EventFile.read(URL(fileURLWithPath: path), decoder: EventDecoder(), rejected: { _ in }) { event in
        guard let item = event.itemID else { return }
        messages.append(InputMessage(topic: "in", partition: Int32(fnv1a64(item) % UInt64(partitions)),
                                     offset: Int64(messages.count), key: Array(item.utf8), value: event.encoded()))
    }
    return messages
}

switch arguments.dropFirst().first {
case "processor":
    let messages = try loadMessages(arguments[2])
    let model = try DINOPModel(contentsOf: URL(fileURLWithPath: arguments[3]))
    let processor = StreamProcessor(model: model)
    var outputs = 0
    let seconds = elapsed {
        for start in stride(from: 0, to: messages.count, by: 10_000) {
            outputs += processor.process(Array(messages[start..<min(start + 10_000, messages.count)]), nowMs: 0).count
        }
    }
    print(String(format: "processor alone: %d events in %.2f s = %.0f events/s, %d outputs, %d items",
                 messages.count, seconds, Double(messages.count) / seconds, outputs, processor.itemCount))
default:
    print("usage: promo-stream-bench processor EVENTS.jsonl MODEL")
}

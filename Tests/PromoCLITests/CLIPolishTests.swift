import ArgumentParser
import Foundation
import PromoKafka
@testable import PromoCLI
import PromoEvents
import Testing

@Suite("What the Kafka commands show and send, without a broker")
struct CLIPolishTests {
    /// Every command of the tree, depth first, with its path of names.
    static func commands(_ command: any ParsableCommand.Type = PromoCommand.self,
                         path: [String] = []) -> [(path: [String], type: any ParsableCommand.Type)] {
        let name = command.configuration.commandName ?? "?"
        return [(path + [name], command)]
            + command.configuration.subcommands.flatMap { commands($0, path: path + [name]) }
    }

    @Test("no --help shows Int.max (9223372036854775807) as a default")
    func noIntMaxInHelp() {
        let all = Self.commands()
        #expect(all.count > 15)  // the tree was walked, not just its root
        for (path, command) in all {
            let help = PromoCommand.helpMessage(for: command)
            #expect(!help.contains(String(Int.max)), "promo \(path.dropFirst().joined(separator: " ")) --help")
            #expect(!help.contains(String(UInt64.max)), "promo \(path.dropFirst().joined(separator: " ")) --help")
        }
        #expect(PromoCommand.helpMessage(for: WatchCommand.self).contains("(default: all)"))
    }

    @Test("a dead letter is shown decoded: reason, source, and the rejected bytes as text, hex or base64")
    func deadLetterDisplay() throws {
        let example = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Topics/examples/dead_letter.1.json"), encoding: .utf8)
        let line = try #require(DeadLetterDisplay.line(message: Array(example.utf8)))
        #expect(line.hasPrefix("dead letter: sales.units: must be ≥ 0, got -3 | from promo.daily-sales[6]@1834412"))
        #expect(line.contains("by promo-stream/promo-stream-2 | key 601238457712 | value {\"schema\":\"daily_sales/1\""))
        #expect(DeadLetterDisplay.line(message: Array("not a dead letter".utf8)) == nil)

        var letter = DeadLetter(sourceTopic: "promo.daily-sales", partition: 1, offset: 7, key: nil, value: [0xff, 0x00, 0x41],
                                reason: "not valid JSON", failedAt: "2026-10-28T09:41:07.552Z", consumer: "")
        #expect(DeadLetterDisplay.line(letter)
                == "dead letter: not valid JSON | from promo.daily-sales[1]@7 at 2026-10-28T09:41:07.552Z | value hex ff0041")
        letter.value = Array(repeating: 0xfe, count: 65)
        #expect(DeadLetterDisplay.line(letter).hasSuffix("| value base64 " + Data(letter.value).base64EncodedString()))
        #expect(DeadLetterDisplay.bytes(Array("a\u{1}b".utf8)) == "hex 610162")
        #expect(DeadLetterDisplay.bytes(Array("tab\there".utf8)) == "tab\there")
        #expect(DeadLetterDisplay.bytes([]) == "(empty)")
    }

    @Test("produce --raw: one message per line, bytes as they are, keys from a delimiter or an item_id")
    func rawLines() {
        func message(_ key: String?, _ value: [UInt8]) -> RawLines.Message { .init(key: key.map { Array($0.utf8) }, value: value) }
        let input = Array(#"{"item_id":"i1","day":"x"}"#.utf8) + [10] + Array("not json\r".utf8) + [10, 10, 0xff, 0xfe, 10]
            + Array("k|v|w".utf8)
        #expect(RawLines.messages(input) == [
            message("i1", Array(#"{"item_id":"i1","day":"x"}"#.utf8)), message(nil, Array("not json\r".utf8)),
            message(nil, []), message(nil, [0xff, 0xfe]), message(nil, Array("k|v|w".utf8)),
        ])
        #expect(RawLines.messages(input, keyDelimiter: Array("|".utf8)).last == message("k", Array("v|w".utf8)))
        #expect(RawLines.messages(input, keyDelimiter: Array("|".utf8)).first?.key == nil)
        #expect(RawLines.messages(Array("a\n".utf8)) == [message(nil, [0x61])])
        #expect(RawLines.messages([]).isEmpty)
    }

    @Test("--raw needs --topic, and --topic needs --raw")
    func rawFlags() {
        #expect(throws: (any Error).self) { try PromoCommand.parseAsRoot(["produce", "--raw", "f"]) }
        #expect(throws: (any Error).self) { try PromoCommand.parseAsRoot(["produce", "--topic", "t", "f"]) }
        #expect(throws: Never.self) { try PromoCommand.parseAsRoot(["produce", "--raw", "--topic", "t", "-"]) }
    }

    @Test("Kafka errors name the brokers; one that no broker answered says it could not reach them")
    func brokersNamed() throws {
        let options = try KafkaOptions.parse(["--bootstrap", "10.0.0.1:9092", "-X", "client.id=x"])
        #expect(options.servers == "10.0.0.1:9092")
        #expect(options.noTopic("promo.x").description == "no topic promo.x on 10.0.0.1:9092")
        #expect(try KafkaOptions.parse(["-X", "bootstrap.servers=h:1"]).servers == "h:1")
        #expect(BrokerError(.timedOut("create topics"), servers: "h:1").description
                == "cannot reach the brokers at h:1: create topics: Local: Timed out (_TIMED_OUT)")
    }
}

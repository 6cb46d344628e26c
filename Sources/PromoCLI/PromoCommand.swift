import ArgumentParser

/// The `promo` command line.
@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
public struct PromoCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "promo",
        abstract: "Predicts promotion-day sales of items from their pre-sale days (DINOP).",
        version: PromoVersion.current,
        subcommands: [ModelCommand.self, BOPCommand.self, GenerateCommand.self, ImportTaobaoCommand.self, TrainCommand.self, FinetuneCommand.self, EvaluateCommand.self, PredictCommand.self, RunCommand.self, BacktestCommand.self, TopicsCommand.self, ProduceCommand.self, WatchCommand.self, DemoCommand.self, VersionCommand.self])

    public init() {}
}

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Create and inspect DINOP weight files; publish, pull and promote versions on the model topic.",
        subcommands: [InitCommand.self, InspectCommand.self, PublishCommand.self, PromoteCommand.self, PullCommand.self,
                      ListCommand.self])
}

/// Standard error, for progress and rejected input; standard output carries results only.
func report(_ line: String) {
    var stderr = StandardError()
    print(line, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandle.standardError.write(Data(string.utf8))
    }
}

import Foundation

import DINOP
import Foundation
@testable import PromoCLI
import PromoEvents
import Testing

@Suite("The promo command line")
struct CommandTests {
    let folder: URL = FileManager.default.temporaryDirectory.appendingPathComponent("promo-cli-\(UUID().uuidString)")

    func run(_ arguments: [String]) throws {
        var command = try PromoCommand.parseAsRoot(arguments)
        try command.run()
    }

    @Test("model init writes a file that inspect describes and predict scores")
    func initInspectPredict() throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let modelPath = folder.appendingPathComponent("m.safetensors").path
        try run(["model", "init", "--out", modelPath, "--hidden", "32", "--attention", "16", "--embedding-rows", "101",
                 "--heads", "gmv,bsp,ss", "--seed", "3", "--version", "4"])
        let model = try DINOPModel(contentsOf: URL(fileURLWithPath: modelPath))
        #expect(model.config.hidden == 32 && model.config.heads == ["gmv", "bsp", "ss"] && model.version == 4)
        #expect(model.layout.spec("head.ja.fc1.weight") == nil)
        let text = describe(model)
        #expect(text.contains("version:    4") && text.contains("gru.z.u") && text.contains("[32, 32]"))
        #expect(text.contains("parameters: \(model.layout.count)"))

        let events = folder.appendingPathComponent("events.jsonl")
        let id = #""item_id":"i%d","promotion_id":"p""#
        var lines = (0..<5).flatMap { i in
            [#"{"schema":"item_profile/1",\#(String(format: id, i)),"industry":"beauty","sis":{"price":20}}"#]
                + (1...4).map { #"{"schema":"daily_sales/1",\#(String(format: id, i)),"day":\#($0),"sales":{"units":\#(i)}}"# }
        }
        lines.insert("{not json", at: 2)
        lines.insert(#"{"schema":"daily_sales/1","item_id":"i0","promotion_id":"p","day":2,"sales":{"units":true}}"#, at: 3)
        lines.insert(#"{"schema":"daily_sales/1","item_id":"i1","promotion_id":"p","day":2,"sales":{"price":1e300}}"#, at: 4)
        try lines.joined(separator: "\n").write(to: events, atomically: true, encoding: .utf8)
        let out = folder.appendingPathComponent("predictions.jsonl")
        try run(["predict", "--model", modelPath, events.path, "--out", out.path])
        let decoded = try String(contentsOf: out, encoding: .utf8).split(separator: "\n").map {
            try EventDecoder().decode(Array($0.utf8))
        }
        let predictions = decoded.compactMap { if case .prediction(let p) = $0 { p } else { nil } }
        #expect(predictions.count == 5)
        #expect(predictions.map(\.itemID) == (0..<5).map { "i\($0)" })
        #expect(predictions.allSatisfy { $0.daysSeen == 4 && $0.modelVersion == 4 && $0.ja == nil && $0.promotionID == "p" })

        // A folder of event files scores the same items the same way (issue 13: predict takes what train takes).
        let promotion = folder.appendingPathComponent("promotion")
        try FileManager.default.createDirectory(at: promotion, withIntermediateDirectories: true)
        try lines.filter { $0.contains("item_profile") }.joined(separator: "\n")
            .write(to: promotion.appendingPathComponent("item-profiles.jsonl"), atomically: true, encoding: .utf8)
        try lines.filter { !$0.contains("item_profile") }.joined(separator: "\n")
            .write(to: promotion.appendingPathComponent("daily-sales.jsonl"), atomically: true, encoding: .utf8)
        let fromFolder = folder.appendingPathComponent("from-folder.jsonl")
        try run(["predict", "--model", modelPath, promotion.path, "--out", fromFolder.path])
        let folderPredictions = try String(contentsOf: fromFolder, encoding: .utf8).split(separator: "\n").compactMap {
            if case .prediction(let p) = try EventDecoder().decode(Array($0.utf8)) { p } else { nil }
        }
        #expect(folderPredictions.map(\.itemID) == predictions.map(\.itemID))
        #expect(zip(folderPredictions, predictions).allSatisfy { $0.gmv == $1.gmv && $0.bsp == $1.bsp && $0.daysSeen == $1.daysSeen })
        #expect(throws: EventFileError.self) { try run(["predict", "--model", modelPath, folder.appendingPathComponent("none").path]) }

        let (_, rejected, _) = try predictOffline(model: model, eventFiles: [events])
        #expect(rejected.map(\.line) == [3, 4, 5])
        #expect(rejected[1].error.description == "sales.units: expected a number, got a boolean")
        #expect(rejected[2].error.description.hasPrefix("sales.price: must be a finite number within float32 range"))
    }

    @Test("a bad weight file is a clear error, not a crash")
    func badModel() throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("bad.safetensors").path
        try Data("definitely not a model".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: (any Error).self) { try run(["model", "inspect", path]) }
        do {
            try run(["model", "inspect", path])
        } catch {
            #expect("\(error)".contains("not a safetensors file"))
        }
    }

    @Test("the binary runs on jemalloc, OpenBLAS and librdkafka")
    func nativeLibraries() {
        #expect(NativeLibraries.jemalloc?.hasPrefix("5.") == true)
        #expect(NativeLibraries.openBLAS.contains("OpenBLAS"))
        #expect(!NativeLibraries.rdkafka.isEmpty)
    }
}

@Suite("generate, train and evaluate from the command line")
struct PipelineCommandTests {
    @Test("a generated world trains a model that evaluate scores, and bad input is refused with a reason")
    func generateTrainEvaluate() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("promo-pipeline-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        func run(_ arguments: [String]) throws {
            var command = try PromoCommand.parseAsRoot(arguments)
            try command.run()
        }
        let world = folder.appendingPathComponent("world").path
        try run(["generate", "--out", world, "--items", "400", "--days", "6", "--seed", "4"])
        let model = folder.appendingPathComponent("m.safetensors").path
        try run(["train", "\(world)/double11-2025", "--out", model, "--epochs", "2", "--hidden", "8", "--attention", "4",
                 "--encoder-width", "8", "--head-hidden", "8", "--rows", "101", "--presale-days", "6"])
        let trained = try DINOPModel(contentsOf: URL(fileURLWithPath: model))
        #expect(trained.config.hidden == 8 && trained.layout.dims.embeddingRows == [101, 101, 101, 101])
        // A model trained on the training year starts from its mean log GMV, not from 0.
        #expect(trained.parameters["head.gmv.fc2.bias"].first! > 3)
        try run(["evaluate", "--train", "\(world)/double11-2025", "--test", "\(world)/double11-2026", "--model", model,
                 "--no-gbdt", "--no-ablation", "--presale-days", "6"])
        // --test and --test-fraction exclude each other; a missing folder is an error, not a crash.
        do {
            try run(["evaluate", "--train", "\(world)/double11-2025", "--test", "\(world)/double11-2026", "--test-fraction", "0.2"])
            Issue.record("evaluate accepted both --test and --test-fraction")
        } catch {
            #expect("\(error)".contains("give exactly one of --test and --test-fraction"))
        }
        #expect(throws: (any Error).self) { try run(["train", "\(world)/nonexistent", "--out", model]) }
    }
}

@Suite("promo run's settings: flags, then PROMO_* variables, then the --config file")
struct RunSettingsTests {
    func file(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString).yaml")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    @Test("each setting comes from its flag, else the environment, else the file, else the default; properties add up")
    func precedence() async throws {
        let path = try file("""
            model: /models/m.safetensors
            member: from-file
            grace-seconds: 60
            http-port: 9999
            threads: 2
            kafka:
              - security.protocol=SASL_SSL
              - sasl.password=hunter2
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let s = try await RunSettings.resolve(flags: ["http-port": .int(1234)], kafkaFlags: ["sasl.username=me"], configFile: path,
                                              environment: ["PROMO_GRACE_SECONDS": "30", "PROMO_BOOTSTRAP": "env:9092",
                                                            "GRACE_SECONDS": "1"])
        #expect(s.httpPort == 1234)  // flag over file
        #expect(s.graceSeconds == 30)  // environment over file (an unprefixed variable is not ours)
        #expect(s.member == "from-file" && s.threads == 2 && s.model == "/models/m.safetensors")  // file over default
        #expect(s.bootstrap == "env:9092" && s.group == "promo-stream" && s.restoreTimeout == 1800)  // defaults
        #expect(s.kafka == ["security.protocol=SASL_SSL", "sasl.password=hunter2", "sasl.username=me"])
        let config = try s.kafkaConfig()
        #expect(config["sasl.password"] == "hunter2" && config["bootstrap.servers"] == "env:9092")
        #expect(s.yaml.contains("\"sasl.password=******\"") && !s.yaml.contains("hunter2"))
        #expect(s.yaml.contains("http-port: 1234") && s.yaml.contains("grace-seconds: 30.0"))
    }

    @Test("a typo or a value of the wrong type is refused naming the setting, never replaced by the default")
    func refusals() async throws {
        let typo = try file("model: m\nhttp-prot: 5\n")
        let wrongType = try file("model: m\ngrace-seconds: soon\n")
        defer { for path in [typo, wrongType] { try? FileManager.default.removeItem(atPath: path) } }
        await #expect(throws: SettingsError.self) { _ = try await RunSettings.resolve(flags: [:], kafkaFlags: [], configFile: typo, environment: [:]) }
        do {
            _ = try await RunSettings.resolve(flags: [:], kafkaFlags: [], configFile: typo, environment: [:])
        } catch let error as SettingsError {
            #expect(error.description.contains("unknown setting \"http-prot\""))
        }
        do {
            _ = try await RunSettings.resolve(flags: [:], kafkaFlags: [], configFile: wrongType, environment: [:])
            Issue.record("accepted grace-seconds: soon")
        } catch let error as SettingsError {
            #expect(error.description.contains("grace-seconds") && error.description.contains("soon"))
        }
        do {
            _ = try await RunSettings.resolve(flags: [:], kafkaFlags: [], configFile: nil, environment: ["PROMO_HTTP_PORT": "eighty"])
            Issue.record("accepted PROMO_HTTP_PORT=eighty")
        } catch let error as SettingsError {
            #expect(error.description.contains("http-port"))
        }
        await #expect(throws: SettingsError.self) {
            _ = try await RunSettings.resolve(flags: [:], kafkaFlags: [], configFile: "/nonexistent/run.yaml", environment: [:])
        }
    }

    @Test("the effective settings pass the flags' own checks: a file's out-of-range value is refused by the flag's name")
    func checkedWhereverFrom() async throws {
        let path = try file("model: m\nthreads: 0\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let s = try await RunSettings.resolve(flags: [:], kafkaFlags: [], configFile: path, environment: [:])
        #expect(throws: (any Error).self) { try RunCommand.check(s) }
        do {
            try RunCommand.check(s)
        } catch {
            #expect(PromoCommand.message(for: error).contains("--threads"))
        }
    }
}

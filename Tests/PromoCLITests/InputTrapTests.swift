import DINOP
import Foundation
@testable import PromoCLI
import PromoEvents
import Testing

/// Issue 12's traps from flags and files: each is a clear error now.
@Suite("Flags and files that used to trap")
struct InputTrapTests {
    let folder: URL = FileManager.default.temporaryDirectory.appendingPathComponent("promo-traps-\(UUID().uuidString)")

    func tinyModel() throws -> DINOPModel {
        try DINOPModel.random(config: .default, dims: .defaults(for: .default, rows: 11, width: 4, encoderWidth: 8, headHidden: 8),
                              seed: 1)
    }

    /// Parsing includes `validate()`: what a refused flag prints.
    func refusal(_ arguments: [String]) -> String? {
        do {
            _ = try PromoCommand.parseAsRoot(arguments)
            return nil
        } catch {
            return PromoCommand.message(for: error)
        }
    }

    @Test("out-of-range flags are refused with the flag's name", arguments: [
        (["predict", "--model", "m", "e.jsonl", "--presale-days", "0"], "--presale-days"),
        (["train", "w", "--out", "m", "--presale-days", "0"], "--presale-days"),
        (["train", "w", "--out", "m", "--batch", "0"], "--batch"),
        (["bop", "evaluate", "--negatives", "0"], "--negatives"),
        (["bop", "train", "--out", "d", "--negatives", "100"], "--negatives"),
        (["train", "w", "--out", "m", "--learning-rate", "nan"], "--learning-rate"),
        (["train", "w", "--out", "m", "--hidden", "0"], "--hidden"),
        (["evaluate", "--train", "w", "--test", "t", "--validation", "1"], "--validation"),
        (["run", "--model", "m", "--member", "a", "--grace-seconds", "inf"], "--grace-seconds"),
        (["run", "--model", "m", "--member", "a", "--rollup-seconds", "1e300"], "--rollup-seconds"),
        (["run", "--model", "m", "--member", "a", "--max-batch", "0"], "--max-batch"),
        (["run", "--model", "m", "--member", "a", "--threads", "0"], "--threads"),
        (["run", "--model", "m", "--member", "a", "--tune-batch", "0"], "--tune-batch"),
        (["run", "--model", "m", "--member", "a", "--holdout", "0"], "--holdout"),
        (["run", "--model", "m", "--member", "a", "--role", "shops"], "--role"),
        (["run", "--model", "m", "--member", "a", "--close-grace-seconds", "-1"], "--close-grace-seconds"),
        (["run", "--model", "m", "--member", "a", "--role", "industry", "--finetune-every", "60"], "--finetune-every"),
        (["finetune", "--presale-days", "-1"], "--presale-days"),
        (["produce", "f", "--rate", "0"], "--rate"),
        (["backtest", "--model", "m", "--grace-seconds", "-1"], "--grace-seconds"),
        (["model", "init", "--out", "m", "--version", "-5"], "--version"),
        (["generate", "--out", "w", "--days", "70000"], "--days"),
    ])
    func flagsRefused(arguments: [String], flag: String) {
        let message = refusal(arguments)
        #expect(message?.contains(flag) == true, "\(arguments): \(message ?? "accepted")")
    }

    @Test("the industry role needs a model with the competition extension; the item role alone takes any")
    func industryRoleNeedsCompetition() throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("plain.safetensors")
        try tinyModel().write(to: file)
        var settings = RunSettings()
        settings.model = file.path
        for role in ["industry", "items,industry"] {
            settings.role = role
            do {
                _ = try Role(settings, closeGraceMs: 1_000)
                Issue.record("--role \(role) served a model without competition")
            } catch {
                #expect("\(error)".contains("competition"), "\(error)")
            }
        }
        settings.role = "items"
        guard case .items(_, let industry) = try Role(settings, closeGraceMs: 1_000) else {
            Issue.record("--role items is not the item role")
            return
        }
        #expect(industry == nil)
    }

    @Test("a folder or a missing path given as an event file says so")
    func eventPathErrors() throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try tinyModel()
        for (path, expected) in [(folder.path, "is a folder"), (folder.appendingPathComponent("none.jsonl").path, "no such file")] {
            do {
                _ = try predictOffline(model: model, eventFiles: [URL(fileURLWithPath: path)])
                Issue.record("read \(path)")
            } catch {
                #expect("\(error)" == "\(path): \(expected)" + (expected == "is a folder" ? ", not a JSON-lines file" : ""))
            }
        }
    }

    @Test("a prediction/1 line given to predict is reported, not silently ignored")
    func outputEventReported() throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try tinyModel()
        var p = try JSONDecoder().decode(Prediction.self, from: Data(#"{"days_seen":0,"gmv":1,"bsp":0.5,"slot":1,"slot_probs":[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]}"#.utf8))
        p.daysSeen = 0
        let prediction = PredictionEvent(p, key: .init(promotionID: "p", itemID: "i"), modelVersion: 1, activityID: nil,
                                         producedAt: "2026-11-01T00:00:00Z", asOfDay: nil)
        let file = folder.appendingPathComponent("e.jsonl")
        try Data(Event.prediction(prediction).encoded()).write(to: file)
        let (predictions, rejected, _) = try predictOffline(model: model, eventFiles: [file])
        #expect(predictions.isEmpty)
        #expect(rejected.count == 1)
        #expect(rejected.first?.error.description.hasPrefix("schema: prediction/1 is not an item's input or outcome") == true)
    }

    @Test("weight-file metadata with a version below 1 is refused")
    func negativeVersion() throws {
        var model = try tinyModel()
        model.version = -5
        do {
            _ = try DINOPModel(safetensors: model.safetensors())
            Issue.record("loaded")
        } catch let error as ModelError {
            #expect(error.description.contains("\"version\" is not a positive integer: \"-5\""))
        }
    }
}

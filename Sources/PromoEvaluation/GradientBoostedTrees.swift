import DINOP
import Foundation
import PromoFeatures

/// The gradient-boosted-trees baseline: LightGBM on the flattened features (every day's numbers as their own
/// columns), run by the peer script `Peers/gbdt_baseline.py` so that it is the library data scientists use.
public struct GradientBoostedTrees {
    public var python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
    /// The peer script; `PROMO_GBDT_SCRIPT` overrides where it is looked up (next to this source file).
    public var script = ProcessInfo.processInfo.environment["PROMO_GBDT_SCRIPT"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/gbdt_baseline.py").path
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    public var seed: UInt64 = 1
    /// The GMV objective on log1p(GMV); nil: the peer fits both and keeps the one with the lower validation GMV MAE
    /// (a baseline keeps its best setting too).
    public var gmvLoss: GMVLoss?
    let config: ModelConfig

    public init(config: ModelConfig) { self.config = config }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Trains on `training` and scores `test`, in a scratch folder that is removed afterwards.
    public func scores(training: LabelledItems, test: LabelledItems, log: (String) -> Void) throws -> ItemScores {
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("promo-gbdt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let days = (training.records + test.records).flatMap(\.days).max() ?? 0
        let trainFile = folder.appendingPathComponent("train.csv"), testFile = folder.appendingPathComponent("test.csv")
        let outFile = folder.appendingPathComponent("predictions.csv")
        try csv(training, days: days).write(to: trainFile)
        try csv(test, days: days).write(to: testFile)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, "--train", trainFile.path, "--test", testFile.path, "--out", outFile.path,
                             "--seed", String(seed), "--threads", String(threads)]
                                 + ["--gmv-loss", gmvLoss.map { $0 == .absolute ? "l1" : "l2" } ?? "auto"]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let messages = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        for line in String(decoding: messages, as: UTF8.self).split(separator: "\n") { log("gbdt: \(line)") }
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(script) exited with status \(process.terminationStatus)")
        }
        return try parse(try String(contentsOf: outFile, encoding: .utf8), expected: test.records.map(\.key.itemID))
    }

    /// Columns: item_id, the labels, `c_` categorical ids, `f_` numbers (raw, before normalisation; empty = missing).
    func csv(_ items: LabelledItems, days: Int) -> Data {
        let mapper = FeatureMapper(config: config)
        var header = ["item_id", "label_log_gmv", "label_bsp", "label_ss", "label_ja"]
        header += config.siiFields.map { "c_\($0)" }
        header += config.names(.sis).map { "f_sis_\($0)" } + config.names(.su).map { "f_su_\($0)" }
        for day in 1...max(days, 1) {
            header += config.names(.dis).map { "f_d\(day)_\($0)" } + config.names(.du).map { "f_d\(day)_du_\($0)" }
        }
        header += config.names(.act).map { "f_act_\($0)" }
        var out = header.joined(separator: ",") + "\n"
        func number(_ v: Float) -> String { v.isNaN ? "" : "\(v)" }
        func clean(_ s: String?) -> String { Self.clean(s) }
        for (record, labels) in zip(items.records, items.labels) {
            let logGMV: String = labels.gmv.map { "\(Foundation.log1p($0))" } ?? ""
            let best: String = labels.bestSeller.map { $0 ? "1" : "0" } ?? ""
            let slot: String = labels.slot.map { String($0) } ?? ""
            let joined: String = labels.joinedActivity.map { $0 ? "1" : "0" } ?? ""
            var row: [String] = [clean(record.key.itemID), logGMV, best, slot, joined]
            row += config.siiFields.map { clean(record.profile?.ids[$0]) }
            row += mapper.vector(.sis, record.profile?.sis ?? [:]).map(number)
            row += mapper.vector(.su, record.profile?.su ?? [:]).map(number)
            for day in 1...max(days, 1) {
                row += mapper.vector(.dis, record.sales[day] ?? [:]).map(number)
                row += mapper.vector(.du, record.buyers[day] ?? [:]).map(number)
            }
            row += mapper.vector(.act, record.activity?.features ?? [:]).map(number)
            out += row.joined(separator: ",")
            out += "\n"
        }
        return Data(out.utf8)
    }

    /// The peer reads plain CSV: characters that would need quoting become spaces.
    static func clean(_ s: String?) -> String {
        String((s ?? "").map { [",", "\"", "\n", "\r", "\r\n"].contains($0) ? " " : $0 })
    }

    func parse(_ text: String, expected ids: [String]) throws -> ItemScores {
        let lines = text.split(separator: "\n")
        guard lines.first == "item_id,gmv,bsp,ss,ja", lines.count == ids.count + 1 else {
            throw Failure(description: "predictions: expected a header and \(ids.count) rows, got \(lines.count) lines")
        }
        var gmv: [Double] = [], bsp: [Double] = [], slot: [Int] = [], ja: [Double?] = []
        for (line, id) in zip(lines.dropFirst(), ids) {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard cells.count == 5, let g = Double(cells[1]) else { throw Failure(description: "predictions: bad row \(line)") }
            guard cells[0] == Self.clean(id) else {
                throw Failure(description: "predictions: expected item \(id) in input order, got \(cells[0])")
            }
            gmv.append(g)
            bsp.append(Double(cells[2]) ?? 0)
            slot.append(Int(cells[3]) ?? 10)
            ja.append(Double(cells[4]))
        }
        return ItemScores(gmv: gmv, bsp: bsp, slot: slot, ja: ja)
    }
}

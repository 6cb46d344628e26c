/// The metrics of the paper's offline evaluation.
public enum Metrics {
    /// Mean absolute error, on the scale given (GMV: money).
    public static func meanAbsoluteError(_ predicted: [Double], _ actual: [Double]) -> Double {
        precondition(predicted.count == actual.count)
        guard !actual.isEmpty else { return .nan }
        return zip(predicted, actual).reduce(0) { $0 + abs($1.0 - $1.1) } / Double(actual.count)
    }

    /// Area under the ROC curve: the chance a random positive scores above a random negative (ties count half).
    public static func auc(_ scores: [Double], _ labels: [Bool]) -> Double {
        precondition(scores.count == labels.count)
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0, positives = 0.0
        var start = 0
        while start < order.count {
            var end = start
            while end < order.count && scores[order[end]] == scores[order[start]] { end += 1 }
            let meanRank = Double(start + end + 1) / 2  // ranks are 1-based
            for k in start..<end where labels[order[k]] {
                rankSum += meanRank
                positives += 1
            }
            start = end
        }
        let negatives = Double(labels.count) - positives
        guard positives > 0, negatives > 0 else { return .nan }
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
    }

    public static func accuracy(_ predicted: [Int], _ actual: [Int]) -> Double {
        precondition(predicted.count == actual.count)
        guard !actual.isEmpty else { return .nan }
        return Double(zip(predicted, actual).filter { $0 == $1 }.count) / Double(actual.count)
    }

    /// The `m` minimising Σ|y − m·x| over pairs with x > 0: the x-weighted median of y/x.
    public static func bestMultiple(of x: [Double], for y: [Double]) -> Double {
        let pairs = zip(x, y).filter { $0.0 > 0 }.map { (ratio: $0.1 / $0.0, weight: $0.0) }.sorted { $0.ratio < $1.ratio }
        let half = pairs.reduce(0) { $0 + $1.weight } / 2
        var running = 0.0
        for pair in pairs {
            running += pair.weight
            if running >= half { return pair.ratio }
        }
        return 0
    }
}

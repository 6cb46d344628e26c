/// A benchmark's `--name value` pairs; an odd or unknown flag is an error that shows the usage.
func benchOptions(_ arguments: [String], known: Set<String>, usage: String) throws -> [String: String] {
    var options: [String: String] = [:]
    var i = 0
    while i < arguments.count {
        let flag = arguments[i]
        guard flag.hasPrefix("--"), i + 1 < arguments.count else { throw BenchError("usage: \(usage) (bad \(flag))") }
        options[String(flag.dropFirst(2))] = arguments[i + 1]
        i += 2
    }
    if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) { throw BenchError("unknown option --\(unknown)") }
    return options
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

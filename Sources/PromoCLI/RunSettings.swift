import Configuration
import SystemPackage
import Yams
import Foundation
import PromoKafka

/// `promo run`'s effective settings. Each comes from, in this order of precedence: its flag; the environment variable
/// `PROMO_<NAME>` (the flag's name in capitals, dashes as underscores: `PROMO_GRACE_SECONDS`); the YAML file of
/// `--config` (the flag's name as the key: `grace-seconds: 7200`); the default. librdkafka properties (`-X`,
/// `PROMO_KAFKA` comma-separated, `kafka:` a list of `key=value`) add up, a flag's winning over the file's.
struct RunSettings: Sendable {
    /// `items` (predictions of the item topics), `industry` (MARKETS.md `competition`'s day closes), both
    /// (`items,industry`), or `recommendations` (BOP.md: users' purchases → recommendations).
    var role = "items"
    var model = ""
    var member = ProcessInfo.processInfo.hostName
    var group = "promo-stream"
    var mode = "exactly-once"
    var graceSeconds = 7200.0
    /// The industry stage: how long after it first heard of a day it closes it without every partition's watermark.
    var closeGraceSeconds = 7200.0
    var presaleDays = 20
    var maxBatch = 10_000
    var pollMs = 100
    var rollupSeconds = 1.0
    var threads = 1
    var followModels = true
    var stateDir = ".promo-state"
    var assignmentTimeout = 120.0
    var changelogTopic: String?
    var recomputePerBatch = 1_000
    var finetuneEvery: Double?
    var restoreTimeout = 1800.0
    var statsSeconds = 10.0
    var httpPort = 9464
    var httpHost = "0.0.0.0"
    var logFormat = "text"
    var logLevel = "info"
    var bootstrap = "127.0.0.1:9092"
    /// The recommendation role: items per recommendation, candidates per (promotion, market), how often the
    /// candidate sets are recomputed from the predictions read, and how long a group's predictions must pause first.
    var topK = 10
    var candidates = 100
    var candidateRefreshSeconds = 5.0
    var candidateSettleSeconds = 30.0
    /// librdkafka properties, in the order they were given (later ones win).
    var kafka: [String] = []

    /// The flags a user gave (nil: not given), resolved against the environment and the file.
    static func resolve(flags: [String: ConfigContent], kafkaFlags: [String], configFile: String?,
                        environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> RunSettings {
        var file: (any ConfigProvider)?
        if let configFile {
            guard FileManager.default.fileExists(atPath: configFile) else {
                throw SettingsError("--config \(configFile): no such file")
            }
            try checkKeys(of: configFile)
            file = try await FileProvider<YAMLSnapshot>(filePath: FilePath(configFile))
        }
        return try resolve(flags: flags, kafkaFlags: kafkaFlags, file: file, environment: environment)
    }

    /// The same with the file already read (none: flags, environment and defaults only).
    static func resolve(flags: [String: ConfigContent], kafkaFlags: [String], file: (any ConfigProvider)?,
                        environment: [String: String]) throws -> RunSettings {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, content) in flags { values[AbsoluteConfigKey(ConfigKey(key))] = ConfigValue(content, isSecret: false) }
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "flags", values: values),
            KeyMappingProvider(upstream: EnvironmentVariablesProvider(environmentVariables: environment)) { key in
                key.prepending(["promo"])
            },
        ]
        if let file { providers.append(file) }
        let config = ConfigReader(providers: providers)
        var s = RunSettings()
        /// The value wherever it is set, the default where it is not; a value that is set but not of the type is an
        /// error naming the setting (the reader would otherwise fall back to the default without a word).
        func value<T>(_ key: String, _ fallback: T, _ required: (ConfigKey) throws -> T) throws -> T {
            do {
                return try required(ConfigKey(key))
            } catch {
                guard flags[key] != nil || config.string(forKey: ConfigKey(key)) != nil else { return fallback }
                throw SettingsError("setting \(key): \(config.string(forKey: ConfigKey(key)).map { "\"\($0)\" is not" } ?? "not") a valid \(T.self)")
            }
        }
        func optional<T>(_ key: String, _ required: (ConfigKey) throws -> T) throws -> T? {
            try value(key, nil as T?) { try required($0) }
        }
        s.role = try value("role", s.role) { try config.requiredString(forKey: $0) }
        s.model = try value("model", s.model) { try config.requiredString(forKey: $0) }
        s.member = try value("member", s.member) { try config.requiredString(forKey: $0) }
        // Each role is its own application: its own group, changelog and transactional ids.
        s.group = try value("group", s.role == "recommendations" ? "promo-recommendations" : s.group) { try config.requiredString(forKey: $0) }
        s.mode = try value("mode", s.mode) { try config.requiredString(forKey: $0) }
        s.graceSeconds = try value("grace-seconds", s.graceSeconds) { try config.requiredDouble(forKey: $0) }
        s.closeGraceSeconds = try value("close-grace-seconds", s.closeGraceSeconds) { try config.requiredDouble(forKey: $0) }
        s.presaleDays = try value("presale-days", s.presaleDays) { try config.requiredInt(forKey: $0) }
        // A purchase costs a scoring per promotion of the user's market (about 30 ms for 100 candidates): smaller
        // batches keep a transaction well inside the group's poll interval.
        s.maxBatch = try value("max-batch", s.role == "recommendations" ? 200 : s.maxBatch) { try config.requiredInt(forKey: $0) }
        s.pollMs = try value("poll-ms", s.pollMs) { try config.requiredInt(forKey: $0) }
        s.rollupSeconds = try value("rollup-seconds", s.rollupSeconds) { try config.requiredDouble(forKey: $0) }
        s.threads = try value("threads", s.threads) { try config.requiredInt(forKey: $0) }
        s.followModels = try value("follow-models", s.followModels) { try config.requiredBool(forKey: $0) }
        s.stateDir = try value("state-dir", s.stateDir) { try config.requiredString(forKey: $0) }
        s.assignmentTimeout = try value("assignment-timeout", s.assignmentTimeout) { try config.requiredDouble(forKey: $0) }
        s.changelogTopic = try optional("changelog-topic") { try config.requiredString(forKey: $0) }
        s.recomputePerBatch = try value("recompute-per-batch", s.recomputePerBatch) { try config.requiredInt(forKey: $0) }
        s.finetuneEvery = try optional("finetune-every") { try config.requiredDouble(forKey: $0) }
        s.restoreTimeout = try value("restore-timeout", s.restoreTimeout) { try config.requiredDouble(forKey: $0) }
        s.statsSeconds = try value("stats-seconds", s.statsSeconds) { try config.requiredDouble(forKey: $0) }
        s.httpPort = try value("http-port", s.httpPort) { try config.requiredInt(forKey: $0) }
        s.httpHost = try value("http-host", s.httpHost) { try config.requiredString(forKey: $0) }
        s.logFormat = try value("log-format", s.logFormat) { try config.requiredString(forKey: $0) }
        s.logLevel = try value("log-level", s.logLevel) { try config.requiredString(forKey: $0) }
        s.bootstrap = try value("bootstrap", s.bootstrap) { try config.requiredString(forKey: $0) }
        s.topK = try value("top-k", s.topK) { try config.requiredInt(forKey: $0) }
        s.candidates = try value("candidates", s.candidates) { try config.requiredInt(forKey: $0) }
        s.candidateRefreshSeconds = try value("candidate-refresh-seconds", s.candidateRefreshSeconds) { try config.requiredDouble(forKey: $0) }
        s.candidateSettleSeconds = try value("candidate-settle-seconds", s.candidateSettleSeconds) { try config.requiredDouble(forKey: $0) }
        // Properties add up across sources: the file's (and the environment's) first, the flags' last, so a flag
        // wins. Not through the reader, which would take only the first source that has the key.
        let reader = ConfigReader(providers: Array(providers.dropFirst()))
        s.kafka = (reader.stringArray(forKey: "kafka") ?? []) + kafkaFlags
        return s
    }

    /// Every setting a file may hold: a key outside them is a typo, refused by name rather than ignored.
    static let keys: Set<String> = [
        "role", "model", "member", "group", "mode", "grace-seconds", "close-grace-seconds", "presale-days", "max-batch", "poll-ms", "rollup-seconds",
        "threads", "follow-models", "state-dir", "assignment-timeout", "changelog-topic", "recompute-per-batch",
        "finetune-every", "restore-timeout", "stats-seconds", "http-port", "http-host", "log-format", "log-level", "bootstrap", "kafka",
        "top-k", "candidates", "candidate-refresh-seconds", "candidate-settle-seconds",
    ]

    static func checkKeys(of file: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw SettingsError("--config \(file): cannot read it (\(error.localizedDescription))")
        }
        let object: Any?
        do {
            object = try Yams.load(yaml: text)
        } catch {
            throw SettingsError("--config \(file): not YAML: \(error)")
        }
        guard let map = object as? [String: Any] else { throw SettingsError("--config \(file): expected a map of settings") }
        for key in map.keys.sorted() where !keys.contains(key) {
            throw SettingsError("--config \(file): unknown setting \"\(key)\" (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func kafkaConfig() throws -> KafkaConfig {
        var config = KafkaConfig(bootstrapServers: bootstrap)
        if let bad = config.apply(kafka) { throw SettingsError("kafka property \(bad): expected key=value") }
        return config
    }

    /// Property names whose values are secrets: shown masked.
    static func isSecret(_ name: String) -> Bool {
        let lower = name.lowercased()
        return ["password", "secret", "token", "ssl.key.", "sasl.jaas", "sasl.oauthbearer.config", "credentials"]
            .contains { lower.contains($0) }
    }

    /// The effective settings as YAML a `--config` file takes, secrets masked.
    var yaml: String {
        func quoted(_ s: String) -> String {
            "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        var lines: [(String, String)] = [
            ("role", role), ("model", quoted(model)), ("member", quoted(member)), ("group", quoted(group)), ("mode", mode),
            ("bootstrap", quoted(bootstrap)), ("grace-seconds", "\(graceSeconds)"), ("close-grace-seconds", "\(closeGraceSeconds)"), ("presale-days", "\(presaleDays)"),
            ("max-batch", "\(maxBatch)"), ("poll-ms", "\(pollMs)"), ("rollup-seconds", "\(rollupSeconds)"),
            ("threads", "\(threads)"), ("follow-models", "\(followModels)"), ("state-dir", quoted(stateDir)),
            ("assignment-timeout", "\(assignmentTimeout)"), ("recompute-per-batch", "\(recomputePerBatch)"),
            ("restore-timeout", "\(restoreTimeout)"), ("stats-seconds", "\(statsSeconds)"), ("http-port", "\(httpPort)"), ("http-host", quoted(httpHost)),
            ("log-format", logFormat), ("log-level", logLevel), ("top-k", "\(topK)"), ("candidates", "\(candidates)"),
            ("candidate-refresh-seconds", "\(candidateRefreshSeconds)"), ("candidate-settle-seconds", "\(candidateSettleSeconds)"),
        ]
        if let changelogTopic { lines.append(("changelog-topic", quoted(changelogTopic))) }
        if let finetuneEvery { lines.append(("finetune-every", "\(finetuneEvery)")) }
        var text = lines.map { "\($0): \($1)" }.joined(separator: "\n")
        if !kafka.isEmpty {
            text += "\nkafka:"
            for property in kafka {
                let (name, value) = property.firstIndex(of: "=").map { (String(property[..<$0]), String(property[property.index(after: $0)...])) }
                    ?? (property, "")
                text += "\n  - " + quoted("\(name)=\(Self.isSecret(name) ? "******" : value)")
            }
        }
        return text + "\n"
    }
}

struct SettingsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

import ArgumentParser
import BOP
import Configuration
import DINOP
import Foundation
import Logging
import PromoKafka
import PromoServer
import PromoEvents
import PromoService
import PromoStream
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a stream-processor member: consume the input topics, publish predictions, rollups and dead letters.",
        discussion: """
            Members of one --group share the input partitions. SIGTERM or SIGINT finishes the batch in flight, \
            commits it, leaves the group and exits 0. Members follow the model topic: they serve the latest \
            announced version that verifies (--model until one is announced) and switch between batches; members of \
            the recommendation role serve the BOP part of the latest announced version that has one (a combined \
            file, `promo bop combine`) and pass over item-only versions. With --finetune-every, this member also fine-tunes on the topics' labels on that schedule and publishes \
            accepted versions (give one member of the group that role).
            """)

    // Every setting below may also come from PROMO_<NAME> or the --config file (RunSettings): hence no defaults here,
    // which would always win; the defaults are in each help text and in RunSettings.
    @Option(help: "A YAML file of settings, each keyed by its flag's name (grace-seconds: 7200); flags, then PROMO_<NAME> environment variables, win over it.")
    var config: String?
    @Flag(help: "Print the effective settings (secrets masked) as a --config file and exit.") var printConfig = false
    @Option(help: "Bootstrap brokers, host:port[,host:port…] (default: 127.0.0.1:9092).") var bootstrap: String?
    @Option(name: [.customShort("X"), .customLong("kafka")],
            help: "A librdkafka property key=value (repeatable), e.g. -X security.protocol=SASL_SSL; added to the file's.")
    var properties: [String] = []
    @Option(help: "items (the default: predictions of the item topics), industry (MARKETS.md competition: the stage that closes each pre-sale day for every item of an industry; its consumer group is <group>.industry), items,industry (both in this process), or recommendations (BOP.md: users' purchases on promo.purchases → their recommendations on promo.recommendations). A model with the competition extension needs the industry role running in some process of the deployment.")
    var role: String?
    @Option(help: "The weight file: dinop/1 or dinop/2 for the item role (served until the model topic announces a version); a BOP file (`promo bop train`) or a combined one (`promo bop combine`) for the recommendation role (served until the model topic announces a version with a BOP part).")
    var model: String?
    @Option(help: "Consumer group of the members (default: promo-stream; promo-recommendations for the recommendation role).") var group: String?
    @Option(help: "This member's name: unique in the group and the same across restarts (names its transactional id; default: the host name).")
    var member: String?
    @Option(help: "exactly-once (transactions, the default) or at-least-once (idempotent producer, commit after flush).")
    var mode: String?
    @Option(help: "Seconds the latest day waits for its buyer profile before it is applied without one (default: 7200).")
    var graceSeconds: Double?
    @Option(help: "Industry role: seconds after it first heard of a pre-sale day that the stage closes it without every input partition's watermark (a partition without items of the promotion, a stalled member, the last pre-sale day; default: 7200).")
    var closeGraceSeconds: Double?
    @Option(help: "Days of the pre-sale window; daily events outside it are dead letters (default: 20).") var presaleDays: Int?
    @Option(help: "At most this many input messages per transaction (default: 10000).") var maxBatch: Int?
    @Option(help: "How long a poll waits to fill a batch (ms; default: 100): lower gives lower latency, higher bigger batches.")
    var pollMs: Int?
    @Option(help: "Seconds between a partition's rollup records for the sums that changed (default: 1).") var rollupSeconds: Double?
    @Option(help: "Threads processing partitions in parallel (partition p on thread p mod N): one per core to spare (default: 1).")
    var threads: Int?
    @Flag(help: "Serve --model only; ignore the model topic (setting follow-models: false).") var noFollowModels = false
    @Option(help: "A folder that outlives the process (a volume in a container) for the crash marker that stops a poison pill from crashing the member in a loop (default: .promo-state).")
    var stateDir: String?
    @Option(help: "Seconds to wait for the group to assign partitions before joining it again (three times, then the member stops with the reason; default: 120).")
    var assignmentTimeout: Double?
    @Option(help: "The state changelog topic (default: <group>.state-changelog). A deployment of a version that used the shared promo.state-changelog keeps its state by naming it here.")
    var changelogTopic: String?
    @Option(help: "After a model switch, recompute at most this many items per batch in the background (default: 1000).")
    var recomputePerBatch: Int?
    @Option(help: "Also fine-tune every this many seconds, when new labels arrived, and publish accepted versions.")
    var finetuneEvery: Double?
    @OptionGroup var tuning: FineTuneFlags
    @Option(help: "Seconds a restore of assigned partitions may take before the member stops with the reason, for its supervisor to restart it (default: 1800).")
    var restoreTimeout: Double?
    @Option(help: "Seconds between the stats lines (an idle member's heartbeat: lag, dead letters, what it waits for; default: 10).")
    var statsSeconds: Double?
    @Option(help: "Port of the HTTP endpoints /metrics, /health and /ready (0: none; default: 9464).") var httpPort: Int?
    @Option(help: "Address the HTTP endpoints listen on (default: 0.0.0.0).") var httpHost: String?
    @Option(help: "Log lines as text (the default) or json (one object per line, for log shippers).") var logFormat: String?
    @Option(help: "Recommendation role: items per recommendation (default: 10).") var topK: Int?
    @Option(help: "Recommendation role: candidates per promotion and market, the items with the highest predicted GMV (default: 100).")
    var candidates: Int?
    @Option(help: "Recommendation role: seconds between recomputations of the candidate sets from the predictions read (default: 5).")
    var candidateRefreshSeconds: Double?
    @Option(help: "Recommendation role: a group's candidates are taken once none of its predictions arrived for this long (a day's close in the item role is a burst of them); at most ten such periods while they keep coming (default: 30).")
    var candidateSettleSeconds: Double?
    @Option(help: "Lowest level logged: trace, debug, info (the default), notice, warning, error, critical.") var logLevel: String?

    /// The flags given, by setting name.
    var givenFlags: [String: ConfigContent] {
        var flags: [String: ConfigContent] = [:]
        func put(_ key: String, _ value: ConfigContent?) { if let value { flags[key] = value } }
        put("bootstrap", bootstrap.map { .string($0) })
        put("role", role.map { .string($0) })
        put("model", model.map { .string($0) })
        put("group", group.map { .string($0) })
        put("member", member.map { .string($0) })
        put("mode", mode.map { .string($0) })
        put("grace-seconds", graceSeconds.map { .double($0) })
        put("close-grace-seconds", closeGraceSeconds.map { .double($0) })
        put("presale-days", presaleDays.map { .int($0) })
        put("max-batch", maxBatch.map { .int($0) })
        put("poll-ms", pollMs.map { .int($0) })
        put("rollup-seconds", rollupSeconds.map { .double($0) })
        put("threads", threads.map { .int($0) })
        if noFollowModels { flags["follow-models"] = .bool(false) }
        put("state-dir", stateDir.map { .string($0) })
        put("assignment-timeout", assignmentTimeout.map { .double($0) })
        put("changelog-topic", changelogTopic.map { .string($0) })
        put("recompute-per-batch", recomputePerBatch.map { .int($0) })
        put("finetune-every", finetuneEvery.map { .double($0) })
        put("restore-timeout", restoreTimeout.map { .double($0) })
        put("stats-seconds", statsSeconds.map { .double($0) })
        put("http-port", httpPort.map { .int($0) })
        put("http-host", httpHost.map { .string($0) })
        put("log-format", logFormat.map { .string($0) })
        put("log-level", logLevel.map { .string($0) })
        put("top-k", topK.map { .int($0) })
        put("candidates", candidates.map { .int($0) })
        put("candidate-refresh-seconds", candidateRefreshSeconds.map { .double($0) })
        put("candidate-settle-seconds", candidateSettleSeconds.map { .double($0) })
        return flags
    }

    /// The flags given are checked as they are parsed (the effective settings again in `run`, wherever from).
    func validate() throws {
        let flagsOnly = try RunSettings.resolve(flags: givenFlags, kafkaFlags: [], file: nil, environment: [:])
        try Self.check(flagsOnly, requireModel: false)
    }

    /// The checks apply to the effective settings, wherever each came from; the message names the flag.
    static func check(_ s: RunSettings, requireModel: Bool = true) throws {
        guard !requireModel || !s.model.isEmpty else { throw ValidationError("give --model (or model: in --config, or PROMO_MODEL)") }
        try FlagCheck.seconds(s.graceSeconds, "--grace-seconds")
        try FlagCheck.seconds(s.closeGraceSeconds, "--close-grace-seconds")
        try FlagCheck.inRange(s.presaleDays, FlagCheck.presaleDays, "--presale-days")
        try FlagCheck.inRange(s.httpPort, 0...65_535, "--http-port")
        try FlagCheck.seconds(s.restoreTimeout, "--restore-timeout", positive: true)
        try FlagCheck.seconds(s.statsSeconds, "--stats-seconds", positive: true)
        try FlagCheck.inRange(s.maxBatch, 1...1_000_000, "--max-batch")
        try FlagCheck.inRange(s.pollMs, 0...60_000, "--poll-ms")
        try FlagCheck.seconds(s.rollupSeconds, "--rollup-seconds")
        try FlagCheck.inRange(s.threads, 1...256, "--threads")
        try FlagCheck.atLeast(s.recomputePerBatch, 0, "--recompute-per-batch")
        try FlagCheck.seconds(s.assignmentTimeout, "--assignment-timeout", positive: true)
        if let every = s.finetuneEvery { try FlagCheck.seconds(every, "--finetune-every", positive: true) }
        guard Role.names.contains(s.role) else {
            throw ValidationError("--role must be one of \(Role.names.joined(separator: ", ")), got \(s.role)")
        }
        if !s.role.hasPrefix("items"), s.finetuneEvery != nil {
            throw ValidationError("--finetune-every fine-tunes the item model: give it to a member of the item role")
        }
        try FlagCheck.inRange(s.topK, 1...Recommendation.maxItems, "--top-k")
        try FlagCheck.inRange(s.candidates, 1...CandidateTable.largest, "--candidates")
        if s.role == "recommendations" { try FlagCheck.atLeast(s.recomputePerBatch, 1, "--recompute-per-batch") }
        try FlagCheck.seconds(s.candidateRefreshSeconds, "--candidate-refresh-seconds")
        try FlagCheck.inRange(s.candidateSettleSeconds, 0...Double(CandidateTable.longestSettleMs / 1000), "--candidate-settle-seconds")
        guard !s.member.isEmpty, !s.group.isEmpty else { throw ValidationError("--member and --group must not be empty") }
        guard LogFormat(rawValue: s.logFormat) != nil else { throw ValidationError("--log-format must be text or json, got \(s.logFormat)") }
        guard Logger.Level(rawValue: s.logLevel) != nil else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got \(s.logLevel)")
        }
    }

    func run() async throws {
        let settings: RunSettings
        do {
            settings = try await RunSettings.resolve(flags: givenFlags, kafkaFlags: properties, configFile: config)
        } catch let error as SettingsError {
            throw ValidationError(error.description)
        }
        if printConfig {
            print(settings.yaml, terminator: "")
            return
        }
        try Self.check(settings)
        guard let mode = DeliveryMode(rawValue: settings.mode) else {
            throw ValidationError("--mode must be one of \(DeliveryMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let member = settings.member, group = settings.group
        var options = ServiceOptions(kafka: try settings.kafkaConfig(), member: member)
        options.group = group
        options.mode = mode
        options.maxBatch = settings.maxBatch
        options.pollTimeoutMs = Int32(settings.pollMs)
        options.processor.rollupIntervalMs = Int64(settings.rollupSeconds * 1000)
        options.processor.gracePeriodMs = Int64(settings.graceSeconds * 1000)
        options.processor.presaleDays = settings.presaleDays
        options.processor.recomputePerCall = settings.recomputePerBatch
        options.processor.threads = settings.threads
        options.followModels = settings.followModels
        options.stateDirectory = URL(fileURLWithPath: settings.stateDir)
        options.assignmentTimeoutSeconds = settings.assignmentTimeout
        options.restoreTimeoutSeconds = settings.restoreTimeout
        options.statsIntervalSeconds = settings.statsSeconds
        if let changelogTopic = settings.changelogTopic { options.topics.changelog = changelogTopic }
        let httpPort = settings.httpPort, httpHost = settings.httpHost, presaleDays = settings.presaleDays
        options.candidateRefreshSeconds = settings.candidateRefreshSeconds
        options.candidateSettleSeconds = settings.candidateSettleSeconds
        let role = try Role(settings, closeGraceMs: Int64(settings.closeGraceSeconds * 1000))
        Observability.bootstrap(format: LogFormat(rawValue: settings.logFormat) ?? .text,
                                level: Logger.Level(rawValue: settings.logLevel) ?? .info)
        var logger = Logger(label: "promo.member")
        logger[metadataKey: "member"] = "\(member)"
        logger[metadataKey: "group"] = "\(group)"
        // Every client of this member (consumer, producer, admin, model topic, fine-tuner) logs through swift-log.
        var librdkafkaLogger = Logger(label: "rdkafka")
        librdkafkaLogger[metadataKey: "member"] = "\(member)"
        options.kafka.logHandler = LibrdkafkaLog.handler(librdkafkaLogger)
        // Batches are a few hundred rows: one BLAS thread is faster than several spinning against the broker
        // client's threads on the same cores.
        BLAS.setThreads(1)
        // Each role's lines name it: one process may run two.
        let log: @Sendable (String) -> @Sendable (ServiceEvent) -> Void = { [logger] role in { event in
            var metadata: Logger.Metadata = ["event": "\(event.name)", "role": "\(role)"]
            for (key, value) in event.fields { metadata[key] = "\(value)" }
            switch event.level {
            case .info: logger.info("\(event.message)", metadata: metadata)
            case .warning: logger.warning("\(event.message)", metadata: metadata)
            case .error: logger.error("\(event.message)", metadata: metadata)
            }
        }}
        var members: [(role: String, service: StreamService)] = []
        switch role {
        case .items(let model, let industry):
            members.append(("items", StreamService(model: model, options: options, events: log("items"))))
            if let industry {
                members.append(("industry", StreamService(industry: industry, options: options.industryStage, events: log("industry"))))
            }
        case .industry(let industry):
            members.append(("industry", StreamService(industry: industry, options: options.industryStage, events: log("industry"))))
        case .recommendations(let bop, let recommendations):
            members.append(("recommendations", StreamService(recommending: bop, options: options, recommendations: recommendations,
                                                             events: log("recommendations"))))
        }
        let health = members.count == 1 ? members[0].service.health
            : ServiceHealth(combining: members.map { ($0.role, $0.service.health) })
        // Started in this order, stopped in the reverse one: the fine-tuner first, then the members (each finishes
        // its batch, commits and leaves its group), the HTTP endpoints last, so the probes answer to the end.
        var services: [any Service] = []
        if httpPort > 0 {
            services.append(OperationsServer.application(host: httpHost, port: httpPort, registry: Observability.registry,
                                                         health: health, logger: Logger(label: "promo.http")))
        }
        services += members.map { MemberService($0.service) as any Service }
        if let finetuneEvery = settings.finetuneEvery {
            var fineTunerLog = Logger(label: "promo.finetune")
            fineTunerLog[metadataKey: "member"] = "\(member)"
            var job = FineTuneJob(kafka: options.kafka, options: try tuning.options()) { [fineTunerLog] in fineTunerLog.info("\($0)") }
            job.topics = options.topics
            job.fallbackFile = settings.model
            job.presaleDays = presaleDays
            job.publish = true
            services.append(FineTunerService(job, every: finetuneEvery))
        }
        // Last, so it is the first to hear of a shutdown: systemd learns of it (STOPPING=1) before the member stops.
        if let notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment) {
            services.append(SystemdNotifyService.member(health, notifier: notifier, logger: Logger(label: "promo.systemd")))
        }
        // Any service ending, normally or not, stops the others: a member without its endpoints (or the reverse)
        // is not what the orchestrator thinks is running.
        let serviceGroup = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                                           failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "promo.lifecycle")))
        do {
            try await serviceGroup.run()
        } catch let error as KafkaError {
            throw BrokerError(error, servers: options.kafka["bootstrap.servers"] ?? "")
        }
    }
}

/// What a member serves, by `--role`.
enum Role {
    /// The item role, and the industry stage in the same process when given.
    case items(DINOPModel, industry: IndustryStageOptions?)
    case industry(IndustryStageOptions)
    case recommendations(BOPModel, UserProcessorOptions)

    static let names = ["items", "industry", "items,industry", "recommendations"]

    init(_ settings: RunSettings, closeGraceMs: Int64) throws {
        guard settings.role == "recommendations" else {
            let model = try loadModel(settings.model)
            let competes = model.config.has(extension: ModelExtension.competition)
            var industry = IndustryStageOptions()
            industry.width = model.config.competition.width
            industry.cooperation = model.config.competition.cooperation
            industry.graceMs = closeGraceMs
            industry.presaleDays = settings.presaleDays
            switch settings.role {
            case "items": self = .items(model, industry: nil)
            case _ where !competes:
                throw ValidationError("--role \(settings.role): --model \(settings.model) does not list the competition extension, whose day closes the industry stage computes")
            case "industry": self = .industry(industry)
            default: self = .items(model, industry: industry)
            }
            return
        }
        let bop: BOPModel
        do {
            bop = try BOPModel(contentsOf: URL(fileURLWithPath: settings.model))
        } catch {
            throw ValidationError("--model \(settings.model): \(error) (the recommendation role serves a BOP file: `promo bop train` writes them)")
        }
        if let problem = Recommender.servingProblem(bop) { throw ValidationError("--model \(settings.model): \(problem)") }
        var options = UserProcessorOptions()
        options.topK = settings.topK
        options.candidates = settings.candidates
        options.recomputePerCall = settings.recomputePerBatch
        self = .recommendations(bop, options)
    }
}

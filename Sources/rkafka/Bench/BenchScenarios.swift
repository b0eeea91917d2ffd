/// The connector's side of a Kafka benchmark scenario, measured next to its raw baseline.
///
/// An implementation reads the seeded `env.inputTopic` in group `env.connectorGroup`
/// (consuming scenarios) and/or writes `env.parameters.messages` values of
/// `env.parameters.size` bytes to `env.connectorOutputTopic`, with the librdkafka properties
/// in `env.consumerSettingsProperties(group:)` / `env.producerSettingsProperties` so that it
/// runs with the baseline's configuration. It times itself with a ``PhaseMeter``: `begin()`
/// at the first record consumed (or before the first produced), `finish(messages:)` once the
/// last record is processed and, where the scenario commits, committed.
protocol ConnectorBenchmark: Sendable {
    func run(_ env: BenchEnvironment) async throws -> BenchMeasurement
}

/// A Kafka scenario of `rkafka bench`: a raw-librdkafka baseline and the connector
/// version of the same work.
struct KafkaBenchScenario: Sendable {
    let name: String
    /// What the baseline is, for the result line.
    let baselineDescription: String
    /// Whether the scenario reads `env.inputTopic`, which is then seeded first (not measured).
    let consumesSeededInput: Bool
    /// The raw loop; blocking, run on a dedicated thread.
    let baseline: @Sendable (BenchEnvironment) throws -> BenchMeasurement
    let connector: any ConnectorBenchmark
    /// Writes what the scenario reads instead of the default seeding (`consumesSeededInput`); not measured.
    var seed: (@Sendable (BenchEnvironment) throws -> Void)? = nil
}

/// Every scenario `rkafka bench` knows.
enum BenchScenarios {
    static let kafka: [KafkaBenchScenario] = [
        KafkaBenchScenario(
            name: "plain-consume",
            baselineDescription: "raw librdkafka consume loop (consume_batch_queue)",
            consumesSeededInput: true,
            baseline: { env in try RawBaselines.consume(env, group: env.baselineGroup) },
            connector: PlainConsumeBench()
        ),
        KafkaBenchScenario(
            name: "committable-consume-commit",
            baselineDescription: "raw librdkafka consume loop + async commit every 1000 messages",
            consumesSeededInput: true,
            baseline: { env in try RawBaselines.consumeCommit(env, group: env.baselineGroup) },
            connector: CommittableConsumeCommitBench()
        ),
        KafkaBenchScenario(
            name: "produce-flexiflow",
            baselineDescription: "raw librdkafka produce loop (produceva, poll(0) per message, flush)",
            consumesSeededInput: false,
            baseline: { env in try RawBaselines.produce(env, topic: env.baselineOutputTopic) },
            connector: ProduceFlexiFlowBench()
        ),
        KafkaBenchScenario(
            name: "produce-plainsink",
            baselineDescription: "raw librdkafka produce loop (produceva, poll(0) per message, flush)",
            consumesSeededInput: false,
            baseline: { env in try RawBaselines.produce(env, topic: env.baselineOutputTopic) },
            connector: ProducePlainSinkBench()
        ),
        KafkaBenchScenario(
            name: "at-least-once-pipeline",
            baselineDescription: "raw librdkafka consume → produce → commit-after-delivery loop",
            consumesSeededInput: true,
            baseline: { env in
                try RawBaselines.pipeline(env, group: env.baselineGroup, outputTopic: env.baselineOutputTopic)
            },
            connector: AtLeastOncePipelineBench()
        ),
        TransactionalBench.scenario,
        TableJoinBench.scenario,
        TableLookupBench.scenario,
        EventSourcedRecoveryBench.scenario,
    ]

    /// Every scenario name, Kafka ones first.
    static var allNames: [String] {
        kafka.map(\.name) + [RebalanceBench.name, LatencyBench.name, ParallelBench.name] + StreamKitBenchShim.scenarios
    }

    static func kafkaScenario(named name: String) -> KafkaBenchScenario? { kafka.first { $0.name == name } }
}

import AsyncAlgorithms
import Foundation
import ReactiveKafka
import StreamKit

/// The topics the detector reads and writes.
public struct FraudTopics: Sendable {
    /// Input: ``Activity/login(_:)`` records keyed by customer, one partition, in time order.
    public var logins = "fraud-logins"
    /// Input: ``Activity/payment(_:)`` records keyed by customer, one partition, in time order.
    public var payments = "fraud-payments"
    /// Input table: ``Profile`` by customer (compacted).
    public var profiles = "fraud-profiles"
    /// Output: ``FraudAlert``s, written exactly once.
    public var alerts = "fraud-alerts"
    /// Output: ``MinuteSpend`` window results, written exactly once.
    public var spend = "fraud-spend"
    /// The detector's ``FraudCheckpoint``s, written in the transactions of the outputs they count.
    public var checkpoints = "fraud-checkpoints"

    /// The default names.
    public init() {}
}

/// The fraud detector: logins and payments merged in event-time order, each joined with its
/// customer's profile from a ``KafkaTable``; a pattern raises an alert when a login from a new
/// country is followed by a payment over the customer's limit within 5 minutes; payments are
/// summed per customer in 1-minute tumbling windows; alerts and window results are written in
/// Kafka transactions.
///
/// **Exactly once across a crash.** `matching` and `windowed` keep their state (partial
/// matches, open windows) in memory, so a restarted detector rebuilds it by reading its inputs
/// again from the start. Every transaction also writes a ``FraudCheckpoint`` counting the
/// alerts and window results committed so far; the output is a deterministic function of the
/// input (each topic is read in offset order, the merge is by timestamp, the operators emit in
/// event-time order), so on restart the detector skips exactly that many of each and writes
/// the rest. A transaction cut short by a crash commits nothing, its checkpoint included, and
/// the next instance's `init_transactions` (same transactional id) aborts it.
public struct FraudDetector: Sendable {
    /// Where the cluster is.
    public var bootstrapServers: String
    /// The topics.
    public var topics: FraudTopics
    /// The transactional id; a restarted detector must use the same one (it fences the old one).
    public var transactionalId: String

    /// "A login from a new country followed by a payment over the limit within 5 minutes".
    public static let takeover = EventPattern<ProfiledActivity>
        .first("login from a new country") { $0.isLoginFromNewCountry }
        .followedBy("payment over the limit") { $0.isPaymentOverLimit }
        .within(.seconds(5 * 60))

    /// How far behind the latest event an event may arrive and still count.
    public static let outOfOrderness: Duration = .seconds(5)

    /// A detector on `bootstrapServers`.
    public init(
        bootstrapServers: String, topics: FraudTopics = FraudTopics(), transactionalId: String = "fraud-detector"
    ) {
        self.bootstrapServers = bootstrapServers
        self.topics = topics
        self.transactionalId = transactionalId
    }

    /// Processes the input present at start (the first `end` records of each input topic, the
    /// end offsets at start) and returns where the committed output ends. Once the input
    /// ends, the watermark reaches the end of time: every open window closes and is written.
    ///
    /// `afterCommit` runs after each transaction has committed; what it throws ends the run at
    /// once (nothing drained, nothing more written), as a crash there would.
    public func run(
        afterCommit: @escaping @Sendable (FraudCheckpoint) async throws -> Void = { _ in }
    ) async throws -> FraudRun {
        let producer = try TransactionalProducer(
            ProducerSettings(keySerializer: .string, valueSerializer: .string).withBootstrapServers(bootstrapServers),
            transactionalId: transactionalId)
        let profiles = try KafkaTable(
            topic: topics.profiles,
            settings: ConsumerSettings(keyDeserializer: .string, valueDeserializer: .json(Profile.self))
                .withBootstrapServers(bootstrapServers))
        let profilesRunning = Task { try await profiles.run() }
        do {
            // The first transaction initialises the producer: on a broker that fences an
            // earlier instance and aborts its open transaction, which would otherwise hold
            // `read_committed` readers of the checkpoints back until it timed out.
            try await producer.transaction { _ in }
            let resumedFrom = try await lastCheckpoint()
            try await profiles.ready()
            let result = try await process(
                profiles: profiles, producer: producer, resumedFrom: resumedFrom, afterCommit: afterCommit)
            await producer.close()
            profiles.close()
            try await profilesRunning.value
            return result
        } catch {
            await producer.close()
            profiles.close()
            _ = await profilesRunning.result
            throw error
        }
    }

    private func process(
        profiles: KafkaTable<String, Profile>, producer: TransactionalProducer<String, String>,
        resumedFrom: FraudCheckpoint, afterCommit: @Sendable (FraudCheckpoint) async throws -> Void
    ) async throws -> FraudRun {
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .json(Activity.self))
            .withBootstrapServers(bootstrapServers)
        let inputs = [TopicPartition(topics.logins, 0), TopicPartition(topics.payments, 0)]
        let metadata = try MetadataClient(settings)
        let ends = try await metadata.endOffsets(inputs)
        metadata.close()
        // Each input from its start (the state is rebuilt from it) up to its end at start.
        let sources = inputs.map { partition in
            Consumer.plainSource(settings, subscription: .assignmentWithOffset([partition: 0]))
                .take(Int(ends[partition] ?? 0))
        }
        let activity = Source(Consumer.mergedByTimestamp(sources, idleTimeout: nil))
            .join(profiles, key: { $0.key ?? "" })
            .map { joined in
                ProfiledActivity(activity: joined.record.value, time: joined.record.eventTime, profile: joined.value)
            }
        let branches = activity.broadcast(count: 2)
        let alerts = branches[0]
            .matching(Self.takeover, key: \.customer, time: \.time, outOfOrderness: Self.outOfOrderness)
            .compactMap { output -> FraudOutput? in
                // Late events: none here, each topic is in time order and the merge keeps it so.
                guard case .match(let match) = output,
                    case .login(let login) = match.events[0].activity,
                    case .payment(let payment) = match.events[1].activity
                else { return nil }
                return .alert(
                    FraudAlert(
                        customer: match.key, country: login.country, loginTime: match.events[0].time.milliseconds,
                        paymentId: payment.id, amount: payment.amount, paymentTime: match.events[1].time.milliseconds))
            }
        let spend = branches[1]
            .filter { if case .payment = $0.activity { true } else { false } }
            .windowed(
                .tumbling(.seconds(60)), key: \.customer, time: \.time, outOfOrderness: Self.outOfOrderness,
                aggregate: .sum(\.spent)
            )
            .compactMap { output -> FraudOutput? in
                output.result.map {
                    .spend(MinuteSpend(customer: $0.key, start: $0.window.start.milliseconds, total: $0.value))
                }
            }
        // Count each kind as it comes; what an earlier run committed is skipped.
        let numbered = merge(alerts, spend)
            .statefulMap(initial: { FraudCheckpoint() }) { counts, output in
                switch output {
                case .alert: counts.alerts += 1
                case .spend: counts.windows += 1
                }
                return (output: output, counts: counts)
            }
            .filter { item in
                switch item.output {
                case .alert: item.counts.alerts > resumedFrom.alerts
                case .spend: item.counts.windows > resumedFrom.windows
                }
            }
        var committed = resumedFrom
        for try await batch in numbered.groupedWithin(count: 100, duration: .milliseconds(50)) {
            guard let last = batch.last else { continue }
            let checkpoint = committed.next(counted: last.counts)
            try await producer.transaction { transaction in
                for item in batch { try await transaction.send(item.output.record(topics)) }
                try await transaction.send(
                    ProducerRecord(topic: topics.checkpoints, key: transactionalId, value: try json(checkpoint)))
            }
            committed = checkpoint
            try await afterCommit(checkpoint)
        }
        return FraudRun(
            inputRecords: Int(ends.values.reduce(0, +)), resumedFrom: resumedFrom, committed: committed)
    }

    /// The last committed checkpoint of this transactional id (zero when there is none), read
    /// with `read_committed` through a table of the checkpoints topic.
    public func lastCheckpoint() async throws -> FraudCheckpoint {
        let checkpoints = try KafkaTable(
            topic: topics.checkpoints,
            settings: ConsumerSettings(keyDeserializer: .string, valueDeserializer: .json(FraudCheckpoint.self))
                .withBootstrapServers(bootstrapServers)
                .withProperty("isolation.level", "read_committed"))
        let running = Task { try await checkpoints.run() }
        do {
            try await checkpoints.ready()
        } catch {
            checkpoints.close()
            _ = await running.result
            throw error
        }
        let last = checkpoints.value(for: transactionalId) ?? FraudCheckpoint()
        checkpoints.close()
        try await running.value
        return last
    }
}

/// What one run of the detector did.
public struct FraudRun: Sendable {
    /// The input records it read (logins and payments).
    public var inputRecords: Int
    /// The checkpoint it started from (what earlier runs had committed).
    public var resumedFrom: FraudCheckpoint
    /// The last checkpoint it committed.
    public var committed: FraudCheckpoint
}

/// An output of the detector.
enum FraudOutput: Sendable {
    case alert(FraudAlert)
    case spend(MinuteSpend)

    func record(_ topics: FraudTopics) throws -> ProducerRecord<String, String> {
        switch self {
        case .alert(let alert):
            ProducerRecord(
                topic: topics.alerts, key: alert.customer, value: try json(alert),
                timestamp: KafkaTimestamp(milliseconds: alert.paymentTime))
        case .spend(let spend):
            ProducerRecord(
                topic: topics.spend, key: spend.customer, value: try json(spend),
                timestamp: KafkaTimestamp(milliseconds: spend.start + 59_999))
        }
    }
}

/// `value` as JSON text with sorted keys.
func json(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

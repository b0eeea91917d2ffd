/// The names and attributes the connector's metrics use: OpenTelemetry's
/// messaging semantic conventions where they name the figure, `messaging.kafka.*`
/// for Kafka-specific ones. A Prometheus backend turns dots into underscores
/// (`messaging_client_consumed_messages`).
public enum MessagingMetric {
    // Consumer
    /// Counter: records handed to the application's streams, per topic (and partition).
    public static let consumedMessages = "messaging.client.consumed.messages"
    /// Counter: key and value bytes of the records consumed.
    public static let consumedBytes = "messaging.kafka.consumer.consumed.bytes"
    /// Gauge: records between the consumer's position and the partition's end offset.
    public static let consumerLag = "messaging.kafka.consumer.lag"
    /// Gauge: age of the last record consumed from a partition that still has lag, in seconds (0 when caught up).
    public static let consumerLagSeconds = "messaging.kafka.consumer.lag.seconds"
    /// Gauge: record bytes the consumer holds (buffered and emitted but not yet released).
    public static let bufferedBytes = "messaging.kafka.consumer.buffered.bytes"
    /// Gauge: records buffered ahead of the streams.
    public static let bufferedMessages = "messaging.kafka.consumer.buffered.messages"
    /// Gauge: partitions paused for back-pressure.
    public static let pausedPartitions = "messaging.kafka.consumer.paused.partitions"
    /// Counter: offset commits, by `messaging.kafka.commit.outcome` (`success`, `failure`).
    public static let commits = "messaging.kafka.consumer.commits"
    /// Counter: consumer errors reported by librdkafka, by `error.type`.
    public static let consumerErrors = "messaging.kafka.consumer.errors"
    /// Counter: rebalance callbacks, by `messaging.kafka.rebalance.kind` (`assigned`, `revoked`, `lost`).
    public static let rebalances = "messaging.kafka.consumer.rebalances"
    /// Counter: partitions assigned, revoked and lost, by `messaging.kafka.rebalance.kind`.
    public static let rebalancePartitions = "messaging.kafka.consumer.rebalance.partitions"
    /// Timer: how long the connector held a rebalance callback (revoke waits for commits included).
    public static let rebalanceDuration = "messaging.kafka.consumer.rebalance.duration"

    // Producer
    /// Counter: records acknowledged by the brokers, per topic.
    public static let sentMessages = "messaging.client.sent.messages"
    /// Counter: key and value bytes of the records acknowledged.
    public static let sentBytes = "messaging.kafka.producer.sent.bytes"
    /// Counter: records not delivered, by `error.type`.
    public static let deliveryFailures = "messaging.kafka.producer.delivery.failures"
    /// Gauge: records and requests librdkafka holds: queued, in flight, or awaiting their report.
    public static let producerQueueMessages = "messaging.kafka.producer.queue.messages"

    // Shared
    /// Timer: a client operation's duration, by `messaging.operation.name`:
    /// `send` (enqueue → acknowledgement, sampled once per delivery batch), `commit`
    /// (offset commit request → answer), `commit_transaction`, `recover_state` (an
    /// ``EventSourced`` flow rebuilding the state of newly assigned partitions from snapshots
    /// and the changelog, before their first input).
    public static let operationDuration = "messaging.client.operation.duration"

    // Committer
    /// Recorder: offsets per commit batch a ``Committer`` sends.
    public static let committerBatchSize = "messaging.kafka.committer.batch.size"
    /// Counter: offsets the committers committed (one per partition per batch).
    public static let committerOffsets = "messaging.kafka.committer.offsets"

    // Transactions
    /// Counter: transactions, by `messaging.kafka.transaction.outcome` (`committed`, `aborted`).
    public static let transactions = "messaging.kafka.transactions"
    /// Recorder: records per committed transaction.
    public static let transactionRecords = "messaging.kafka.transaction.records"

    // Event sourcing
    /// Counter: changelog events an ``EventSourced`` flow replayed to recover state.
    public static let recoveredEvents = "messaging.kafka.event_sourced.recovered.events"

    // Attributes
    /// `kafka`, on every metric.
    public static let system = "messaging.system"
    /// The topic.
    public static let destination = "messaging.destination.name"
    /// The partition, when ``KafkaMetricsSettings/perPartitionLabels`` is on.
    public static let partition = "messaging.destination.partition.id"
    /// The consumer group.
    public static let consumerGroup = "messaging.kafka.consumer.group"
    /// librdkafka's `client.id`.
    public static let clientId = "messaging.client.id"
    /// What a timer measured (``operationDuration``).
    public static let operationName = "messaging.operation.name"
    /// The error's name (librdkafka's code name, such as `_MSG_TIMED_OUT`).
    public static let errorType = "error.type"
}

import CRdKafka
import ReactiveKafka
import Synchronization

/// The raw-librdkafka side of the latency scenario: the loop of
/// ``RawBaselines/pipeline(_:group:outputTopic:)`` (consume → produce → commit a batch's offsets
/// once all its messages are acknowledged), with the same librdkafka properties and, like the
/// connector's side, every input partition assigned (committing in `group`, which it never joins),
/// running until stopped instead of for a count. It waits for work in `poll(2)` on a pipe that librdkafka
/// signals when the consumer queue or the producer's delivery reports become non-empty, so a
/// record waits for no timeout; then it takes whatever is queued without waiting.
final class RawRelay: @unchecked Sendable {
    private let env: BenchEnvironment
    private let group: String
    private let outputTopic: String
    private let wakeup: QueueWakeup
    private let stopped = Atomic<Bool>(false)

    init(_ env: BenchEnvironment, group: String, outputTopic: String) throws {
        self.env = env
        self.group = group
        self.outputTopic = outputTopic
        wakeup = try QueueWakeup()
    }

    /// Ends ``run()`` (after it flushed and committed).
    func stop() {
        stopped.store(true, ordering: .releasing)
        wakeup.signal()
    }

    /// Relays until ``stop()``; then flushes, commits synchronously and returns how many
    /// records it relayed, with a note of any consumer error events. Blocking: run it on a
    /// dedicated thread.
    func run() throws -> (relayed: Int, notes: [String]) {
        let batches = PipelineBatches(partitions: env.parameters.partitions, topic: env.inputTopic)
        let producer = try RawProducer(env, client: "latency raw relay producer", pipeline: batches)
        let consumer = try RawConsumer(
            env, group: group, topic: env.inputTopic, client: "latency raw relay consumer", subscribe: false)
        defer { consumer.close() }
        // From the group's committed offsets (none: the earliest), as the connector's assigned source.
        try consumer.assign(partitions: env.parameters.partitions, at: Int64(RD_KAFKA_OFFSET_INVALID))
        try producer.learnMetadata(of: outputTopic)
        let forwarder = RawForwarder(producer: producer, batches: batches, outputTopic: outputTopic)
        let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(
            capacity: RawBaselines.consumeBatchSize)
        defer { batch.deallocate() }
        let reports = rd_kafka_queue_get_main(producer.handle)!
        wakeup.enable(consumer.queue)
        wakeup.enable(reports)
        // Before the queues and handles go: librdkafka must not write to the pipe afterwards.
        defer {
            wakeup.disable(reports)
            wakeup.disable(consumer.queue)
            rd_kafka_queue_destroy(reports)
            withExtendedLifetime(producer) {} // the queue is the producer's: destroyed first
        }

        var relayed = 0
        var errors = ConsumeErrors()
        while !stopped.load(ordering: .acquiring) {
            wakeup.clear()
            rd_kafka_poll(producer.handle, 0)
            try batches.checkDeliveries()
            batches.commitCompleted(consumer.handle)
            let k = rd_kafka_consume_batch_queue(consumer.queue, 0, batch, RawBaselines.consumeBatchSize)
            if k > 0 {
                relayed += try forwarder.forward(batch, count: k, consumer: consumer.handle, errors: &errors)
                batches.commitCompleted(consumer.handle)
                continue // more may be queued
            }
            // Bounded, so that a missed signal costs at most this; any record or report wakes it at once.
            wakeup.wait(timeoutMilliseconds: 100)
        }
        rd_kafka_flush(producer.handle, 30_000)
        try batches.checkDeliveries()
        if let err = batches.commitCompleted(consumer.handle, async: false) {
            throw KafkaError(.commitFailed, "latency raw relay: final commit: \(RawClient.describe(err))")
        }
        guard batches.allCommitted else {
            throw KafkaError(.deliveryFailed, "latency raw relay: batches still unacknowledged after flushing")
        }
        try producer.deliveries.check(expected: relayed, topic: outputTopic)
        try consumer.commitFailures.check()
        return (relayed, errors.notes)
    }
}

extension RawConsumer {
    /// Assigns every partition of the consumer's topic, starting at `offset` (a logical offset
    /// such as `RD_KAFKA_OFFSET_BEGINNING`, or `RD_KAFKA_OFFSET_INVALID` for the committed one).
    func assign(partitions: Int, at offset: Int64) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in 0..<Int32(partitions) {
            rd_kafka_topic_partition_list_add(list, topic, partition).pointee.offset = offset
        }
        let err = rd_kafka_assign(handle, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(.kafka, "assigning \(topic): \(RawClient.describe(err))", code: Int32(err.rawValue))
        }
    }
}

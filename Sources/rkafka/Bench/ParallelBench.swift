import Foundation
import Logging
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization

/// `rkafka bench --scenario parallel`: processing beyond the partition count (issue 16).
///
/// A 12-partition topic of records with 10,000 keys; the work per record is a 1 ms
/// `Task.sleep` (an I/O call's latency). Measured in the same run, each in its own group:
/// the baseline, `committablePartitionedSource` with one record in flight per partition (the
/// partition-bound ceiling, ~12 × 1,000 records/s), and `Consumer.parallelSource` ordered by
/// key with `maxConcurrency` 1,000. Both commit what they processed. The baseline reads a
/// slice of the topic (it is slow by design); throughput and CPU per record compare.
enum ParallelBench {
    static let name = "parallel"
    static let partitions = 12
    static let keys = 10_000
    static let maxConcurrency = 1_000
    static let work: Duration = .milliseconds(1)

    static func run(cluster: ClusterOptions, messages: Int, json: Bool) async throws {
        let records = min(messages, 200_000)
        let baselineRecords = min(records, 24_000)
        let connection = try cluster.connect()
        defer { connection.close() }
        let topic = "bench-parallel-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        if try !connection.createTopic(topic, partitions: partitions) {
            printError(
                "rkafka bench: the cluster cannot create topics; \(topic) is auto-created with its default partition count, not \(partitions)"
            )
        }
        if !json { printError("… \(name): seeding \(records) records of \(keys) keys") }
        try await TestData.produce(
            bootstrapServers: connection.bootstrapServers, topic: topic,
            records: (0..<records).map { (key: "key-\($0 % keys)", value: "\($0)") })
        let settings = ConsumerSettings<KafkaBytes, KafkaBytes>(keyDeserializer: .bytes, valueDeserializer: .bytes)
            .withBootstrapServers(connection.bootstrapServers)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
        if !json { printError("… \(name): baseline, \(baselineRecords) records") }
        let baseline = try await measureBaseline(
            settings.withGroupId("\(topic)-baseline"), topic: topic, records: baselineRecords)
        if !json { printError("… \(name): parallelSource, \(records) records") }
        let parallel = try await measureParallel(
            settings.withGroupId("\(topic)-parallel"), topic: topic, records: records)
        let speedUp = baseline.messagesPerSecond > 0 ? parallel.messagesPerSecond / baseline.messagesPerSecond : 0
        if json {
            print(
                String(
                    format:
                        #"{"scenario":"%@","messages":%d,"msgs_per_sec":%.0f,"cpu_us_per_msg":%.2f,"baseline_messages":%d,"baseline_msgs_per_sec":%.0f,"baseline_cpu_us_per_msg":%.2f,"speedup":%.1f}"#,
                    name, parallel.messages, parallel.messagesPerSecond, parallel.cpuMicrosecondsPerMessage,
                    baseline.messages, baseline.messagesPerSecond, baseline.cpuMicrosecondsPerMessage, speedUp))
        } else {
            print(
                String(
                    format:
                        "%@: key-ordered parallelSource (maxConcurrency %d): %.0f rec/s, cpu/rec %.2f µs, %d records | "
                        + "baseline committablePartitionedSource (1 in flight per partition): %.0f rec/s, cpu/rec %.2f µs, %d records | %.1f× the baseline",
                    name, maxConcurrency, parallel.messagesPerSecond, parallel.cpuMicrosecondsPerMessage,
                    parallel.messages,
                    baseline.messagesPerSecond, baseline.cpuMicrosecondsPerMessage, baseline.messages, speedUp))
        }
        fflush(nil) // all output streams: stdout is a C global Swift 6 will not touch
    }

    /// One record in flight per partition: each partition's sub-stream sleeps per record, then commits.
    static func measureBaseline(_ settings: ConsumerSettings<KafkaBytes, KafkaBytes>, topic: String, records: Int)
        async throws -> BenchMeasurement
    {
        let progress = Progress(records: records)
        let source = Consumer.committablePartitionedSource(settings, subscription: .topics(topic))
        let control = source.materialized
        let stream = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for try await assigned in source {
                    let partition = assigned.source
                    group.addTask {
                        try await partition.map { message in
                            progress.begin()
                            try await Task.sleep(for: work)
                            progress.processed()
                            return message.committableOffset
                        }.run(into: Committer.sink(CommitterSettings()))
                    }
                }
                try await group.waitForAll()
            }
        }
        let measurement = await progress.finished()
        _ = try? await control.drainAndShutdown(stream)
        return measurement
    }

    /// The key-ordered parallel source at `maxConcurrency` 1,000.
    static func measureParallel(_ settings: ConsumerSettings<KafkaBytes, KafkaBytes>, topic: String, records: Int)
        async throws -> BenchMeasurement
    {
        let progress = Progress(records: records)
        let source = Consumer.parallelSource(
            settings, subscription: .topics(topic),
            parallel: ParallelSettings(
                ordering: .key, maxConcurrency: maxConcurrency, maxBufferedPerPartition: 2 * maxConcurrency)
        ) { _ in
            try await Task.sleep(for: work)
        }
        let control = source.materialized
        let stream = Task {
            for try await _ in source {
                progress.begin()
                progress.processed()
            }
        }
        let measurement = await progress.finished()
        _ = try? await control.drainAndShutdown(stream)
        return measurement
    }

    /// Counts processed records; the clock starts at the first and stops at the `records`th.
    final class Progress: Sendable {
        private let meter = Mutex(PhaseMeter())
        private let begun = Atomic<Bool>(false)
        private let count = Atomic<Int>(0)
        private let records: Int
        private let done = AsyncStream<Void>.makeStream()

        init(records: Int) { self.records = records }

        func begin() {
            if !begun.load(ordering: .relaxed),
                begun.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
            {
                meter.withLock { $0.begin() }
            }
        }

        func processed() {
            if count.add(1, ordering: .relaxed).newValue == records { done.continuation.finish() }
        }

        /// Waits for the `records`th record and measures.
        func finished() async -> BenchMeasurement {
            for await _ in done.stream {}
            return meter.withLock { $0.finish(messages: records) }
        }
    }
}

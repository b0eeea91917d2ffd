import Foundation
import Logging
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization

/// The demo's phases against one cluster: produce, run the pipeline, verify.
struct DemoEnvironment: Sendable {
    let bootstrapServers: String
    let topics: (input: String, output: String)
    let group: String
    let events: Int
    let logger: Logger

    /// What one run of the pipeline did.
    struct RunResult: Sendable {
        /// Records taken from the source.
        var consumed: Int
        /// Records acknowledged by the output topic (their offsets then go to the committer).
        var produced: Int
        var elapsed: Duration
    }

    /// What the verification read.
    struct Check: Sendable {
        var records: Int
        var tally: DemoTally
        var elapsed: Duration
    }

    func producerSettings<Value>(_ serializer: Serializer<Value>) -> ProducerSettings<String, Value> {
        ProducerSettings(keySerializer: .string, valueSerializer: serializer)
            .withBootstrapServers(bootstrapServers)
            .withProperty("linger.ms", "5")
            .withProperty("log_level", "3")
    }

    /// Writes the sample orders to the input topic, with a progress bar on stderr.
    func produceInput() async throws {
        let started = ContinuousClock.now
        let acknowledged = DemoCounter()
        let bar = DemoProgressBar(total: events)
        let topic = topics.input
        let records = Source((0..<events).async).map { index in
            let order = DemoOrder.sample(index)
            return ProducerMessage<String, DemoOrder, Void>.single(
                ProducerRecord(topic: topic, key: order.customer, value: order), passThrough: ())
        }
        let reporter = Task {
            var decile = -1
            // A periodic display, not a wait for data: the producer below drives progress.
            while !Task.isCancelled {
                bar.report(acknowledged.value, lastDecile: &decile)
                try? await Task.sleep(for: .milliseconds(100))
            }
            bar.report(acknowledged.value, lastDecile: &decile)
            bar.finish()
        }
        do {
            try await records
                .via(Producer.flexiFlow(producerSettings(.json(DemoOrder.self))))
                .run(into: Sinks.forEach { _ in acknowledged.add() })
        } catch {
            reporter.cancel()
            await reporter.value
            throw error
        }
        reporter.cancel()
        await reporter.value
        let elapsed = ContinuousClock.now - started
        say("produced \(events) orders to \(topics.input) in \(elapsed.seconds) s (\(rate(events, elapsed)) msg/s)")
    }

    /// Runs the pipeline in the demo's group until `drainAt` records are
    /// processed (or 60 s pass), then drains it with `drainAndShutdown`.
    func runPipeline(run: Int, drainAt: Int) async throws -> RunResult {
        let started = ContinuousClock.now
        let consumed = DemoCounter()
        let produced = DemoCounter()
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .json(DemoOrder.self))
            .withBootstrapServers(bootstrapServers)
            .withGroupId(group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperty("log_level", "3")
            .withProperties(EmbeddedKafka.fastGroupProperties)
            .withStatisticsInterval(.milliseconds(500))
        let output = topics.output
        let control = Consumer.committableSource(settings, subscription: .topics(topics.input), logger: logger)
            .map { message in
                consumed.add()
                let enriched = DemoEnrichedOrder(message.record.value, run: run)
                return ProducerMessage.single(
                    ProducerRecord(topic: output, key: message.record.key, value: enriched),
                    passThrough: message.committableOffset)
            }
            .via(Producer.flexiFlow(producerSettings(.json(DemoEnrichedOrder.self))))
            .map { result in
                produced.add()
                return result.passThrough
            }
            .to(Committer.sink(CommitterSettings().withMaxBatch(5000).withMaxInterval(.milliseconds(200))))
            .start()

        let reporter = Task {
            var last = (count: 0, at: ContinuousClock.now)
            var lag = ProgressLag()
            // A periodic display of throughput and lag while the stream runs.
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(500))
                let now = ContinuousClock.now
                let count = produced.value
                // Lag comes from librdkafka's statistics (every 500 ms), so it trails the count a little.
                let shown = lag.update(control.metrics, at: now)?.text ?? "lag - (joining the group)"
                say("run \(run): processed \(count)  \(rate(count - last.count, now - last.at)) msg/s  \(shown)")
                last = (count, now)
            }
        }
        let reached = await produced.wait(for: drainAt, timeout: .seconds(60))
        if !reached {
            printError(
                "rkafka demo: run \(run) processed only \(produced.value) of \(drainAt) records in 60 s; draining anyway"
            )
        }
        // Graceful: stop consuming, finish and commit what is in flight, leave the group.
        let drainStarted = ContinuousClock.now
        try await control.drainAndShutdown()
        reporter.cancel()
        await reporter.value
        say("run \(run): drainAndShutdown took \((ContinuousClock.now - drainStarted).seconds) s")
        return RunResult(consumed: consumed.value, produced: produced.value, elapsed: ContinuousClock.now - started)
    }

    /// The sum of the group's committed offsets over the input partitions.
    func committedInputOffsets() async throws -> Int64 {
        let partitions = Int32(max(12, (events + 24_999) / 25_000))
        let offsets = try await TestData.committedOffsets(
            bootstrapServers: bootstrapServers, group: group, topic: topics.input, partitions: partitions)
        return offsets.values.reduce(0, +)
    }

    /// Reads the output topic and tallies its order ids against the input.
    func verifyOutput() async throws -> Check {
        let started = ContinuousClock.now
        let ids = Mutex<[Int]>([])
        let failures = Atomic<Int>(0)
        let count = try await DemoOutputReader.readAll(topic: topics.output, bootstrapServers: bootstrapServers) {
            values in
            let decoder = JSONDecoder()
            var batch: [Int] = []
            batch.reserveCapacity(values.count)
            for value in values {
                if let order = try? decoder.decode(DemoEnrichedOrder.self, from: Data(value)) {
                    batch.append(order.id)
                } else {
                    failures.add(1, ordering: .relaxed)
                }
            }
            ids.withLock { $0.append(contentsOf: batch) }
        }
        var tally = DemoTally(events: events, outputIds: ids.withLock { $0 })
        tally.unexpected += failures.load(ordering: .relaxed)
        return Check(records: count, tally: tally, elapsed: ContinuousClock.now - started)
    }
}

/// Messages per second, rounded.
func rate(_ count: Int, _ elapsed: Duration) -> Int {
    let (s, atto) = elapsed.components
    let seconds = Double(s) + Double(atto) / 1e18
    return seconds > 0 ? Int(Double(count) / seconds) : 0
}

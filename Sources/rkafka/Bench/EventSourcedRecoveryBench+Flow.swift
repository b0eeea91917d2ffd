import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization

extension EventSourcedRecoveryBench {
    /// A counter per key: each command (a number) becomes one event adding it.
    static let behavior = EventSourcedBehavior<Int, Int, Int, Never>(
        initialState: 0, decide: { (_: Int, command: Int) throws(Never) -> [Int] in [command] }, evolve: { $0 + $1 })

    static let number = Serializer<Int> { .utf8(String($0)) }
    static let decimalNumber = Deserializer<Int> { bytes in
        guard let text = bytes?.string, let value = Int(text) else {
            throw DeserializationFailure("not a decimal number")
        }
        return value
    }

    /// The connector side: the flow over an empty changelog (what is not recovery), then over the seeded one.
    struct Connector: ConnectorBenchmark {
        func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
            let partitions = env.parameters.partitions
            let emptyChangelog = "\(env.inputTopic)-empty"
            let commands = "\(env.inputTopic)-commands"
            let emptyCommands = "\(env.inputTopic)-empty-commands"
            for topic in [emptyChangelog, commands, emptyCommands] {
                _ = try env.connection.createTopic(topic, partitions: partitions)
            }
            // One command per partition, to a key whose events are in that partition.
            let owners = Array(0..<min(partitions, EventSourcedRecoveryBench.keys))
            let producer = try KafkaProducer(
                ProducerSettings(
                    keySerializer: .string, valueSerializer: .string, properties: env.producerSettingsProperties))
            for topic in [commands, emptyCommands] {
                for key in owners {
                    _ = try await producer.send(
                        ProducerRecord(
                            topic: topic, partition: EventSourcedRecoveryBench.partition(ofKey: key, env),
                            key: EventSourcedRecoveryBench.keyText(key), value: "1"))
                }
            }
            await producer.close()

            let total = env.parameters.messages
            let empty = try await recover(
                env, changelog: emptyChangelog, commands: emptyCommands, run: "empty", keys: owners, events: 0)
            try check(empty.states, owners, recovered: { _ in 0 })
            var recovered = try await recover(
                env, changelog: env.inputTopic, commands: commands, run: "log", keys: owners, events: total)
            try check(recovered.states, owners) { EventSourcedRecoveryBench.events(ofKey: $0, total: total) }
            let (seconds, emptySeconds) = (recovered.measurement.seconds, empty.measurement.seconds)
            recovered.measurement.notes = [
                String(
                    format:
                        "recovery %.2f s (%d partitions, %@); flow start to %d outcomes %.2f s (group join and transactions included), over an empty changelog %.2f s",
                    recovered.recovery, partitions,
                    recovered.recoveries == 1 ? "read at once" : "in \(recovered.recoveries) recoveries",
                    owners.count, seconds, emptySeconds)
            ]
            // The scenario measures recovery: the member's join, the producer's start and the
            // commands' transactions are what the empty run shows, not reading the changelog.
            recovered.measurement.seconds = recovered.recovery
            return recovered.measurement
        }

        /// Every owner key's outcome is its recovered state plus the command's 1.
        private func check(_ states: [String: Int], _ keys: [Int], recovered: (Int) -> Int) throws {
            for key in keys {
                let text = EventSourcedRecoveryBench.keyText(key)
                guard states[text] == recovered(key) + 1 else {
                    throw BenchError(
                        "event-sourced-recovery: key \(text) came out at \(states[text].map(String.init) ?? "nothing"), expected \(recovered(key) + 1)"
                    )
                }
            }
        }

        /// Runs the flow from `commands` with `changelog` (of `events` events) until every key of
        /// `keys` has its outcome; returns the outcomes' states, measured from the flow's start
        /// to the last outcome.
        private func recover(
            _ env: BenchEnvironment, changelog: String, commands: String, run: String, keys: [Int], events: Int
        ) async throws -> (
            states: [String: Int], measurement: BenchMeasurement, recovery: Double, recoveries: Int
        ) {
            let timings = RecoveryTimings()
            var metrics = KafkaMetricsSettings()
            metrics.factory = timings
            let consumer = ConsumerSettings(
                keyDeserializer: .string, valueDeserializer: EventSourcedRecoveryBench.decimalNumber,
                properties: env.consumerSettingsProperties(group: "\(env.connectorGroup)-\(run)")
            ).withProperties(EmbeddedKafka.fastGroupProperties).withMetrics(metrics)
            let producer = ProducerSettings(
                keySerializer: .string, valueSerializer: .string, properties: env.producerSettingsProperties)
            let settings = EventSourcedSettings<String, Int, Int>(
                changelogTopic: changelog, keySerializer: .string, keyDeserializer: .string,
                eventSerializer: EventSourcedRecoveryBench.number,
                eventDeserializer: EventSourcedRecoveryBench.decimalNumber,
                stateSerializer: EventSourcedRecoveryBench.number,
                stateDeserializer: EventSourcedRecoveryBench.decimalNumber)
            let outcomes = Outcomes(expected: keys.count)
            var meter = PhaseMeter()
            meter.begin()
            let source = Transactional.source(consumer, subscription: .topics(commands))
            let flowing = source.via(
                try EventSourced.flow(
                    EventSourcedRecoveryBench.behavior, settings: settings, consumerSettings: consumer,
                    producerSettings: producer, transactionalId: "\(env.connectorGroup)-\(run)"))
            let stream = Task {
                defer { outcomes.end() }
                for try await outcome in flowing { outcomes.add(outcome.key, outcome.state) }
            }
            let states: [String: Int]
            do {
                states = try await outcomes.wait(timeout: env.parameters.stallTimeout)
            } catch {
                _ = try? await source.materialized.drainAndShutdown(stream)
                throw error
            }
            let measurement = meter.finish(messages: events)
            _ = try await source.materialized.drainAndShutdown(stream)
            guard states.count == keys.count else {
                throw BenchError(
                    "event-sourced-recovery (\(run) changelog): \(states.count) of \(keys.count) outcomes within \(env.parameters.stallTimeout)"
                )
            }
            let recoveries = timings.durations
            let recovery = recoveries.reduce(Duration.zero, +)
            return (states, measurement, recovery.inSeconds, recoveries.count)
        }
    }

    /// The outcomes' states by key, shared by the stream's task and the bench's.
    final class Outcomes: Sendable {
        private let states = Mutex<[String: Int]>([:])
        private let done = AsyncStream<Void>.makeStream()
        private let expected: Int

        init(expected: Int) { self.expected = expected }

        func add(_ key: String, _ state: Int) {
            if states.withLock({
                $0[key] = state
                return $0.count
            }) == expected {
                end()
            }
        }

        /// The stream ended, or every expected key has its outcome.
        func end() { done.continuation.finish() }

        /// Waits until ``end()`` or `timeout`, whichever comes first; returns the states so far.
        func wait(timeout: Duration) async throws -> [String: Int] {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { for await _ in self.done.stream {} }
                group.addTask { try await Task.sleep(for: timeout) }
                try await group.next()
                group.cancelAll()
            }
            return states.withLock { $0 }
        }
    }
}

import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// Starting, awaiting and producing for the table tests.
enum TableTestSupport {
    static func settings(_ kafka: TestCluster) -> ConsumerSettings<String, String> {
        ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
            .withProperties(kafka.groupProperties)
            .withCloseTimeout(.seconds(5))
    }

    /// Runs `table` in a task of its own and waits (at most 30 s) until it is ready.
    static func start<K, V>(_ table: KafkaTable<K, V>) async throws -> Task<Void, any Error> {
        let task = Task { try await table.run() }
        do {
            try await ready(table)
        } catch {
            table.close()
            _ = try? await task.value
            throw error
        }
        return task
    }

    static func ready<K, V>(_ table: KafkaTable<K, V>, within limit: Duration = .seconds(30)) async throws {
        let outcome = await BoundedWait.within(limit) { () -> Result<Void, any Error> in
            do {
                try await table.ready()
                return .success(())
            } catch { return .failure(error) }
        }
        try #require(outcome, "the table was not ready within \(limit)").get()
    }

    /// Closes `table` and waits for its run to end (at most 30 s).
    static func stop<K, V>(_ table: KafkaTable<K, V>, _ task: Task<Void, any Error>) async throws {
        table.close()
        let outcome = await BoundedWait.within(.seconds(30)) { () -> Result<Void, any Error> in
            do {
                try await task.value
                return .success(())
            } catch { return .failure(error) }
        }
        try #require(outcome, "the table's run did not end within 30 s after close").get()
    }

    /// The error the run of `table` ends with (at most 30 s).
    static func failure<K, V>(of table: KafkaTable<K, V>) async throws -> (any Error)? {
        let outcome = await BoundedWait.within(.seconds(30)) { () -> (any Error)? in
            do {
                try await table.run()
                return nil
            } catch { return error }
        }
        return try #require(outcome, "the table's run did not end within 30 s")
    }

    /// Sends `records` (a nil value is a tombstone) in order and waits for each.
    static func send(
        _ kafka: TestCluster, topic: String, _ records: [(key: String, value: String?)], partition: Int32? = nil
    ) async throws {
        let producer = try KafkaProducer(
            ProducerSettings(keySerializer: .string, valueSerializer: .string).withBootstrapServers(
                kafka.bootstrapServers))
        for record in records {
            _ = try await producer.send(
                ProducerRecord(topic: topic, partition: partition, key: record.key, value: record.value))
        }
        await producer.close()
    }

    /// Reads `changes` until `done` holds for what was read (at most 30 s); returns what was read.
    static func collect<K, V>(
        _ changes: KafkaTableChanges<K, V>, until done: @escaping @Sendable ([TableChange<K, V>]) -> Bool
    ) async throws -> [TableChange<K, V>] {
        let outcome = await BoundedWait.within(.seconds(30)) { () -> [TableChange<K, V>] in
            var seen: [TableChange<K, V>] = []
            do {
                for try await change in changes {
                    seen.append(change)
                    if done(seen) { break }
                }
            } catch {}
            return seen
        }
        let seen = try #require(outcome, "the expected changes did not arrive within 30 s")
        try #require(
            done(seen),
            "the changes ended before the expected ones: \(seen.map { "\($0.key)=\($0.newValue.map { "\($0)" } ?? "nil")" })"
        )
        return seen
    }

    /// Waits (at most `limit`, checking every 50 ms) until `condition` holds.
    static func eventually(within limit: Duration = .seconds(30), _ condition: @escaping @Sendable () -> Bool)
        async throws
    {
        let outcome = await BoundedWait.within(limit) { () -> Bool in
            while !condition() {
                do { try await Task.sleep(for: .milliseconds(50)) } catch { return false }
            }
            return true
        }
        try #require(outcome == true, "the condition did not hold within \(limit)")
    }

    /// A file path in a fresh temporary directory.
    static func temporaryPath(_ name: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rk-table-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent(name).path
    }
}

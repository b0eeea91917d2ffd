import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// ``ConsumerControlFactory/source(_:completion:)``: its control stops, shuts down and drains
/// the source as a Kafka source's does, and its health and streams follow.
@Suite struct ConsumerControlFactoryTests {
    /// Returns once the stream behind `control` pulled (its health turned to consuming).
    static func waitUntilConsuming(_ control: ConsumerControl) async throws {
        try await withTimeout {
            for await state in control.healthChanges() where state == .consuming { return }
            throw TestTimeout()
        }
    }

    @Test func itCompletesAfterItsLastElementAndClosesItsConsumer() async throws {
        let source = ConsumerControlFactory.source(["a", "b", "c"])
        #expect(source.materialized.health == .starting)
        let control = source.to(Sinks.collect(String.self)).start()
        #expect(try await valueWithin(control.streamCompletion) == ["a", "b", "c"])
        #expect(control.isShutdown)
        #expect(control.health == .stopped)
    }

    @Test func drainingWaitsForTheStreamToCommitWhatItEmitted() async throws {
        let committer = RecordingCommitter()
        let messages = try (0..<10).map { i in
            try ConsumerResultFactory.committableMessage(
                ConsumerResultFactory.record(
                    topic: "orders", partition: Int32(i % 2), offset: Int64(i / 2), key: "k", value: "v\(i)"),
                committer: committer)
        }
        let (processed, processing) = AsyncStream<Void>.makeStream()
        // Alpakka's defaults: a batch waits for 1000 offsets or 10 s, so only the drain commits here.
        let control = ConsumerControlFactory.source(messages, completion: .whenStopped)
            .map { message in
                processing.yield()
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings()))
            .start()
        // The source waits for a stop after its last element, like a Kafka source.
        try await withTimeout {
            var count = 0
            for await _ in processed {
                count += 1
                if count == messages.count { return }
            }
        }
        #expect(!control.isShutdown)
        #expect(control.health == .consuming)
        #expect(committer.commits.isEmpty)
        try await withTimeout { try await control.drainAndShutdown() }
        #expect(control.isShutdown)
        #expect(control.health == .stopped)
        #expect(committer.commits.map(\.offsets) == [[TopicPartition("orders", 0): 5, TopicPartition("orders", 1): 5]])
    }

    @Test func stopCompletesTheSourceAndKeepsTheConsumerUntilShutdown() async throws {
        let source = ConsumerControlFactory.source([1, 2, 3], completion: .whenStopped)
        let control = source.materialized
        var iterator = source.makeAsyncIterator()
        #expect(try await iterator.next() == 1)
        #expect(control.health == .consuming)
        control.stop()
        #expect(try await iterator.next() == nil)
        #expect(try await iterator.next() == nil)
        #expect(!control.isShutdown)
        await control.shutdown()
        #expect(control.isShutdown)
        #expect(control.health == .stopped)
    }

    @Test func shutdownCompletesAWaitingStream() async throws {
        let source = ConsumerControlFactory.source([String](), completion: .whenStopped)
        let running = source.to(Sinks.collect(String.self)).start()
        try await Self.waitUntilConsuming(source.materialized)
        await source.materialized.shutdown()
        #expect(try await valueWithin(running.streamCompletion) == [])
        #expect(source.materialized.isShutdown)
        // The health stream finishes once the consumer closed.
        var last: ConsumerHealth?
        for await state in source.materialized.healthChanges() { last = state }
        #expect(last == .stopped)
    }

    @Test func stoppedBeforeItsFirstPullItCompletesWithoutEmitting() async throws {
        let source = ConsumerControlFactory.source(["never"])
        source.materialized.stop()
        #expect(source.materialized.isShutdown)
        let emitted = try await source.run(into: Sinks.collect(String.self))
        #expect(emitted.isEmpty)
    }

    @Test func aStreamThatEndsEarlyClosesTheConsumer() async throws {
        let source = ConsumerControlFactory.source(Array(0..<100), completion: .whenStopped)
        var taken: [Int] = []
        for try await element in source {
            taken.append(element)
            if taken.count == 3 { break }
        }
        #expect(taken == [0, 1, 2])
        #expect(source.materialized.isShutdown)
        #expect(source.materialized.health == .stopped)
    }

    @Test func aCancelledWaitingStreamThrowsCancellationAndClosesTheConsumer() async throws {
        let source = ConsumerControlFactory.source([Int](), completion: .whenStopped)
        let running = source.to(Sinks.ignore(Int.self)).start()
        try await Self.waitUntilConsuming(source.materialized)
        running.streamCompletion.cancel()
        await #expect(throws: CancellationError.self) { try await valueWithin(running.streamCompletion) }
        #expect(source.materialized.isShutdown)
    }

    @Test func itRunsOnceAndHasNoConsumerToLend() async throws {
        let source = ConsumerControlFactory.source([1], completion: .whenStopped)
        var first = source.makeAsyncIterator()
        #expect(try await first.next() == 1)
        var second = source.makeAsyncIterator()
        let error = await #expect(throws: KafkaError.self) { try await second.next() }
        #expect(error?.kind == .illegalState)
        let noConsumer = await #expect(throws: KafkaError.self) {
            try await source.materialized.withConsumer { _ in 1 }
        }
        #expect(noConsumer?.kind == .illegalState)
        await source.materialized.shutdown()
        // The rebalance stream of a closed stand-in finishes at once, empty.
        var events = 0
        for await _ in source.materialized.rebalanceEvents() { events += 1 }
        #expect(events == 0)
        #expect(source.materialized.metrics.bufferedBytes == 0)
    }
}

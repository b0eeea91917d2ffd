import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

// The README's "Testing your code" example, verbatim, so it cannot rot: the application's
// pipeline, written against any committable source, and its unit tests on the testkit's
// factories (no cluster).

// README testing pipeline: begin
/// Counts the words of every order, then commits its offset.
func countWords<Messages: AsyncSequence & Sendable>(
    _ source: Source<Messages, ConsumerControl>, into counter: WordCounter,
    committing: CommitterSettings = CommitterSettings()
) -> RunnableGraph<ConsumerControl, Void> where Messages.Element == CommittableMessage<String, String> {
    source
        .map { message in
            await counter.add(message.record.value.split(separator: " ").count)
            return message.committableOffset
        }
        .to(Committer.sink(committing))
}

actor WordCounter {
    private(set) var words = 0
    func add(_ count: Int) { words += count }
}

// In production:
// let control = countWords(Consumer.committableSource(settings, subscription: .topics("orders")), into: counter).start()
// README testing pipeline: end

@Suite struct TestingReadmeExampleTests {
    @Test func theReadmeShowsThisCodeVerbatim() throws {
        try ReadmeBlocks.expectInReadme(markers: ["README testing pipeline", "README testing tests"])
    }

    // README testing tests: begin
    /// Six orders over two partitions, each committing to `committer`.
    static func orders(_ committer: RecordingCommitter) throws -> [CommittableMessage<String, String>] {
        try (0..<6).map { i in
            try ConsumerResultFactory.committableMessage(
                ConsumerResultFactory.record(
                    topic: "orders", partition: Int32(i % 2), offset: Int64(i / 2), key: "customer-\(i)",
                    value: "two words"),
                committer: committer)
        }
    }

    @Test func countsEveryOrderAndCommitsItsOffset() async throws {
        let committer = RecordingCommitter()
        let counter = WordCounter()
        let control = countWords(ConsumerControlFactory.source(try Self.orders(committer)), into: counter).start()
        try await control.streamCompletion.value // the source completes after its last element

        #expect(await counter.words == 12)
        #expect(committer.committedOffsets == [TopicPartition("orders", 0): 3, TopicPartition("orders", 1): 3])
    }

    @Test func drainingStopsAfterWhatWasProcessedIsCommitted() async throws {
        let committer = RecordingCommitter()
        // Like a Kafka source, this one waits for more after its last element.
        let source = ConsumerControlFactory.source(try Self.orders(committer), completion: .whenStopped)
        let control = countWords(
            source, into: WordCounter(), committing: CommitterSettings().withMaxInterval(.milliseconds(10))
        ).start()
        try await committer.waitUntilCommitted([TopicPartition("orders", 0): 3, TopicPartition("orders", 1): 3])
        #expect(control.health == .consuming)

        try await control.drainAndShutdown() // as on SIGTERM
        #expect(control.isShutdown)
    }

    @Test func aFailedCommitFailsTheStream() async throws {
        let committer = RecordingCommitter()
        committer.failCommits(with: KafkaError(.commitFailed, "the coordinator moved"))
        let control = countWords(ConsumerControlFactory.source(try Self.orders(committer)), into: WordCounter()).start()

        await #expect(throws: KafkaError.self) { try await control.streamCompletion.value }
        #expect(committer.committedOffsets.isEmpty)
    }
    // README testing tests: end
}

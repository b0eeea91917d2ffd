import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// The two run verbs, one meaning each (README "Running a stream"): `run()` runs a graph to its
/// end in the calling task and returns the sink's result; `start()` starts it in a new task and
/// returns a handle (a `DrainingControl` for Kafka graphs). A Kafka source runs once.
@Suite struct RunVerbTests {
    @Test func runRunsAKafkaGraphToItsEndInTheCallingTask() async throws {
        let graph = ConsumerControlFactory.source(["a", "b", "c"]).map { $0.uppercased() }
            .to(Sinks.collect(String.self))
        let result: [String] = try await graph.run()
        #expect(result == ["A", "B", "C"])
        // The stream's end is the consumer's end, also when run in the calling task.
        #expect(graph.materialized.isShutdown)
    }

    @Test func startReturnsTheDrainingControlOfAKafkaGraph() async throws {
        let graph = ConsumerControlFactory.source([1, 2, 3]).to(Sinks.collect(Int.self))
        let control: DrainingControl<[Int]> = graph.start()
        #expect(try await control.streamCompletion.value == [1, 2, 3])
        #expect(try await control.drainAndShutdown() == [1, 2, 3])
        #expect(control.isShutdown)
    }

    @Test func runAndRunIntoAreTheSameStructuredCall() async throws {
        let viaGraph = try await Source.from(1...3).to(Sinks.collect(Int.self)).run()
        let viaSource = try await Source.from(1...3).run(into: Sinks.collect(Int.self))
        #expect(viaGraph == viaSource && viaSource == [1, 2, 3])
    }

    @Test func aKafkaGraphsSecondRunFailsWithIllegalState() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("run-once", partitions: 1)
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers).withGroupId("g-run-once")
            .withProperties(EmbeddedKafka.fastGroupProperties)
        let graph = Consumer.plainSource(settings, subscription: .topics("run-once")).to(Sinks.ignore())
        graph.materialized.stop()
        // Stopped before it started: the first run completes at once…
        try await graph.run()
        // …and the second run of the same graph is refused with a typed error saying why.
        await #expect {
            try await graph.run()
        } throws: { error in
            guard let error = error as? KafkaError else { return false }
            return error.kind == .illegalState && error.message.contains("a source can be run once")
        }
        // start() reports the same refusal through the stream's completion.
        let second = graph.start()
        await #expect {
            try await second.streamCompletion.value
        } throws: { error in
            (error as? KafkaError)?.kind == .illegalState
        }
    }

    @Test func aTestSourceRunsOnceLikeAKafkaSource() async throws {
        let graph = ConsumerControlFactory.source(["x"]).to(Sinks.collect(String.self))
        #expect(try await graph.run() == ["x"])
        await #expect {
            try await graph.run()
        } throws: { error in
            (error as? KafkaError)?.kind == .illegalState
        }
    }
}

import InMemoryTracing
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing
import Tracing

/// The README's tracing example, verbatim apart from the cluster address and the tracer (a
/// scoped test tracer where the README bootstraps one), so it cannot rot.
@Suite struct TracingReadmeExampleTests {
    @Test func theReadmeTracingExampleLinksConsumerSpansToTheProducingSpan() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 1)
        try kafka.createTopic("enriched", partitions: 1)
        let bootstrapServers = kafka.bootstrapServers
        let consumerSettings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withGroupId("enricher")
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(bootstrapServers)
        let producer = try KafkaProducer(producerSettings)
        let (archived, archiving) = AsyncStream<[String]>.makeStream()
        let store: @Sendable ([String]) async throws -> Void = { values in archiving.yield(values) }
        let tracer = W3CInMemoryTracer()

        let (enriched, firstBatch) = try await withTracer(tracer) {
            // README: begin
            // Producing inside a span writes its `traceparent` (and `tracestate`) into each record's headers.
            try await withSpan("checkout") { _ in
                _ = try await producer.send(ProducerRecord(topic: "orders", key: "customer-7", value: "order 42"))
            }

            // Each record processed in a consumer span, a child of the span that produced it. A record built
            // inside carries the consumer span on with `withTraceContext()`.
            let control =
                Consumer
                .committableSource(consumerSettings, subscription: .topics("orders"))
                .traced { message in
                    ProducerMessage.single(
                        ProducerRecord(
                            topic: "enriched", key: message.record.key, value: message.record.value.uppercased()
                        )
                        .withTraceContext(),
                        passThrough: message.committableOffset)
                }
                .via(Producer.flexiFlow(producerSettings))
                .map(\.passThrough)
                .to(Committer.sink(CommitterSettings()))
                .start()

            // A busy stream: one span per batch, linked to the span that produced each of its records.
            let archive =
                Consumer
                .committableSource(consumerSettings.withGroupId("archiver"), subscription: .topics("orders"))
                .groupedWithin(count: 500, duration: .milliseconds(50))
                .traced { batch in
                    try await store(batch.map(\.record.value))
                    try await CommittableOffsetBatch(batch.map(\.committableOffset)).commit()
                }
                .to(Sinks.ignore())
                .start()
            // README: end

            let enriched = try await TracedTopic.records(kafka, "enriched", count: 1)
            var batches = archived.initialTimeout(.seconds(30)).makeAsyncIterator()
            let firstBatch = try await batches.next()
            try await control.drainAndShutdown()
            try await archive.drainAndShutdown()
            await producer.close()
            return (enriched, firstBatch)
        }

        let checkout = try #require(tracer.finishedSpans.first { $0.operationName == "checkout" })
        let consumerSpans = tracer.finishedSpans.filter { $0.kind == .consumer }
        let perRecord = try #require(consumerSpans.first { $0.attributes.get("messaging.batch.message_count") == nil })
        let perBatch = try #require(
            consumerSpans.first { $0.attributes.get("messaging.batch.message_count") == .int64(1) })
        #expect(consumerSpans.count == 2, "one span for the record, one for its batch")

        #expect(
            perRecord.traceID == checkout.traceID && perRecord.parentSpanID == checkout.spanID, "a child of checkout")
        #expect(perRecord.operationName == "process orders")
        #expect(perRecord.attributes.get("messaging.kafka.consumer.group") == .string("enricher"))
        #expect(enriched.map(\.value) == ["ORDER 42"])
        #expect(
            enriched.first?.headerBytes("traceparent") == Array("00-\(checkout.traceID)-\(perRecord.spanID)-01".utf8),
            "the enriched record carries the consumer span on")

        #expect(firstBatch == ["order 42"])
        #expect(perBatch.parentSpanID == nil, "no span around the archive stream: a root span")
        #expect(
            perBatch.links.map { $0.context.inMemorySpanContext?.spanID } == [checkout.spanID], "linked to checkout")
        #expect(perBatch.attributes.get("messaging.kafka.consumer.group") == .string("archiver"))
    }
}

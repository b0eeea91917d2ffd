import InMemoryTracing
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing
import Tracing

/// Consuming extracts the producer's trace context from a record's headers, and `traced`
/// processes records in consumer spans tied to it: a child span per record, or a span per
/// batch linked to every producer. On the embedded cluster, with the W3C test tracer.
@Suite(.serialized) struct ConsumerTracingTests {
    typealias Message = ProducerMessage<String, String, Void>

    /// Produces `value` to `topic`, inside the current span if any.
    static func produce(
        _ settings: ProducerSettings<String, String>, _ topic: String, key: String = "k", _ value: String
    ) async throws {
        let message = Message.single(ProducerRecord(topic: topic, key: key, value: value), passThrough: ())
        for try await _ in Source.from([message]).via(Producer.flexiFlow(settings)) {}
    }

    @Test func tracedProcessesARecordInAChildSpanOfItsProducerAndPassesTheContextOn() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tc-in", partitions: 1)
        try kafka.createTopic("tc-out", partitions: 1)
        let settings = kafka.producerSettings()
        let tracer = W3CInMemoryTracer()
        let spanA = try await withTracer(tracer) {
            let spanA = try await withSpan("A") { span in
                try await Self.produce(settings, "tc-in", key: "k0", "v0")
                return try span.inMemory
            }
            // The pipeline: consume → process in a consumer span → produce what it built there.
            let source = Consumer.committableSource(
                ConsumerEndToEndTests.settings(kafka, group: "g-traced"), subscription: .topics("tc-in"))
            let pipeline = source.take(1)
                .traced(messageKey: { $0.record.key }) { message in
                    ProducerMessage.single(
                        ProducerRecord<String, String>(topic: "tc-out", value: "out-" + message.record.value)
                            .withTraceContext(),
                        passThrough: message.committableOffset)
                }
                .via(Producer.flexiFlow(settings))
            do {
                for try await _ in pipeline.transform({ $0.completionTimeout(.seconds(30)) }) {}
            } catch {
                await source.materialized.shutdown()
                throw error
            }
            await source.materialized.shutdown()
            return spanA
        }

        let consumerSpans = tracer.finishedSpans.filter { $0.kind == .consumer }
        try #require(consumerSpans.count == 1, "one span for the one record")
        let span = consumerSpans[0]
        #expect(span.traceID == spanA.traceID, "in A's trace")
        #expect(span.parentSpanID == spanA.spanID, "a child of A, the span that produced the record")
        #expect(span.operationName == "process tc-in")
        #expect(span.attributes.get("messaging.system") == .string("kafka"))
        #expect(span.attributes.get("messaging.operation") == .string("process"))
        #expect(span.attributes.get("messaging.destination.name") == .string("tc-in"))
        #expect(span.attributes.get("messaging.kafka.destination.partition") == .int64(0))
        #expect(span.attributes.get("messaging.kafka.message.offset") == .int64(0))
        #expect(span.attributes.get("messaging.kafka.consumer.group") == .string("g-traced"))
        #expect(span.attributes.get("messaging.kafka.message.key") == .string("k0"), "asked for with messageKey")

        let out = try #require(try await TracedTopic.records(kafka, "tc-out", count: 1).first)
        #expect(out.value == "out-v0")
        #expect(
            out.headerBytes("traceparent") == Array("00-\(spanA.traceID)-\(span.spanID)-01".utf8),
            "the record built in the consumer span carries that span on")
    }

    @Test func recordsWithoutTraceContextAreProcessedInChildSpansOfTheCurrentSpan() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tc-plain", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "tc-plain",
            records: [(key: "a", value: "1"), (key: "b", value: "2")])
        let tracer = W3CInMemoryTracer()
        let (spanC, values) = try await withTracer(tracer) {
            try await withSpan("C") { span in
                let source = Consumer.plainSource(
                    ConsumerEndToEndTests.settings(kafka, group: "g-plain"), subscription: .topics("tc-plain"))
                var values: [String] = []
                do {
                    let traced = source.take(2).traced(consumerGroup: "named") { record in record.value }
                    for try await value in traced.transform({ $0.completionTimeout(.seconds(30)) }) {
                        values.append(value)
                    }
                } catch {
                    await source.materialized.shutdown()
                    throw error
                }
                await source.materialized.shutdown()
                return (try span.inMemory, values)
            }
        }

        #expect(values == ["1", "2"], "what the closure returned, in order")
        let spans = tracer.finishedSpans.filter { $0.kind == .consumer }
        #expect(spans.count == 2)
        for span in spans {
            #expect(
                span.traceID == spanC.traceID && span.parentSpanID == spanC.spanID, "no producer context: a child of C")
            #expect(span.attributes.get("messaging.kafka.consumer.group") == .string("named"))
            #expect(span.attributes.get("messaging.kafka.message.key") == nil, "keys only when asked for")
        }
        #expect(spans.map { $0.attributes.get("messaging.kafka.message.offset") } == [.int64(0), .int64(1)])
    }

    @Test func tracedBatchesRunInOneSpanLinkedToEveryProducer() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tc-batch", partitions: 1)
        let settings = kafka.producerSettings()
        let tracer = W3CInMemoryTracer()
        let (producers, spanC, batches) = try await withTracer(tracer) {
            // Two records from two traces, one from none.
            let spanA = try await withSpan("A") { span in
                try await Self.produce(settings, "tc-batch", "a")
                return try span.inMemory
            }
            let spanB = try await withSpan("B") { span in
                try await Self.produce(settings, "tc-batch", "b")
                return try span.inMemory
            }
            try await Self.produce(settings, "tc-batch", "none")
            return try await withSpan("C") { span in
                let source = Consumer.committableSource(
                    ConsumerEndToEndTests.settings(kafka, group: "g-batch"), subscription: .topics("tc-batch"))
                var batches: [[String]] = []
                do {
                    let traced = source.take(3).groupedWithin(count: 3, duration: .seconds(10))
                        .traced { batch in batch.map(\.record.value) }
                    for try await batch in traced.transform({ $0.completionTimeout(.seconds(30)) }) {
                        batches.append(batch)
                    }
                } catch {
                    await source.materialized.shutdown()
                    throw error
                }
                await source.materialized.shutdown()
                return ([spanA, spanB], try span.inMemory, batches)
            }
        }

        #expect(batches == [["a", "b", "none"]])
        let spans = tracer.finishedSpans.filter { $0.kind == .consumer }
        try #require(spans.count == 1, "one span for the batch, none per record")
        let span = spans[0]
        #expect(
            span.traceID == spanC.traceID && span.parentSpanID == spanC.spanID, "a child of the consuming task's span")
        #expect(span.operationName == "process tc-batch")
        let linked = span.links.compactMap { $0.context.inMemorySpanContext }
        #expect(
            linked.map(\.traceID) == producers.map(\.traceID),
            "a link to A and to B, in record order; none for the untraced record")
        #expect(linked.map(\.spanID) == producers.map(\.spanID))
        #expect(span.attributes.get("messaging.system") == .string("kafka"))
        #expect(span.attributes.get("messaging.batch.message_count") == .int64(3))
        #expect(span.attributes.get("messaging.destination.name") == .string("tc-batch"))
        #expect(span.attributes.get("messaging.kafka.destination.partition") == .int64(0))
        #expect(span.attributes.get("messaging.kafka.consumer.group") == .string("g-batch"))
        #expect(span.attributes.get("messaging.kafka.message.offset") == nil, "no single offset for a batch")
    }

    @Test func extractServiceContextReadsTheLastTraceparentAndLeavesTheBaseAloneWithoutOne() throws {
        let tracer = W3CInMemoryTracer()
        let trace = String(repeating: "ab", count: 16)
        let record = ConsumerRecord(
            topic: "t", partition: 0, offset: 0, key: "k", value: "v",
            headers: [
                KafkaHeader(key: "traceparent", value: KafkaBytes("00-\(trace)-0000000000000001-01")),
                KafkaHeader(key: "traceparent", value: KafkaBytes("00-\(trace)-0000000000000002-01")),
                KafkaHeader(key: "tracestate", value: KafkaBytes("vendor=x")),
            ])
        var base = ServiceContext.topLevel
        base.traceState = "base"
        let (extracted, untouched) = withTracer(tracer) {
            (
                record.extractServiceContext(),
                ConsumerRecord(topic: "t", partition: 0, offset: 1, key: "k", value: "v").extractServiceContext(
                    into: base)
            )
        }
        #expect(
            extracted.inMemorySpanContext
                == InMemorySpanContext(traceID: trace, spanID: "0000000000000002", parentSpanID: nil))
        #expect(extracted.traceState == "vendor=x")
        #expect(untouched.inMemorySpanContext == nil)
        #expect(untouched.traceState == "base", "the base comes back unchanged")
        // Without a tracer in scope the no-op instrument extracts nothing.
        #expect(record.extractServiceContext().inMemorySpanContext == nil)
    }
}

import Configuration
import InMemoryTracing
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing
import Tracing

/// Producing writes the producing task's W3C trace context into each record's headers, on
/// the embedded cluster: the header's bytes are exactly what the tracer wrote; without a span,
/// or with propagation off, no header is added.
@Suite(.serialized) struct ProducerTracingTests {
    static func record(_ topic: String, _ value: String) -> ProducerRecord<String, String> {
        ProducerRecord(topic: topic, key: "k", value: value)
    }

    @Test func flexiFlowAndPlainSinkWriteTheTraceparentOfTheSpanRunningTheStream() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tr-flow", partitions: 1)
        let settings = kafka.producerSettings()
        let tracer = W3CInMemoryTracer()
        let spanA = try await withTracer(tracer) {
            try await withSpan("A") { span in
                let messages: [ProducerMessage<String, String, Int>] = [
                    .single(Self.record("tr-flow", "single"), passThrough: 0),
                    .multi([Self.record("tr-flow", "multi-0"), Self.record("tr-flow", "multi-1")], passThrough: 1),
                ]
                for try await _ in Source.from(messages).via(Producer.flexiFlow(settings)) {}
                try await Source.from([Self.record("tr-flow", "sink")]).run(into: Producer.plainSink(settings))
                return try span.inMemory
            }
        }

        let records = try await TracedTopic.records(kafka, "tr-flow", count: 4)
        #expect(records.map(\.value) == ["single", "multi-0", "multi-1", "sink"])
        for record in records {
            let header = try #require(record.headerBytes("traceparent"), "\(record.value) carries a traceparent")
            #expect(
                header == traceparent(of: spanA), "\(record.value): 00-<A's trace id>-<A's span id>-01, byte for byte")
            #expect(
                TraceParent(String(decoding: header, as: UTF8.self)) != nil,
                "version-traceid-spanid-flags in lower-case hex")
            #expect(record.headers.count == 1, "no tracestate: A's context has none")
        }
    }

    @Test func sendWritesTheCallersTraceparentAndTracestate() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tr-send", partitions: 1)
        let producer = try KafkaProducer(kafka.producerSettings())
        let tracer = W3CInMemoryTracer()
        let spanA = try await withTracer(tracer) {
            try await withSpan("A") { span in
                var context = try #require(ServiceContext.current)
                context.traceState = "vendor=a1b2"
                _ = try await ServiceContext.withValue(context) {
                    try await producer.send(
                        ProducerRecord(
                            topic: "tr-send", value: "sent", headers: [KafkaHeader(key: "own", value: "kept")]))
                }
                return try span.inMemory
            }
        }
        await producer.close()

        let record = try #require(try await TracedTopic.records(kafka, "tr-send", count: 1).first)
        #expect(
            record.headers.map(\.key) == ["own", "traceparent", "tracestate"],
            "the record's own header first, then the injected ones")
        #expect(record.headerBytes("traceparent") == traceparent(of: spanA))
        #expect(record.headerBytes("tracestate") == Array("vendor=a1b2".utf8))
    }

    @Test func aTransactionalSendAndATransactionalFlowWriteTheTraceparent() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tr-tx-in", partitions: 1)
        try kafka.createTopic("tr-tx-out", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "tr-tx-in", records: [(key: "k", value: "in")])
        let settings = kafka.producerSettings().withProperty("transaction.timeout.ms", "10000")
        let producer = try TransactionalProducer(settings, transactionalId: "tr-tx-send")
        let source = Transactional.source(
            ConsumerEndToEndTests.settings(kafka, group: "tr-tx"), subscription: .topics("tr-tx-in"))
        let tracer = W3CInMemoryTracer()
        let spanA = try await withTracer(tracer) {
            try await withSpan("A") { span in
                try await producer.transaction { transaction in
                    try await transaction.send(Self.record("tr-tx-out", "send"))
                }
                let flow = source.take(1)
                    .map { message in
                        ProducerMessage.single(Self.record("tr-tx-out", "flow"), passThrough: message.partitionOffset)
                    }
                    .via(Transactional.flow(settings, transactionalId: "tr-tx-flow"))
                for try await _ in flow {}
                return try span.inMemory
            }
        }
        await producer.close()
        await source.materialized.shutdown()

        let records = try await TracedTopic.records(kafka, "tr-tx-out", count: 2)
        #expect(Set(records.map(\.value)) == ["send", "flow"])
        for record in records {
            #expect(
                record.headerBytes("traceparent") == traceparent(of: spanA), "\(record.value) carries A's traceparent")
        }
    }

    @Test func withoutASpanNoHeaderIsAdded() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tr-none", partitions: 1)
        let settings = kafka.producerSettings()
        let producer = try KafkaProducer(settings)
        let tracer = W3CInMemoryTracer()
        try await withTracer(tracer) {
            // No ServiceContext at all, then one that holds no span.
            for try await _ in Source.from([ProducerMessage.single(Self.record("tr-none", "flow"), passThrough: ())])
                .via(Producer.flexiFlow(settings))
            {}
            _ = try await producer.send(Self.record("tr-none", "send"))
            try await ServiceContext.withValue(.topLevel) {
                for try await _ in Source.from([
                    ProducerMessage.single(Self.record("tr-none", "flow-empty"), passThrough: ())
                ])
                .via(Producer.flexiFlow(settings)) {}
                _ = try await producer.send(Self.record("tr-none", "send-empty"))
            }
        }
        // And a span with no tracer in scope: the no-op instrument writes nothing.
        try await withSpan("untraced") { _ in
            _ = try await producer.send(Self.record("tr-none", "send-noop"))
        }
        await producer.close()

        let records = try await TracedTopic.records(kafka, "tr-none", count: 5)
        #expect(Set(records.map(\.value)) == ["flow", "send", "flow-empty", "send-empty", "send-noop"])
        for record in records { #expect(record.headers.isEmpty, "\(record.value) has no header") }
    }

    @Test func withPropagationOffNoHeaderIsAdded() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tr-off", partitions: 1)
        let settings = kafka.producerSettings().withTraceContextPropagation(false)
        let producer = try KafkaProducer(settings)
        let tracer = W3CInMemoryTracer()
        try await withTracer(tracer) {
            try await withSpan("A") { _ in
                for try await _ in Source.from([ProducerMessage.single(Self.record("tr-off", "flow"), passThrough: ())])
                    .via(Producer.flexiFlow(settings))
                {}
                _ = try await producer.send(Self.record("tr-off", "send"))
            }
        }
        await producer.close()

        let records = try await TracedTopic.records(kafka, "tr-off", count: 2)
        #expect(Set(records.map(\.value)) == ["flow", "send"])
        for record in records { #expect(record.headers.isEmpty, "\(record.value) has no header") }
    }

    @Test func aRecordsOwnTraceContextWinsOverTheRunningSpans() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tr-own", partitions: 1)
        let settings = kafka.producerSettings()
        let tracer = W3CInMemoryTracer()
        let (spanA, spanB) = try await withTracer(tracer) {
            try await withSpan("A") { a in
                // Built in span B, whose context is gone by the time the stage reads the record.
                let (b, bContext, own) = try withSpan("B") { b in
                    (try b.inMemory, b.context, Self.record("tr-own", "own").withTraceContext())
                }
                let stale = ProducerRecord<String, String>(
                    topic: "tr-own", value: "replaced", headers: [KafkaHeader(key: "traceparent", value: "00-stale")])
                let messages: [ProducerMessage<String, String, Void>] = [
                    .single(own, passThrough: ()),
                    .single(stale.withTraceContext(bContext), passThrough: ()),
                    .single(Self.record("tr-own", "run"), passThrough: ()),
                ]
                for try await _ in Source.from(messages).via(Producer.flexiFlow(settings)) {}
                return (try a.inMemory, b)
            }
        }

        let records = try await TracedTopic.records(kafka, "tr-own", count: 3)
        #expect(records.map(\.value) == ["own", "replaced", "run"])
        #expect(records[0].headerBytes("traceparent") == traceparent(of: spanB), "the record's own context is kept")
        #expect(
            records[1].headers == [KafkaHeader(key: "traceparent", value: KafkaBytes(traceparent(of: spanB)))],
            "withTraceContext replaces a stale header of the same name")
        #expect(records[2].headerBytes("traceparent") == traceparent(of: spanA), "a record without one gets the run's")
    }

    @Test func propagationIsReadFromConfiguration() throws {
        let offText = try ProducerSettings(
            config: ConfigReader(provider: InMemoryProvider(values: ["propagate-trace-context": "False"])))
        #expect(!offText.propagatesTraceContext, "text, any case")
        let offBool = try ProducerSettings(
            config: ConfigReader(provider: InMemoryProvider(values: ["propagate-trace-context": false])))
        #expect(!offBool.propagatesTraceContext, "a boolean")
        #expect(
            try ProducerSettings(config: ConfigReader(provider: InMemoryProvider(values: [:]))).propagatesTraceContext,
            "on by default")
        #expect(
            throws: KafkaError(.invalidConfiguration, "propagate-trace-context: \"sometimes\" is not true or false")
        ) {
            try ProducerSettings(
                config: ConfigReader(provider: InMemoryProvider(values: ["propagate-trace-context": "sometimes"])))
        }
    }
}

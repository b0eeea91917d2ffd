import InMemoryTracing
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing
import Tracing

/// Reading back what the tracing tests produced.
enum TracedTopic {
    /// The first `count` records of `topic`, read from the earliest offset by a group of their
    /// own; fails after 30 s rather than wait for records that never came.
    static func records(_ kafka: EmbeddedKafka, _ topic: String, count: Int) async throws -> [ConsumerRecord<
        String, String
    >] {
        let source = Consumer.plainSource(
            ConsumerEndToEndTests.settings(kafka, group: "read-\(topic)"), subscription: .topics(topic))
        var records: [ConsumerRecord<String, String>] = []
        do {
            for try await record in source.take(count).transform({ $0.completionTimeout(.seconds(30)) }) {
                records.append(record)
            }
        } catch {
            await source.materialized.shutdown()
            throw error
        }
        await source.materialized.shutdown()
        return records
    }
}

extension ConsumerRecord {
    /// The value of the header named `key`, as bytes; nil when there is none.
    func headerBytes(_ key: String) -> [UInt8]? {
        headers.last { $0.key == key }?.value?.array
    }
}

extension Span {
    /// The in-memory span context of a span the test tracer started.
    var inMemory: InMemorySpanContext {
        get throws { try #require(context.inMemorySpanContext, "a span of the W3C test tracer") }
    }
}

/// The exact `traceparent` a W3C tracer writes for `span`: version 00, sampled.
func traceparent(of span: InMemorySpanContext) -> [UInt8] {
    Array("00-\(span.traceID)-\(span.spanID)-01".utf8)
}

import Tracing

/// The OpenTelemetry messaging attributes of the spans the `traced` operators start.
///
/// Names follow OpenTelemetry's messaging semantic conventions for Kafka (the 1.24 names,
/// which most backends map): `messaging.system`, `messaging.operation`,
/// `messaging.destination.name`, `messaging.kafka.destination.partition`,
/// `messaging.kafka.message.offset`, `messaging.kafka.consumer.group`,
/// `messaging.kafka.message.key` and, on a batch span, `messaging.batch.message_count`.
enum MessagingSpanAttributes {
    /// The span name: the operation and, when there is one, the topic (`process orders`).
    static func spanName(topic: String?) -> String {
        topic.map { "process \($0)" } ?? "process"
    }

    /// The attributes of a span that processes one record.
    static func set(on span: any Span, record: borrowing RecordFields, consumerGroup: String?, messageKey: String?) {
        span.updateAttributes { attributes in
            common(&attributes, consumerGroup: consumerGroup)
            attributes["messaging.destination.name"] = record.topic
            attributes["messaging.kafka.destination.partition"] = Int64(record.partition)
            attributes["messaging.kafka.message.offset"] = record.offset
            if let messageKey { attributes["messaging.kafka.message.key"] = messageKey }
        }
    }

    /// The attributes of a span that processes a batch: its topic and partition only when
    /// all its records share them.
    static func set(on span: any Span, batch: BatchFields, consumerGroup: String?) {
        span.updateAttributes { attributes in
            common(&attributes, consumerGroup: consumerGroup)
            attributes["messaging.batch.message_count"] = batch.count
            if let topic = batch.topic { attributes["messaging.destination.name"] = topic }
            if let partition = batch.partition {
                attributes["messaging.kafka.destination.partition"] = Int64(partition)
            }
        }
    }

    private static func common(_ attributes: inout SpanAttributes, consumerGroup: String?) {
        attributes["messaging.system"] = "kafka"
        attributes["messaging.operation"] = "process"
        if let consumerGroup { attributes["messaging.kafka.consumer.group"] = consumerGroup }
    }

    /// What a record span says of its record.
    struct RecordFields {
        let topic: String
        let partition: Int32
        let offset: Int64
    }

    /// What a batch span says of its records.
    struct BatchFields {
        var count = 0
        /// The topic of every record, nil when they differ.
        var topic: String?
        /// The partition of every record, nil when they differ (or their topics do).
        var partition: Int32?
        private var mixedTopics = false
        private var mixedPartitions = false

        mutating func add(topic recordTopic: String, partition recordPartition: Int32) {
            defer { count += 1 }
            guard count > 0 else {
                topic = recordTopic
                partition = recordPartition
                return
            }
            if !mixedTopics, topic != recordTopic {
                mixedTopics = true
                topic = nil
            }
            if !mixedPartitions, mixedTopics || partition != recordPartition {
                mixedPartitions = true
                partition = nil
            }
        }
    }
}

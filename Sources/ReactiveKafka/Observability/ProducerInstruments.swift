import CRdKafka
import CoreMetrics
import Foundation

/// A producer's swift-metrics instruments (``MessagingMetric``), used only on its poll
/// thread: each delivery-report batch moves the counters once per topic, and samples
/// one record's delivery latency.
final class ProducerInstruments {
    private let factory: any MetricsFactory
    private let base: [(String, String)]
    /// By topic handle; the name is checked too, since librdkafka may reuse a freed handle's address.
    private var sent: [OpaquePointer: (name: [CChar], messages: Counter, bytes: Counter)] = [:]
    private var failures: [rd_kafka_resp_err_t.RawValue: Counter] = [:]
    private let deliveryDuration: CoreMetrics.Timer
    private let queueMessages: Gauge

    /// Instruments for a producer, or nil when `settings` turn metrics off.
    init?(_ settings: KafkaMetricsSettings, clientId: String?) {
        guard settings.enabled else { return nil }
        factory = settings.factory ?? MetricsSystem.factory
        var base = [(MessagingMetric.system, "kafka")]
        if let clientId { base.append((MessagingMetric.clientId, clientId)) }
        base += settings.dimensions
        self.base = base
        deliveryDuration = CoreMetrics.Timer(
            label: MessagingMetric.operationDuration, dimensions: base + [(MessagingMetric.operationName, "send")],
            factory: factory)
        queueMessages = Gauge(label: MessagingMetric.producerQueueMessages, dimensions: base, factory: factory)
    }

    /// Records one delivery-report batch of `count` messages of `handle`.
    func delivered(
        _ messages: UnsafeMutablePointer<UnsafePointer<rd_kafka_message_t>?>, count: Int, handle: OpaquePointer
    ) {
        var runTopic: OpaquePointer? = nil
        var runCount = 0
        var runBytes = 0
        func closeRun() {
            guard let topic = runTopic, runCount > 0 else { return }
            let name = rd_kafka_topic_name(topic)!
            let counters: (name: [CChar], messages: Counter, bytes: Counter)
            if let known = sent[topic], known.name.withUnsafeBufferPointer({ strcmp($0.baseAddress!, name) == 0 }) {
                counters = known
            } else {
                let dims = base + [(MessagingMetric.destination, String(cString: name))]
                counters = (
                    Array(UnsafeBufferPointer(start: name, count: strlen(name) + 1)),
                    Counter(label: MessagingMetric.sentMessages, dimensions: dims, factory: factory),
                    Counter(label: MessagingMetric.sentBytes, dimensions: dims, factory: factory)
                )
                sent[topic] = counters
            }
            counters.messages.increment(by: runCount)
            counters.bytes.increment(by: runBytes)
        }
        for i in 0..<count {
            let m = messages[i]!.pointee
            guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                failed(m.err)
                continue
            }
            if m.rkt != runTopic {
                closeRun()
                runTopic = m.rkt
                runCount = 0
                runBytes = 0
            }
            runCount += 1
            runBytes += m.len + m.key_len
        }
        closeRun()
        // One sample per batch: the batch's last record waited the longest for its report.
        if count > 0 {
            let latency = rd_kafka_message_latency(messages[count - 1]!)
            if latency >= 0 { deliveryDuration.recordMicroseconds(latency) }
        }
        queueMessages.record(Int(rd_kafka_outq_len(handle)))
    }

    private func failed(_ err: rd_kafka_resp_err_t) {
        let counter =
            failures[err.rawValue]
            ?? {
                let made = Counter(
                    label: MessagingMetric.deliveryFailures,
                    dimensions: base + [(MessagingMetric.errorType, String(cString: rd_kafka_err2name(err)))],
                    factory: factory)
                failures[err.rawValue] = made
                return made
            }()
        counter.increment()
    }

    /// The producer closed: its queue gauge goes; counters stay.
    func close() {
        queueMessages.destroy()
    }
}

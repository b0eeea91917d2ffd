import CRdKafka
import Foundation

/// The engine's part of its metrics (``ConsumerInstruments``): what it reads from librdkafka
/// and its own state once per ``ConsumerInstruments/gaugeInterval``, on its thread.
extension ConsumerEngine {
    func updateGauges(_ instruments: ConsumerInstruments, now: ContinuousClock.Instant) {
        let (assigned, handedOut, buffered, paused) = state.withLock { s in
            (
                s.assigned, s.handedOutPositions, (bytes: s.buffer.liveBytes, records: s.buffer.bufferedRecords),
                s.buffer.isPaused ? s.assigned.count : s.buffer.pausedPartitions.intersection(s.assigned).count
            )
        }
        // Partitions no source took a record of yet: the first record read, or, with none read,
        // librdkafka's fetch position (its end offset when the consumer is caught up).
        var positions = handedOut
        for (p, offset) in instruments.firstOffsetRead where positions[p] == nil { positions[p] = offset }
        let unread = assigned.filter { positions[$0] == nil }
        var fetchPositions: [TopicPartition: Int64] = [:]
        if !unread.isEmpty {
            let list = PartitionList.make(unread)
            if rd_kafka_position(handle, list) == RD_KAFKA_RESP_ERR_NO_ERROR {
                for (p, offset) in PartitionList.offsets(list) where offset >= 0 { fetchPositions[p] = offset }
            }
            rd_kafka_topic_partition_list_destroy(list)
        }
        let wallClock = Int64(Date().timeIntervalSince1970 * 1000)
        instruments.updateGauges(
            now: now, wallClockMilliseconds: wallClock, assigned: assigned,
            lagOf: { p in
                guard let position = positions[p] ?? fetchPositions[p] else { return nil }
                // The end offset librdkafka learnt from its last fetch: local, never a request.
                var low: Int64 = -1
                var high: Int64 = -1
                guard
                    rd_kafka_get_watermark_offsets(handle, p.topic, p.partition, &low, &high)
                        == RD_KAFKA_RESP_ERR_NO_ERROR,
                    high >= 0
                else { return nil }
                return max(0, high - position)
            },
            buffered: buffered, paused: paused)
    }

    /// Times a rebalance callback for the metrics.
    func measuredRebalance(_ err: rd_kafka_resp_err_t, partitions: Int, _ body: () -> Void) {
        guard let instruments else { return body() }
        let started = ContinuousClock.now
        // Before the callback: unassigning clears librdkafka's lost flag.
        let kind =
            switch err {
            case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS: "assigned"
            case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS: rd_kafka_assignment_lost(handle) != 0 ? "lost" : "revoked"
            default: "lost"
            }
        body()
        instruments.rebalance(kind, partitions: partitions, duration: .now - started)
    }
}

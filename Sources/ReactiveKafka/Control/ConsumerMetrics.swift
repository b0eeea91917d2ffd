import Foundation

/// A consumer's metrics: librdkafka's statistics, parsed, plus the
/// connector's own buffer figures.
public struct ConsumerMetrics: Sendable {
    /// Per-partition figures from librdkafka's statistics.
    public struct Partition: Sendable, Hashable {
        /// Records between the consumer's position and the end of the partition (-1 when unknown).
        public var consumerLag: Int64
        /// The last committed offset (-1001 when none).
        public var committedOffset: Int64
        /// The next offset the application will receive.
        public var position: Int64
        /// The partition's high watermark (end offset).
        public var highWatermark: Int64
    }

    /// librdkafka's statistics JSON as emitted (`statistics.interval.ms`), or nil if disabled.
    public let statisticsJSON: String?
    /// Record bytes the consumer holds now against `maxBufferedBytes`: buffered ahead of the stream,
    /// and emitted but still held downstream (counted by the fetched batch they keep alive).
    public let bufferedBytes: Int
    /// The most record bytes ever held so (``bufferedBytes``).
    public let bufferedBytesHighWater: Int
    /// Records received from brokers in total (librdkafka `rxmsgs`).
    public let messagesReceived: Int64?
    /// Per-partition lag, position and commit.
    public let partitions: [TopicPartition: Partition]

    init(statisticsJSON: String?, bufferedBytes: Int, bufferedBytesHighWater: Int) {
        self.statisticsJSON = statisticsJSON
        self.bufferedBytes = bufferedBytes
        self.bufferedBytesHighWater = bufferedBytesHighWater
        var received: Int64? = nil
        var partitions: [TopicPartition: Partition] = [:]
        if let statisticsJSON,
            let object = try? JSONSerialization.jsonObject(with: Data(statisticsJSON.utf8)) as? [String: Any]
        {
            received = (object["rxmsgs"] as? NSNumber)?.int64Value
            for (topic, value) in (object["topics"] as? [String: Any]) ?? [:] {
                for (key, p) in ((value as? [String: Any])?["partitions"] as? [String: Any]) ?? [:] {
                    guard let id = Int32(key), id >= 0, let p = p as? [String: Any] else { continue }
                    func int(_ name: String) -> Int64 { (p[name] as? NSNumber)?.int64Value ?? -1 }
                    // Only partitions this consumer fetches carry a meaningful position.
                    guard (p["fetch_state"] as? String) != "none" else { continue }
                    partitions[TopicPartition(topic, id)] = Partition(
                        consumerLag: int("consumer_lag"), committedOffset: int("committed_offset"),
                        position: int("app_offset"), highWatermark: int("hi_offset"))
                }
            }
        }
        self.messagesReceived = received
        self.partitions = partitions
    }

    /// Total lag over the partitions whose lag is known.
    public var totalLag: Int64 { partitions.values.map(\.consumerLag).filter { $0 >= 0 }.reduce(0, +) }
}

import CRdKafka
import Synchronization

/// Reads what lag is computed from: the watched groups, their committed offsets and the
/// offset ranges of their partitions, through one librdkafka client.
///
/// librdkafka answers with blocking calls and admin requests waited for on a queue; a
/// reading runs them one after the other on the reader's own thread (never on Swift's
/// cooperative pool), all within one timeout. Groups come from `ListGroups`, or, on a
/// cluster that does not answer it (librdkafka's mock cluster), from the filter's literal
/// names; committed offsets are asked for all partitions where groups are listed, and for
/// each partition of the watched topics on the mock, which cannot answer "all partitions".
final class LagReader: Sendable {
    private struct HandleBox: @unchecked Sendable {
        var rk: OpaquePointer?
    }

    private let handle: Mutex<HandleBox>
    /// Runs the blocking calls and the client's destruction.
    private let thread = BlockingCallThread(name: "rkafka-lag")
    private let timeout: Duration

    /// A reader connecting with `properties` (`group.id` is dropped: the reader joins no
    /// group); each ``read(groups:topics:)`` is answered or fails within `timeout`.
    init(properties: [String: String], timeout: Duration) throws(KafkaError) {
        var properties = properties
        properties["group.id"] = nil
        properties["enable.auto.commit"] = "false"
        let conf = try KafkaClientConfiguration.make(properties, client: "lag reader")
        let rk = try KafkaClientConfiguration.newClient(
            RD_KAFKA_CONSUMER, conf, properties: properties, client: "lag reader")
        self.handle = Mutex(HandleBox(rk: rk))
        self.timeout = timeout
    }

    deinit {
        close()
        thread.stop()
    }

    /// Releases the client (destroyed on the reader's thread after the reading under way). Idempotent.
    func close() {
        let rk = handle.withLock { box -> OpaquePointer? in
            defer { box.rk = nil }
            return box.rk
        }
        if let rk {
            let box = HandleBox(rk: rk)
            thread.submit { rd_kafka_destroy(box.rk) }
        }
    }

    /// One reading of the groups `groups` selects, on the topics `topics` selects.
    func read(groups: NameFilter, topics: NameFilter) async throws(KafkaError) -> LagReading {
        let deadline = BlockingCallDeadline(timeout: timeout, client: "lag reader")
        let result: Result<LagReading, KafkaError> = await thread.run {
            guard let rk = self.handle.withLock({ $0.rk }) else {
                return .failure(KafkaError(.shutDown, "the lag reader was closed"))
            }
            do throws(KafkaError) {
                return .success(try Self.read(rk, groups: groups, topics: topics, deadline: deadline))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The reading, with blocking calls: topics, groups, members, commits, then offset ranges
    /// (read after the commits, so that a commit is never ahead of the end read with it).
    private static func read(
        _ rk: OpaquePointer, groups filter: NameFilter, topics: NameFilter, deadline: BlockingCallDeadline
    ) throws(KafkaError) -> LagReading {
        let partitions = try watchedPartitions(rk, topics, deadline)
        let queue = rd_kafka_queue_new(rk)
        defer { rd_kafka_queue_destroy(queue) }
        var groups: [LagReading.Group]
        let listed = try listGroups(rk, queue, deadline)
        if let listed {
            let matcher = filter.matcher()
            var names: [String: Bool?] = [:]
            for group in listed where matcher.matches(group.name) { names[group.name] = group.isSimple }
            // A named group the listing left out has no commits (Kafka lists those): asked anyway, it answers none.
            for name in filter.literalNames where names[name] == nil { names.updateValue(nil, forKey: name) }
            groups = names.map { LagReading.Group(name: $0.key, isSimpleConsumer: $0.value, committed: [:]) }
            let members = describeGroups(rk, queue, groups.map(\.name), deadline)
            for i in groups.indices { groups[i].members = members[groups[i].name] ?? [:] }
        } else {
            guard !filter.needsListing else {
                let patterns = filter.patterns.filter { !filter.literalNames.contains($0) }
                let what =
                    patterns.isEmpty
                    ? "watching every group" : "the patterns \(patterns.map { "\"\($0)\"" }.joined(separator: ", "))"
                throw KafkaError(
                    .invalidConfiguration,
                    "the cluster does not list consumer groups (ListGroups is not supported, as on librdkafka's mock cluster), which \(what) needs: name the groups to watch with literal group names"
                )
            }
            groups = filter.literalNames.map { LagReading.Group(name: $0, committed: [:]) }
        }
        guard !partitions.isEmpty, !groups.isEmpty else { return LagReading(groups: [], earliest: [:], latest: [:]) }
        // A cluster that lists groups is a Kafka broker, which answers "every partition" (null):
        // a smaller request than naming each partition of every watched topic, which the mock needs.
        let committed = try committedOffsets(rk, queue, groups.map(\.name), listed == nil ? partitions : nil, deadline)
        let watched = Set(partitions)
        for i in groups.indices {
            groups[i].committed = (committed[groups[i].name] ?? [:]).filter { watched.contains($0.key) }
        }
        groups.removeAll { $0.committed.isEmpty }
        let read = Set(groups.flatMap(\.committed.keys))
        guard !read.isEmpty else { return LagReading(groups: [], earliest: [:], latest: [:]) }
        let latest = try listOffsets(rk, read, endTimestamp, "reading end offsets", deadline)
        let earliest = try listOffsets(rk, read, startTimestamp, "reading start offsets", deadline)
        return LagReading(groups: groups, earliest: earliest, latest: latest)
    }
}

import CRdKafka
import Foundation

/// Owns a librdkafka client handle and destroys it when the last owner lets go.
///
/// `rd_kafka_destroy` waits until every message fetched from the handle is
/// destroyed, and records (zero-copy bytes, lazily read headers) keep their
/// batch's messages alive, possibly long after the stream ended. So the engine
/// and every batch share this owner: closing the consumer (leaving the group)
/// never waits for records the application still holds, and the handle is
/// destroyed once the last of them is gone, on a thread of its own: `rd_kafka_destroy`
/// blocks until librdkafka's threads end (and, without `NO_CONSUMER_CLOSE`, until the
/// consumer left its group), which must occupy neither a thread of Swift's cooperative
/// pool (the last record may be released by any task) nor one of Dispatch's global pool.
final class ClientHandleOwner: @unchecked Sendable {
    let handle: OpaquePointer
    /// Set before the engine lets go: `RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE` when the close timed out.
    var destroyFlags: Int32 = 0
    /// What the handle's callbacks were given as their opaque (a consumer's `CallbackTarget`):
    /// librdkafka may call them until the handle is destroyed (`rd_kafka_destroy` serves the
    /// consumer close), so it is released only after that. Set before the first callback can run.
    var callbackOpaque: AnyObject?

    init(_ handle: OpaquePointer) { self.handle = handle }

    deinit {
        let handle = Handle(raw: handle)
        let flags = destroyFlags
        let opaque = Opaque(object: callbackOpaque)
        let thread = Thread {
            rd_kafka_destroy_flags(handle.raw, flags)
            withExtendedLifetime(opaque) {}
        }
        thread.name = "rkafka-destroy"
        thread.start()
    }

    private struct Handle: @unchecked Sendable { let raw: OpaquePointer }
    // Only kept alive on the destroying thread, never used there.
    private struct Opaque: @unchecked Sendable { let object: AnyObject? }
}

/// Owns the librdkafka messages of one fetched batch and destroys them when
/// the last record (or `KafkaBytes` view) that refers to them is gone.
///
/// One allocation per batch, not per record: records and their key/value
/// bytes point into these messages.
@usableFromInline
final class MessageBatch: @unchecked Sendable {
    @usableFromInline let messages: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    let count: Int
    /// The client the messages came from, kept alive until they are destroyed.
    private let client: ClientHandleOwner
    /// Where the batch reports its bytes free when it goes (nil: nothing counts them).
    private let releases: HeldBatchReleases?
    /// The bytes of its records that count against the consumer's budget: set by the engine
    /// thread as it buffers the batch's chunks, under the state lock, before any reader can
    /// take one (so before any other thread can hold the batch).
    var countedBytes = 0
    /// The topics of the batch's records, mostly one.
    private var topics: [String] = []
    /// Per message, its topic's index in `topics`. A record finds its topic here, through
    /// the batch reference it holds anyway (for its headers), instead of holding the topic
    /// string as well: one reference fewer to take and drop per record.
    private let topicSlots: UnsafeMutablePointer<UInt16>

    /// Takes ownership of the first `count` messages of `scratch`.
    init(
        copying scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, count: Int,
        client: ClientHandleOwner,
        releases: HeldBatchReleases? = nil
    ) {
        self.client = client
        self.releases = releases
        self.messages = .allocate(capacity: count)
        self.messages.initialize(from: scratch, count: count)
        self.topicSlots = .allocate(capacity: count)
        self.topicSlots.initialize(repeating: 0, count: count)
        self.count = count
    }

    /// Records that the messages in `range` belong to `topic`. Called by the engine while it
    /// splits the batch into chunks, before any record of the batch exists.
    func setTopic(_ topic: String, for range: Range<Int>) {
        let slot: Int
        if let known = topics.firstIndex(of: topic) {
            slot = known
        } else {
            slot = topics.count
            topics.append(topic)
        }
        // A fetch holds far fewer topics than 65,536; the cap is only a bound, never reached.
        let stored = UInt16(clamping: slot)
        for i in range { topicSlots[i] = stored }
    }

    /// The topic of message `index`.
    func topic(at index: Int) -> String {
        let slot = Int(topicSlots[index])
        return slot < topics.count ? topics[slot] : ""
    }

    deinit {
        if countedBytes > 0 { releases?.release(countedBytes) }
        for i in 0..<count { rd_kafka_message_destroy(messages[i]) }
        messages.deallocate()
        topicSlots.deallocate()
    }
}

/// A run of records of one partition within a fetched batch.
@usableFromInline
struct RecordChunk: BufferedChunk, @unchecked Sendable {
    @usableFromInline let batch: MessageBatch
    let range: Range<Int>
    /// The partition the records were read from: shared by all its chunks in the buffer, a
    /// counted copy once a committable source's reader took the chunk.
    @usableFromInline var partition: ConsumedPartition
    let byteCount: Int
    /// The create (or log-append) time of the chunk's last record, ms since the epoch; nil when
    /// the record has none. Read once, as the chunk is made, for the lag-in-seconds metric and
    /// offset reset protection.
    let lastTimestamp: Int64?
    var topicPartition: TopicPartition { partition.topicPartition }
    var recordCount: Int { range.count }
    /// The offset after the chunk's last record.
    var nextOffset: Int64 { batch.messages[range.upperBound - 1]!.pointee.offset + 1 }
}

/// The chunk a record is read from, lent to a source's element factory for one call.
///
/// The iterator holds the chunk (so its batch and partition) across the call, so lending
/// it takes no reference; what the element keeps (its bytes' batch, its offset's partition)
/// it retains itself. Passing the chunk itself cost a retain and a release of both
/// references per record: the compiler copies a value read from the iterator's storage
/// before an opaque call.
@usableFromInline
struct LentChunk {
    // Unowned(unsafe): the lender's RecordChunk holds both strongly for the whole call, and a
    // LentChunk never outlives that call (the element retains what it keeps).
    @usableFromInline unowned(unsafe) let batch: MessageBatch
    @usableFromInline unowned(unsafe) let partition: ConsumedPartition

    @inlinable init(_ chunk: borrowing RecordChunk) {
        batch = chunk.batch
        partition = chunk.partition
    }

    var topicPartition: TopicPartition { partition.topicPartition }
}

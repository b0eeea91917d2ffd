/// A consumed record and its offset, which travels beside it through the stream: the element
/// of ``Consumer/sourceWithOffsetContext(_:subscription:logger:)`` (`Offset` is
/// ``CommittableOffset``) and ``Transactional/sourceWithOffsetContext(_:subscription:logger:)``
/// (`Offset` is ``TransactionalOffset``). Alpakka's `SourceWithContext` element.
public struct RecordWithOffset<Key: Sendable, Value: Sendable, Offset: Sendable>: Sendable {
    /// The record read.
    public var record: ConsumerRecord<Key, Value>
    /// Where it was read: what to commit once the record is processed.
    public var offset: Offset

    /// Pairs `record` with the offset it was read at.
    public init(record: ConsumerRecord<Key, Value>, offset: Offset) {
        self.record = record
        self.offset = offset
    }

    /// What to produce for this record, keeping its offset beside it.
    public func producing<OutKey, OutValue>(
        _ message: ProducerMessage<OutKey, OutValue, Void>
    ) -> MessageWithOffset<OutKey, OutValue, Offset> {
        MessageWithOffset(message: message, offset: offset)
    }
}

/// What to produce and the consumed offset it came from: the input of
/// ``Transactional/sinkWithOffsetContext(_:transactionalId:eosCommitInterval:logger:)`` and
/// ``Transactional/flowWithOffsetContext(_:transactionalId:eosCommitInterval:logger:)``.
public struct MessageWithOffset<Key: Sendable, Value: Sendable, Offset: Sendable>: Sendable {
    /// The records to produce (or `.passThrough` for none).
    public var message: ProducerMessage<Key, Value, Void>
    /// The consumed offset, committed with the records.
    public var offset: Offset

    /// Pairs `message` with the offset of the record it was made from.
    public init(message: ProducerMessage<Key, Value, Void>, offset: Offset) {
        self.message = message
        self.offset = offset
    }
}

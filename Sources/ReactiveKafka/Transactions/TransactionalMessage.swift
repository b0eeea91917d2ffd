/// A record read by a transactional source, with the offset a transactional
/// sink commits for it: Alpakka's `TransactionalMessage`.
public struct TransactionalMessage<Key: Sendable, Value: Sendable>: Sendable {
    /// The record.
    public let record: ConsumerRecord<Key, Value>
    /// Its offset, to pass through to ``Transactional/sink(_:transactionalId:eosCommitInterval:logger:)``.
    public let partitionOffset: TransactionalOffset

    /// Pairs `record` with its offset (package access: the source and the testkit's factories).
    package init(record: ConsumerRecord<Key, Value>, partitionOffset: TransactionalOffset) {
        self.record = record
        self.partitionOffset = partitionOffset
    }
}

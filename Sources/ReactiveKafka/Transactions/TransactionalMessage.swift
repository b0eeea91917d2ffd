/// A record read by a transactional source, with the offset a transactional
/// sink commits for it: Alpakka's `TransactionalMessage`.
public struct TransactionalMessage<Key: Sendable, Value: Sendable>: Sendable {
    /// The record.
    public let record: ConsumerRecord<Key, Value>
    /// Its offset, to pass through to ``Transactional/sink(_:transactionalId:eosCommitInterval:)``.
    public let partitionOffset: TransactionalOffset
}

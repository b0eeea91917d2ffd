/// The changes of a table (or of a join of tables) from the moment they were asked for,
/// as an `AsyncSequence` of ``TableChange``.
///
/// Slow readers: the table never waits for a reader. Changes waiting to be read are
/// conflated by key: a key changed several times before the reader got to it appears
/// once, from its oldest unread old value to its latest new value, in the place of its
/// first unread change. So a reader always ends up with every key's latest value, may
/// skip intermediate values, and holds at most one pending change per key.
///
/// The sequence ends when the table closes, and throws the table's failure if it fails.
/// Cancelling the reading task throws `CancellationError`. One task reads a sequence at a
/// time (another reading it meanwhile gets an error); call `changes()` again for another
/// reader. A key added and deleted again before the reader got to it reads as one change
/// from nil to nil. Stop reading (drop the
/// sequence and its iterator) to unsubscribe.
public struct KafkaTableChanges<Key: Hashable & Sendable, Value: Sendable>: AsyncSequence, Sendable {
    /// The type of element this sequence produces.
    public typealias Element = TableChange<Key, Value>
    /// The error the sequence may end with.
    public typealias Failure = any Error

    let subscription: ChangeSubscription<Key, Value>

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Iterator { Iterator(subscription: subscription) }

    /// Reads the pending changes one at a time.
    public struct Iterator: AsyncIteratorProtocol {
        let subscription: ChangeSubscription<Key, Value>

        /// The next element, or `nil` once the sequence has ended.
        public mutating func next() async throws -> TableChange<Key, Value>? {
            try await subscription.buffer.next()
        }
    }
}

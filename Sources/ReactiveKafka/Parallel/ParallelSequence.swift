/// The results of a parallel source, as they are taken downstream: what
/// ``Consumer/parallelSource(_:subscription:parallel:onFailure:logger:process:)`` emits (and, with
/// a ``ProducerResult`` per record once its outputs were acknowledged,
/// ``Consumer/parallelSource(_:subscription:parallel:producerSettings:onFailure:logger:process:)``, and in
/// transactions, ``Transactional/parallelSource(_:subscription:parallel:producerSettings:transactionalId:eosCommitInterval:onFailure:logger:process:)``).
///
/// Results of one key (or partition, with ``ParallelOrdering/partition``) come out in offset
/// order; others in the order they complete. A record counts as done, and its offset as
/// committable, once `process` returned (do the work that must not be lost there; with a
/// producer, once its outputs were acknowledged). Results wait
/// for the downstream in a buffer of `maxConcurrency`; when it is full, workers wait with theirs,
/// so a slow downstream slows the source (back-pressure). The stream completes when
/// the consumer stops (``ConsumerControl/drainAndShutdown(_:)``), after what completed was
/// committed; it fails with a record's error under ``ParallelFailurePolicy/failStream``.
/// Cancelling the iterating task (or dropping the iterator) stops the processing: running
/// records are cancelled, completed ones committed, and the consumer leaves its group.
/// It can be iterated once.
public struct ParallelSequence<Output: Sendable>: AsyncSequence, Sendable {
    /// The error the sequence may end with.
    public typealias Failure = any Error
    let makeRun: @Sendable () -> ParallelRunHandle<Output>

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Iterator { Iterator(handle: makeRun()) }

    /// Takes results from the run, starting it on the first pull.
    public struct Iterator: AsyncIteratorProtocol {
        let handle: ParallelRunHandle<Output>

        /// The next element, or `nil` once the sequence has ended.
        public mutating func next() async throws -> Output? { try await handle.next() }
    }
}

/// Owns a run for its iterator: starts it on the first pull, stops it when the iterator goes.
public final class ParallelRunHandle<Output: Sendable>: Sendable {
    let next: @Sendable () async throws -> Output?
    let stop: @Sendable () -> Void

    init(next: @escaping @Sendable () async throws -> Output?, stop: @escaping @Sendable () -> Void) {
        self.next = next
        self.stop = stop
    }

    deinit { stop() }
}

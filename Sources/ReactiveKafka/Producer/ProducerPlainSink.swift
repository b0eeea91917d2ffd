import StreamKit

/// The sink of ``Producer/plainSink(_:)``: a ``ProducerFlexiFlow`` whose messages are the
/// records themselves, each a `single` message without a pass-through.
public struct ProducerPlainSink<Key: Sendable, Value: Sendable>: Sink {
    public typealias Input = ProducerRecord<Key, Value>
    public typealias Result = Void

    @usableFromInline let flow: ProducerFlexiFlow<Key, Value, Void>

    @inlinable
    init(flow: ProducerFlexiFlow<Key, Value, Void>) { self.flow = flow }

    /// Writes every record of `upstream`; returns when all are acknowledged.
    // Inlinable, so that the per-record path (wrapping, the flow's erased upstream and results)
    // is compiled for the caller's types, as `flexiFlow`'s is. Compiled once for all types it
    // cost twice `flexiFlow`'s CPU per record (2.1 against 1.0 µs in `produce-plainsink`), and
    // wrapping with the standard library's `map` (an async closure call per record) still
    // cost half as much again once specialised (1.6 against 1.1 µs).
    @inlinable
    public func run<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) async throws
    where Upstream.Element == ProducerRecord<Key, Value> {
        var results = flow.apply(ProducerSingleMessages(records: upstream)).makeAsyncIterator()
        // Results are taken straight from the flow's buffer, so the loop costs one call per record.
        while try await results.next() != nil {}
    }
}

/// Each record of `records` as a `single` message without a pass-through, wrapped in the
/// iterator's own synchronous code: no closure call and no async frame per record.
///
/// Back-pressure and cancellation are `records`' own: one record is pulled per message.
@usableFromInline
struct ProducerSingleMessages<Records: AsyncSequence & Sendable, Key: Sendable, Value: Sendable>: AsyncSequence,
    Sendable
where Records.Element == ProducerRecord<Key, Value> {
    @usableFromInline typealias Element = ProducerMessage<Key, Value, Void>

    @usableFromInline let records: Records

    @inlinable
    init(records: Records) { self.records = records }

    @inlinable
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: records.makeAsyncIterator()) }

    @usableFromInline
    struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline var base: Records.AsyncIterator

        @inlinable
        init(base: Records.AsyncIterator) { self.base = base }

        @inlinable
        mutating func next() async throws -> Element? {
            Self.message(try await base.next())
        }

        // Implemented (not the default, which calls `next()` after an executor switch): the
        // flow's erased upstream calls this one per record.
        @inlinable
        mutating func next(isolation actor: isolated (any Actor)?) async throws(Records.Failure) -> Element? {
            Self.message(try await base.next(isolation: actor))
        }

        /// Consumed, so the record moves into the message without a copy.
        @inlinable
        static func message(_ record: __owned ProducerRecord<Key, Value>?) -> Element? {
            switch consume record {
            case let record?: return .single(record, passThrough: ())
            case nil: return nil
            }
        }
    }
}

/// The occurrences of an ``EventPattern`` per key in a base sequence: complex event processing.
///
/// Elements are put in event-time order first: each waits until the watermark (latest event
/// time seen minus `outOfOrderness`) passes it; elements behind the watermark come out as
/// ``PatternOutput/late(_:)``. A match is emitted as soon as its last event is processed; a
/// pattern ending in `notFollowedBy` matches when the watermark passes its bound. The watermark
/// moves only with elements; at the end of the input every buffered element is processed and
/// every pending absence matches.
///
/// Back-pressure: pull-through, one upstream pull when no output is waiting. Memory: see
/// `PatternStateMachine` (bounded by `outOfOrderness` and the pattern's `within`).
/// Cancellation: nothing runs between pulls. An upstream error ends the sequence after the
/// outputs before it.
public struct AsyncPatternMatchSequence<Base: AsyncSequence, Key: Hashable>: AsyncSequence {
    /// The type of element this sequence produces.
    public typealias Element = PatternOutput<Key, Base.Element>
    /// The error the sequence may end with.
    public typealias Failure = any Error

    let base: Base
    let pattern: EventPattern<Base.Element>
    let outOfOrderness: Duration
    let key: @Sendable (Base.Element) -> Key
    let time: @Sendable (Base.Element) -> EventTime

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Iterator {
        let (pattern, outOfOrderness, key, time) = (pattern, outOfOrderness, key, time)
        return Iterator(
            driver: EventTimeDriver(
                base: base.makeAsyncIterator(),
                machine: Result { () throws(StreamKitError) in
                    try PatternStateMachine(pattern: pattern, outOfOrderness: outOfOrderness)
                },
                receive: { machine, element, output in
                    machine.receive(element, key: key(element), time: time(element), into: &output)
                },
                finish: { machine, output in machine.finish(into: &output) }))
    }

    /// The iterator of ``AsyncPatternMatchSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        var driver: EventTimeDriver<Base.AsyncIterator, PatternStateMachine<Key, Base.Element>, Element>

        /// The next element, or `nil` once the sequence has ended.
        public mutating func next() async throws -> Element? { try await driver.next() }
    }
}

extension AsyncPatternMatchSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// The occurrences of `pattern` per key, in event-time order; see ``AsyncPatternMatchSequence``.
    ///
    /// ```swift
    /// for try await output in activity.matching(takeover, key: \.customer, time: \.time, outOfOrderness: .seconds(5)) {
    ///     if case .match(let match) = output { try await alert(match.key, match.events) }
    /// }
    /// ```
    /// A pattern without `within`, a `notFollowedBy` that is not the last step, or a bound or
    /// `outOfOrderness` that is not a whole number of milliseconds fails the first `next()` with
    /// ``StreamKitError/invalidArgument(_:)``.
    public func matching<Key: Hashable>(
        _ pattern: EventPattern<Element>,
        key: @escaping @Sendable (Element) -> Key,
        time: @escaping @Sendable (Element) -> EventTime,
        outOfOrderness: Duration = .zero
    ) -> AsyncPatternMatchSequence<Self, Key> {
        AsyncPatternMatchSequence(base: self, pattern: pattern, outOfOrderness: outOfOrderness, key: key, time: time)
    }
}

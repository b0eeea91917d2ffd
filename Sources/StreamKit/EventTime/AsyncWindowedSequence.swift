import DequeModule

/// Per-key event-time windows over a base sequence: tumbling, hopping or session windows,
/// aggregated by a ``WindowAggregation`` and emitted as ``Windowed/window(_:)`` when the
/// watermark closes them, with the elements too late for every window as ``Windowed/late(_:)``.
///
/// The watermark is the latest event time seen minus `outOfOrderness`: elements may arrive that
/// much out of order and still count. A window closes (its final result is emitted) when the
/// watermark reaches its end plus `allowedLateness`; until then it still takes elements. The
/// watermark moves only with elements: at the end of the input every open window closes, in
/// order of its end. Windows of different keys closing at once come out in order of closing time.
///
/// Back-pressure: pull-through, one upstream pull when no result is waiting. Memory: the open
/// windows (see `WindowingStateMachine`) plus the results one element released.
/// Cancellation: nothing runs between pulls; cancelling the consumer cancels the upstream's pull.
/// An upstream error ends the sequence after the results before it (open windows are dropped).
public struct AsyncWindowedSequence<Base: AsyncSequence, Key: Hashable, Value>: AsyncSequence {
    /// The type of element this sequence produces.
    public typealias Element = Windowed<Key, Value, Base.Element>
    /// The error the sequence may end with.
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let windows: EventTimeWindows
    @usableFromInline let outOfOrderness: Duration
    @usableFromInline let allowedLateness: Duration
    @usableFromInline let earlyUpdates: Bool
    @usableFromInline let aggregate: WindowAggregation<Base.Element, Value>
    @usableFromInline let key: @Sendable (Base.Element) -> Key
    @usableFromInline let time: @Sendable (Base.Element) -> EventTime

    @inlinable init(
        base: Base, windows: EventTimeWindows, outOfOrderness: Duration, allowedLateness: Duration, earlyUpdates: Bool,
        aggregate: WindowAggregation<Base.Element, Value>, key: @escaping @Sendable (Base.Element) -> Key,
        time: @escaping @Sendable (Base.Element) -> EventTime
    ) {
        self.base = base
        self.windows = windows
        self.outOfOrderness = outOfOrderness
        self.allowedLateness = allowedLateness
        self.earlyUpdates = earlyUpdates
        self.aggregate = aggregate
        self.key = key
        self.time = time
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        let (key, time) = (key, time)
        return Iterator(
            driver: EventTimeDriver(
                base: base.makeAsyncIterator(),
                machine: Result { () throws(StreamKitError) in
                    try WindowingStateMachine(
                        windows: windows, outOfOrderness: outOfOrderness, allowedLateness: allowedLateness,
                        earlyUpdates: earlyUpdates, aggregation: aggregate)
                },
                receive: { machine, element, output in
                    machine.receive(element, key: key(element), time: time(element), into: &output)
                },
                finish: { machine, output in machine.finish(into: &output) }))
    }

    /// The iterator of ``AsyncWindowedSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var driver:
            EventTimeDriver<Base.AsyncIterator, WindowingStateMachine<Key, Base.Element, Value>, Element>

        @inlinable init(
            driver: EventTimeDriver<Base.AsyncIterator, WindowingStateMachine<Key, Base.Element, Value>, Element>
        ) {
            self.driver = driver
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Element? { try await driver.next() }
    }
}

extension AsyncWindowedSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// Aggregates the elements per key in event-time windows; see ``AsyncWindowedSequence``.
    ///
    /// ```swift
    /// let spend = payments.windowed(
    ///     .tumbling(.seconds(60)), key: \.customer, time: \.time,
    ///     outOfOrderness: .seconds(5), allowedLateness: .seconds(30),
    ///     aggregate: .sum(\.amount))
    /// for try await output in spend {
    ///     switch output {
    ///     case .window(let total): print(total.key, total.window, total.value)
    ///     case .late(let payment): audit(payment)
    ///     }
    /// }
    /// ```
    /// `earlyUpdates: true` also emits each window's aggregate (with `isFinal == false`) after
    /// every element it takes. Invalid sizes (not whole milliseconds, zero, a hop larger than the
    /// window, a session aggregation without `merge`) fail the first `next()` with
    /// ``StreamKitError/invalidArgument(_:)``.
    @inlinable public func windowed<Key: Hashable, Value>(
        _ windows: EventTimeWindows,
        key: @escaping @Sendable (Element) -> Key,
        time: @escaping @Sendable (Element) -> EventTime,
        outOfOrderness: Duration = .zero,
        allowedLateness: Duration = .zero,
        earlyUpdates: Bool = false,
        aggregate: WindowAggregation<Element, Value>
    ) -> AsyncWindowedSequence<Self, Key, Value> {
        AsyncWindowedSequence(
            base: self, windows: windows, outOfOrderness: outOfOrderness, allowedLateness: allowedLateness,
            earlyUpdates: earlyUpdates, aggregate: aggregate, key: key, time: time)
    }
}

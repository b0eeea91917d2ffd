/// Several sequences, each in event-time order, merged into one in event-time order.
///
/// Each input runs in its own task into a queue of `bufferSize` elements and waits while it is
/// full (back-pressure per input: memory is at most `bufferSize` elements per input). The
/// earliest head goes next, but only once every input has a head or has finished: the slowest
/// input holds the merge back, as it holds back the watermark of whatever follows. An input
/// that stays empty for `idleTimeout` (on `clock`, from the start or from when it last
/// emptied) no longer holds it back until it sends again; its elements then go out as soon as
/// they are the earliest head, even if later elements of other inputs went out before them
/// (the downstream watermark decides whether they are late). Without `idleTimeout`, a silent
/// input holds the merge back until it ends.
///
/// The merge completes when every input has. The first input error fails it at once and
/// cancels the other inputs; cancelling the consumer, or dropping its iterator, cancels every input.
public struct AsyncEventTimeMergeSequence<Upstream: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Upstream.Element: Sendable, C: Sendable, C.Duration == Duration {
    /// The type of element this sequence produces.
    public typealias Element = Upstream.Element
    /// The error the sequence may end with.
    public typealias Failure = any Error

    let upstreams: [Upstream]
    let time: @Sendable (Element) -> EventTime
    let bufferSize: Int
    let idleTimeout: Duration?
    let clock: C

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Iterator { Iterator(sequence: self) }

    /// The iterator of ``AsyncEventTimeMergeSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        let sequence: AsyncEventTimeMergeSequence
        var lifetime: EventTimeMergeLifetime<Element, C>? = nil

        init(sequence: AsyncEventTimeMergeSequence) { self.sequence = sequence }

        /// The next element, or `nil` once the sequence has ended.
        public mutating func next() async throws -> Element? {
            if lifetime == nil {
                if let idleTimeout = sequence.idleTimeout, idleTimeout <= .zero {
                    throw StreamKitError.invalidArgument(
                        "eventTimeMerge idleTimeout: \(idleTimeout) must be positive (or nil: never idle)")
                }
                // The inputs start, and idleness is measured, from the first demand.
                let storage = EventTimeMergeStorage<Element, C>(
                    inputCount: sequence.upstreams.count, bufferSize: sequence.bufferSize,
                    idleTimeout: sequence.idleTimeout, clock: sequence.clock)
                lifetime = EventTimeMergeLifetime(storage)
                storage.start(sequence.upstreams, time: sequence.time)
            }
            return try await lifetime?.storage.next()
        }
    }
}

/// Merges `upstreams`, each in event-time order, into one sequence in event-time order; see
/// ``AsyncEventTimeMergeSequence``.
///
/// ```swift
/// let activity = eventTimeMerge([logins, payments], time: \.time, idleTimeout: .seconds(30))
/// ```
public func eventTimeMerge<Upstream: AsyncSequence & Sendable, C: Clock>(
    _ upstreams: [Upstream], time: @escaping @Sendable (Upstream.Element) -> EventTime,
    bufferSize: Int = 16, idleTimeout: Duration?, clock: C
) -> AsyncEventTimeMergeSequence<Upstream, C> where Upstream.Element: Sendable, C.Duration == Duration {
    AsyncEventTimeMergeSequence(
        upstreams: upstreams, time: time, bufferSize: bufferSize, idleTimeout: idleTimeout, clock: clock)
}

/// ``eventTimeMerge(_:time:bufferSize:idleTimeout:clock:)`` with idleness measured on the continuous clock.
public func eventTimeMerge<Upstream: AsyncSequence & Sendable>(
    _ upstreams: [Upstream], time: @escaping @Sendable (Upstream.Element) -> EventTime,
    bufferSize: Int = 16, idleTimeout: Duration? = nil
) -> AsyncEventTimeMergeSequence<Upstream, ContinuousClock> where Upstream.Element: Sendable {
    AsyncEventTimeMergeSequence(
        upstreams: upstreams, time: time, bufferSize: bufferSize, idleTimeout: idleTimeout, clock: ContinuousClock())
}

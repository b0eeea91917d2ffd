/// A stream–stream inner join within an event-time window: pairs of a left and a right element
/// with the same key at most `window` apart; see `StreamJoinStateMachine`.
///
/// The base is the two inputs merged (``eventTimeJoin(_:_:leftKey:rightKey:leftTime:rightTime:within:outOfOrderness:bufferSize:idleTimeout:)``
/// merges them in event-time order, so the slower input holds the watermark back and each side's
/// buffer stays within the window). Back-pressure: pull-through. Memory: per key, the elements of
/// the last `window + outOfOrderness` of event time. An upstream error ends the sequence after
/// the pairs before it; cancelling the consumer cancels the inputs.
public struct AsyncStreamJoinSequence<Base: AsyncSequence, Key: Hashable, Left, Right>: AsyncSequence
where Base.Element == JoinSide<Left, Right> {
    /// The type of element this sequence produces.
    public typealias Element = JoinOutput<Left, Right>
    /// The error the sequence may end with.
    public typealias Failure = any Error

    let base: Base
    let window: Duration
    let outOfOrderness: Duration
    let key: @Sendable (JoinSide<Left, Right>) -> Key
    let time: @Sendable (JoinSide<Left, Right>) -> EventTime

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Iterator {
        let (window, outOfOrderness, key, time) = (window, outOfOrderness, key, time)
        return Iterator(
            driver: EventTimeDriver(
                base: base.makeAsyncIterator(),
                machine: Result { () throws(StreamKitError) in
                    try StreamJoinStateMachine(window: window, outOfOrderness: outOfOrderness)
                },
                receive: { machine, side, output in
                    machine.receive(side, key: key(side), time: time(side), into: &output)
                },
                finish: { _, _ in }))
    }

    /// The iterator of ``AsyncStreamJoinSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        var driver: EventTimeDriver<Base.AsyncIterator, StreamJoinStateMachine<Key, Left, Right>, Element>

        /// The next element, or `nil` once the sequence has ended.
        public mutating func next() async throws -> Element? { try await driver.next() }
    }
}

extension AsyncStreamJoinSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// Joins the left and right elements of an already merged sequence within `window` of event
    /// time; see ``AsyncStreamJoinSequence``. Prefer ``eventTimeJoin(_:_:leftKey:rightKey:leftTime:rightTime:within:outOfOrderness:bufferSize:idleTimeout:)``,
    /// which merges two inputs in event-time order first.
    public func joined<Key: Hashable, Left, Right>(
        within window: Duration,
        key: @escaping @Sendable (JoinSide<Left, Right>) -> Key,
        time: @escaping @Sendable (JoinSide<Left, Right>) -> EventTime,
        outOfOrderness: Duration = .zero
    ) -> AsyncStreamJoinSequence<Self, Key, Left, Right> {
        AsyncStreamJoinSequence(base: self, window: window, outOfOrderness: outOfOrderness, key: key, time: time)
    }
}

/// Joins two sequences by key within `window` of event time: each left element pairs with every
/// right element of the same key at most `window` before or after it.
///
/// ```swift
/// let paidOrders = eventTimeJoin(
///     orders, payments, leftKey: \.orderID, rightKey: \.orderID,
///     leftTime: \.time, rightTime: \.time, within: .seconds(10 * 60), idleTimeout: .seconds(30))
/// for try await output in paidOrders {
///     if case .joined(let order, let payment) = output { ship(order, payment) }
/// }
/// ```
/// The inputs are merged in event-time order (``eventTimeMerge(_:time:bufferSize:idleTimeout:)``,
/// so the slower holds the other back, up to `idleTimeout`), then joined; `outOfOrderness` is how
/// far each input may itself be out of order. A `window` or `outOfOrderness` that is not a whole
/// number of milliseconds fails the first `next()` with ``StreamKitError/invalidArgument(_:)``.
public func eventTimeJoin<Left: AsyncSequence & Sendable, Right: AsyncSequence & Sendable, Key: Hashable & Sendable>(
    _ left: Left, _ right: Right,
    leftKey: @escaping @Sendable (Left.Element) -> Key, rightKey: @escaping @Sendable (Right.Element) -> Key,
    leftTime: @escaping @Sendable (Left.Element) -> EventTime,
    rightTime: @escaping @Sendable (Right.Element) -> EventTime,
    within window: Duration, outOfOrderness: Duration = .zero, bufferSize: Int = 16, idleTimeout: Duration? = nil
) -> AsyncStreamJoinSequence<
    AsyncEventTimeMergeSequence<AnyAsyncSequence<JoinSide<Left.Element, Right.Element>>, ContinuousClock>, Key,
    Left.Element, Right.Element
> where Left.Element: Sendable, Right.Element: Sendable {
    typealias Side = JoinSide<Left.Element, Right.Element>
    let time: @Sendable (Side) -> EventTime = { side in
        switch side {
        case .left(let element): leftTime(element)
        case .right(let element): rightTime(element)
        }
    }
    let inputs: [AnyAsyncSequence<Side>] = [
        AnyAsyncSequence(left.map { Side.left($0) }), AnyAsyncSequence(right.map { Side.right($0) }),
    ]
    return eventTimeMerge(inputs, time: time, bufferSize: bufferSize, idleTimeout: idleTimeout).joined(
        within: window,
        key: { side in
            switch side {
            case .left(let element): leftKey(element)
            case .right(let element): rightKey(element)
            }
        },
        time: time, outOfOrderness: outOfOrderness)
}

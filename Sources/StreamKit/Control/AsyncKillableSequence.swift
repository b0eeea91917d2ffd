/// A base sequence that a kill switch can end at any moment.
///
/// The upstream runs in a reader task with a one-element look-ahead, so the
/// switch ends the stream at once even while the upstream is quiet: on
/// `shutdown()` the consumer sees the end, on `abort(error)` the error;
/// either way the look-ahead is dropped and the upstream cancelled.
/// Cancelling the consumer cancels the upstream too.
public struct AsyncKillableSequence<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable
where Base.Element: Sendable {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let core: KillSwitchCore

    @inlinable init(base: Base, core: KillSwitchCore) {
        self.base = base
        self.core = core
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(lifetime: KillableLifetime(Pump(base, capacity: 1), core: core))
    }

    /// The iterator of ``AsyncKillableSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: KillableLifetime<Base>

        @inlinable init(lifetime: KillableLifetime<Base>) { self.lifetime = lifetime }

        @inlinable public mutating func next() async throws -> Element? {
            lifetime.attach()
            while true {
                switch await lifetime.pump.next() {
                case .element(let element): return element
                case .finished(let error?): throw error
                case .finished(nil): return nil
                case .tick: continue
                }
            }
        }
    }
}

/// Connects one iteration's pump to a kill switch, and cancels it when the iterator goes away.
@usableFromInline final class KillableLifetime<Base: AsyncSequence & Sendable>: @unchecked Sendable
where Base.Element: Sendable {
    @usableFromInline let pump: Pump<Base>
    @usableFromInline let core: KillSwitchCore
    /// Set once by the consuming task on its first `next()`.
    @usableFromInline var registration: Int?? = nil

    @inlinable init(_ pump: Pump<Base>, core: KillSwitchCore) {
        self.pump = pump
        self.core = core
    }

    @inlinable func attach() {
        guard registration == nil else { return }
        let pump = self.pump
        registration = .some(core.register { error in pump.abort(error) })
    }

    deinit {
        if case .some(.some(let id)) = registration { core.unregister(id) }
        pump.cancel()
    }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Lets `killSwitch` complete or fail this sequence from outside.
    ///
    /// ```swift
    /// let stop = SharedKillSwitch()
    /// for try await event in events.killable(by: stop) { … }   // stop.shutdown() ends the loop
    /// ```
    @inlinable public func killable(by killSwitch: SharedKillSwitch) -> AsyncKillableSequence<Self> {
        AsyncKillableSequence(base: self, core: killSwitch.core)
    }
}

extension Source {
    /// Adds a kill switch for this stream; it is materialized beside the source's own value.
    ///
    /// ```swift
    /// let source = Source(ticks).killSwitch()
    /// let (_, killSwitch) = source.materialized
    /// killSwitch.shutdown()
    /// ```
    @inlinable public func killSwitch() -> Source<AsyncKillableSequence<Base>, (Materialized, UniqueKillSwitch)> {
        let killSwitch = UniqueKillSwitch()
        return Source<AsyncKillableSequence<Base>, (Materialized, UniqueKillSwitch)>(
            AsyncKillableSequence(base: base, core: killSwitch.core), materialized: (materialized, killSwitch))
    }

    /// Lets a shared kill switch complete or fail this stream, keeping the materialized value.
    @inlinable public func killable(by killSwitch: SharedKillSwitch) -> Source<
        AsyncKillableSequence<Base>, Materialized
    > {
        Source<AsyncKillableSequence<Base>, Materialized>(
            AsyncKillableSequence(base: base, core: killSwitch.core), materialized: materialized)
    }
}

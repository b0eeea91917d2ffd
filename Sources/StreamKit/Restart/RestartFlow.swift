import Synchronization

/// Flows that restart the stage they wrap, with exponential backoff:
/// Akka's `RestartFlow`.
public enum RestartFlow {
    /// Applies `makeFlow` to the upstream; when the flow's output fails, waits
    /// the backoff and applies a fresh flow to the rest of the same upstream,
    /// until `maxRestarts` is exhausted (then the failure is thrown).
    ///
    /// ```swift
    /// let enriched = orders.via(RestartFlow.withBackoff(settings) { upstream in
    ///     upstream.mapAsync(parallelism: 4) { try await pricing.quote($0) }
    /// })
    /// ```
    /// Elements the failed flow had pulled but not emitted are lost (as in
    /// Akka). An upstream failure or completion is not restarted: it ends the
    /// stream. Cancelling the consumer cancels the flow and the upstream.
    @inlinable
    public static func withBackoff<Input: Sendable, Output: Sendable, Downstream: AsyncSequence & Sendable, C: Clock>(
        _ settings: RestartSettings, clock: C,
        _ makeFlow: @escaping @Sendable (AnyAsyncSequence<Input>) -> Downstream
    ) -> FlowOf<Input, Output> where Downstream.Element == Output, C: Sendable, C.Duration == Duration {
        FlowOf<Input, Output> { upstream in
            RestartFlowSequence(upstream: upstream, settings: settings, clock: clock, makeFlow: makeFlow)
        }
    }

    /// ``withBackoff(_:clock:_:)`` on the continuous clock.
    @inlinable public static func withBackoff<Input: Sendable, Output: Sendable, Downstream: AsyncSequence & Sendable>(
        _ settings: RestartSettings,
        _ makeFlow: @escaping @Sendable (AnyAsyncSequence<Input>) -> Downstream
    ) -> FlowOf<Input, Output> where Downstream.Element == Output {
        withBackoff(settings, clock: ContinuousClock(), makeFlow)
    }
}

/// One upstream iterator shared by the successive incarnations of a restarted flow.
@usableFromInline final class SharedUpstream<Element: Sendable>: @unchecked Sendable {
    /// Used by one incarnation at a time: the previous one has failed before the next starts.
    @usableFromInline var iterator: AnyAsyncSequence<Element>.Iterator
    /// Set when the upstream itself ended (then the flow is not restarted).
    @usableFromInline let ended = Mutex(false)

    @inlinable init(_ upstream: AnyAsyncSequence<Element>) {
        iterator = upstream.makeAsyncIterator()
    }

    @inlinable func next() async throws -> Element? {
        do {
            let element = try await iterator.next()
            if element == nil { ended.withLock { $0 = true } }
            return element
        } catch {
            ended.withLock { $0 = true }
            throw error
        }
    }
}

/// The view of a ``SharedUpstream`` one flow incarnation gets.
@usableFromInline struct SharedUpstreamSequence<Element: Sendable>: AsyncSequence, Sendable {
    @usableFromInline typealias Failure = any Error
    @usableFromInline let shared: SharedUpstream<Element>
    @inlinable init(shared: SharedUpstream<Element>) { self.shared = shared }
    @inlinable func makeAsyncIterator() -> Iterator { Iterator(shared: shared) }

    @usableFromInline struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let shared: SharedUpstream<Element>
        @inlinable init(shared: SharedUpstream<Element>) { self.shared = shared }
        @inlinable mutating func next() async throws -> Element? { try await shared.next() }
    }
}

/// The output of a restarting flow.
@usableFromInline
struct RestartFlowSequence<Input: Sendable, Downstream: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where C: Sendable, C.Duration == Duration {
    @usableFromInline typealias Element = Downstream.Element
    @usableFromInline typealias Failure = any Error

    @usableFromInline let upstream: AnyAsyncSequence<Input>
    @usableFromInline let settings: RestartSettings
    @usableFromInline let clock: C
    @usableFromInline let makeFlow: @Sendable (AnyAsyncSequence<Input>) -> Downstream

    @inlinable init(
        upstream: AnyAsyncSequence<Input>, settings: RestartSettings, clock: C,
        makeFlow: @escaping @Sendable (AnyAsyncSequence<Input>) -> Downstream
    ) {
        self.upstream = upstream
        self.settings = settings
        self.clock = clock
        self.makeFlow = makeFlow
    }

    @inlinable func makeAsyncIterator() -> Iterator {
        let shared = SharedUpstream(upstream)
        let makeFlow = self.makeFlow
        let incarnations = AsyncRestartSequence(
            settings: settings, clock: clock, restartOnCompletion: false,
            isFinal: { shared.ended.withLock { $0 } }
        ) {
            makeFlow(AnyAsyncSequence(SharedUpstreamSequence(shared: shared)))
        }
        return Iterator(restarting: incarnations.makeAsyncIterator(), shared: shared)
    }

    @usableFromInline struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var restarting: AsyncRestartSequence<Downstream, C>.Iterator
        @usableFromInline let shared: SharedUpstream<Input>

        @inlinable init(restarting: AsyncRestartSequence<Downstream, C>.Iterator, shared: SharedUpstream<Input>) {
            self.restarting = restarting
            self.shared = shared
        }

        @inlinable mutating func next() async throws -> Element? {
            try await restarting.next()
        }
    }
}

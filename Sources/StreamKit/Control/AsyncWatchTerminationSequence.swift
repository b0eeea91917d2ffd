import Synchronization

/// How a stream ended.
public enum StreamTermination: Sendable {
    /// The upstream completed and the consumer saw the end.
    case finished
    /// The stream failed with this error.
    case failed(any Error)
    /// The consumer stopped before the end (cancelled, or dropped its iterator).
    case cancelled
}

/// A base sequence that reports how it ended: Akka's `watchTermination`.
///
/// `onTermination` runs exactly once per iteration: at the end, on the
/// error, or when the iterator is dropped before either (cancellation).
/// Elements pass through unchanged, pull-through.
public struct AsyncWatchTerminationSequence<Base: AsyncSequence>: AsyncSequence {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let onTermination: @Sendable (StreamTermination) -> Void

    @inlinable init(base: Base, onTermination: @escaping @Sendable (StreamTermination) -> Void) {
        self.base = base
        self.onTermination = onTermination
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), reporter: TerminationReporter(onTermination))
    }

    /// The iterator of ``AsyncWatchTerminationSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline let reporter: TerminationReporter

        @inlinable init(base: Base.AsyncIterator, reporter: TerminationReporter) {
            self.base = base
            self.reporter = reporter
        }

        @inlinable public mutating func next() async throws -> Element? {
            do {
                guard let element = try await base.next() else {
                    reporter.report(.finished)
                    return nil
                }
                return element
            } catch {
                reporter.report(.failed(error))
                throw error
            }
        }
    }
}

extension AsyncWatchTerminationSequence: Sendable where Base: Sendable {}

/// Reports a termination once; reports `.cancelled` if dropped before anything else.
@usableFromInline final class TerminationReporter: Sendable {
    @usableFromInline let reported = Mutex(false)
    @usableFromInline let onTermination: @Sendable (StreamTermination) -> Void

    @inlinable init(_ onTermination: @escaping @Sendable (StreamTermination) -> Void) {
        self.onTermination = onTermination
    }

    @inlinable func report(_ termination: StreamTermination) {
        let first = reported.withLock { reported in
            defer { reported = true }
            return !reported
        }
        if first { onTermination(termination) }
    }

    deinit { report(.cancelled) }
}

/// A stream's termination that can be awaited: what ``Source/watchTermination()`` materializes.
public final class TerminationWatcher: Sendable {
    @usableFromInline let state = Mutex<
        (termination: StreamTermination?, waiters: [UnsafeContinuation<StreamTermination, Never>])
    >((nil, []))

    @usableFromInline init() {}

    /// Suspends until the stream has ended, then says how.
    public func termination() async -> StreamTermination {
        await withUnsafeContinuation { continuation in
            let done = state.withLock { state -> StreamTermination? in
                if let termination = state.termination { return termination }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    @usableFromInline func complete(_ termination: StreamTermination) {
        let waiters = state.withLock { state -> [UnsafeContinuation<StreamTermination, Never>] in
            guard state.termination == nil else { return [] }
            state.termination = termination
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: termination) }
    }
}

extension AsyncSequence {
    /// Calls `onTermination` once with how the stream ended.
    ///
    /// ```swift
    /// let watched = orders.watchTermination { log.info("orders stream ended: \($0)") }
    /// ```
    @inlinable public func watchTermination(
        _ onTermination: @escaping @Sendable (StreamTermination) -> Void
    ) -> AsyncWatchTerminationSequence<Self> {
        AsyncWatchTerminationSequence(base: self, onTermination: onTermination)
    }
}

extension Source {
    /// Materializes a ``TerminationWatcher`` beside the source's own value.
    ///
    /// ```swift
    /// let graph = source.watchTermination().to(sink)
    /// let (_, watcher) = graph.materialized
    /// _ = graph.start()
    /// if case .failed(let error) = await watcher.termination() { … }
    /// ```
    @inlinable public func watchTermination() -> Source<
        AsyncWatchTerminationSequence<Base>, (Materialized, TerminationWatcher)
    > {
        let watcher = TerminationWatcher()
        return Source<AsyncWatchTerminationSequence<Base>, (Materialized, TerminationWatcher)>(
            base.watchTermination { watcher.complete($0) }, materialized: (materialized, watcher))
    }
}

import Synchronization

/// A clock whose time moves only when told to: tests drive time-based
/// operators with it instead of sleeping.
///
/// `sleep(until:)` suspends until ``advance(by:)`` (or ``advance(to:)``) moves
/// `now` to or past the deadline; cancelling the sleeping task ends the sleep
/// with `CancellationError`. ``waitForSleepers(count:)`` lets a test wait until
/// the code under test has started sleeping, so it advances time at the right
/// moment without polling.
///
/// ```swift
/// let clock = ManualClock()
/// let groups = source.groupedWithin(count: 10, duration: .seconds(1), clock: clock)
/// await clock.waitForSleepers(count: 1)
/// clock.advance(by: .seconds(1))
/// ```
public final class ManualClock: Clock, Sendable {
    public typealias Duration = Swift.Duration

    /// A point in a ``ManualClock``'s time: the duration since the clock was created.
    public struct Instant: InstantProtocol, Sendable, Hashable, CustomStringConvertible {
        /// Time since the clock's origin.
        public var offset: Swift.Duration

        /// The instant `offset` after the clock's origin.
        public init(offset: Swift.Duration) { self.offset = offset }

        public func advanced(by duration: Swift.Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Swift.Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
        public var description: String { "ManualClock.Instant(\(offset))" }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: UnsafeContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID: UInt64 = 0
        var sleepers: [UInt64: Sleeper] = [:]
        var cancelledBeforeRegistration: Set<UInt64> = []
        var sleeperWaiters: [(count: Int, continuation: UnsafeContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    /// A clock at instant zero.
    public init() {}

    /// The current time.
    public var now: Instant { state.withLock { $0.now } }

    /// Zero: a manual clock resolves any duration.
    public var minimumResolution: Swift.Duration { .zero }

    /// How many tasks are currently sleeping on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Suspends until `now` reaches `deadline`.
    public func sleep(until deadline: Instant, tolerance: Swift.Duration? = nil) async throws {
        try Task.checkCancellation()
        let id: UInt64? = state.withLock { state in
            if deadline <= state.now { return nil }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let (resumeNow, waiters): (Result<Void, any Error>?, [UnsafeContinuation<Void, Never>]) = state.withLock
                { state in
                    if state.cancelledBeforeRegistration.remove(id) != nil {
                        return (.failure(CancellationError()), [])
                    }
                    if deadline <= state.now { return (.success(()), []) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return (nil, Self.takeSatisfiedWaiters(&state))
                }
                for waiter in waiters { waiter.resume() }
                if let resumeNow { continuation.resume(with: resumeNow) }
            }
        } onCancel: {
            let sleeper: Sleeper? = state.withLock { state in
                if let sleeper = state.sleepers.removeValue(forKey: id) { return sleeper }
                state.cancelledBeforeRegistration.insert(id)
                return nil
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward by `duration`, waking every sleeper whose deadline is reached, earliest first.
    public func advance(by duration: Swift.Duration) {
        let target = state.withLock { $0.now.advanced(by: duration) }
        advance(to: target)
    }

    /// Moves time forward to `instant` (never backwards), waking every sleeper whose deadline is reached.
    public func advance(to instant: Instant) {
        let due: [Sleeper] = state.withLock { state in
            if instant > state.now { state.now = instant }
            let now = state.now
            let dueIDs = state.sleepers.filter { $0.value.deadline <= now }.keys
            var due = dueIDs.compactMap { state.sleepers.removeValue(forKey: $0) }
            due.sort { $0.deadline < $1.deadline }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Suspends until at least `count` tasks sleep on this clock.
    ///
    /// Use it before ``advance(by:)`` so that time moves only once the code
    /// under test is actually waiting for it.
    public func waitForSleepers(count: Int = 1) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let ready: Bool = state.withLock { state in
                if state.sleepers.count >= count { return true }
                state.sleeperWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private static func takeSatisfiedWaiters(_ state: inout State) -> [UnsafeContinuation<Void, Never>] {
        let count = state.sleepers.count
        var ready: [UnsafeContinuation<Void, Never>] = []
        state.sleeperWaiters.removeAll { waiter in
            if waiter.count <= count {
                ready.append(waiter.continuation)
                return true
            }
            return false
        }
        return ready
    }
}

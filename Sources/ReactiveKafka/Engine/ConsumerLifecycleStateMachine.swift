/// The life of a consumer engine, as a pure state machine (no I/O, no clock reads).
///
/// Who holds the engine:
/// - **leases**: each iterator reading from it (a source, a partition's
///   sub-stream, a source sharing the consumer) holds one from its first pull
///   until its stream ends, however it ends (completion, failure,
///   cancellation, `break`, `take(n)`, the iterator dropped);
/// - **committers**: each ``Committer`` run that committed through it, from
///   its first offset until it has flushed (so an emergency commit after an
///   upstream failure still lands);
/// - **emitted offsets** (committable sources): every ``CommittableOffset``
///   still alive anywhere downstream (in a flow, a buffer, a committer's batch)
///   may yet be committed, so an ended stream's consumer waits for them to be
///   committed or dropped (the engine counts them; events say whether any is left).
///
/// What each ending does:
/// - ``stop(now:closeAfter:)`` completes the sources and keeps the consumer
///   in its group so that commits of records still in flight downstream land
///   (through a committer or by hand): it closes at ``shutdown()`` (a drain
///   does that once the stream is done), or `closeAfter` later at the latest.
/// - The last lease released while running (the stream ended without a
///   stop) completes the sources too, and closes as soon as the committers
///   have flushed and no emitted offset is left, `committerGrace` later at the
///   latest: the consumer leaves its group promptly, never after the session timeout.
/// - ``shutdown()`` closes at once.
///
/// A consumer owned by something other than its sources (a shared
/// ``KafkaConsumer``) ends only by ``shutdown()``.
struct ConsumerLifecycleStateMachine {
    enum Phase: Equatable {
        case running
        /// Sources complete; the consumer stays in the group so commits land.
        case stopped
        /// Leaving the group and tearing down.
        case closing
        case closed
    }

    /// What the engine does after an event.
    enum Action: Equatable {
        case none
        /// Complete the sources (readers get `nil`), pause fetching.
        case completeSources
        /// Start closing: leave the group, destroy the client.
        case close
        case completeSourcesAndClose
    }

    private(set) var phase: Phase = .running
    private(set) var leases = 0
    private(set) var committers: Set<ObjectIdentifier> = []
    /// True when the end of the sources ends the engine (false: an owner such as a shared consumer does).
    let endsWithItsSources: Bool
    /// When a stopped consumer closes even though something still holds it.
    private(set) var closeDeadline: ContinuousClock.Instant?
    /// Set once the first lease was taken: from then on, no lease means every source ended.
    private var everLeased = false
    /// The sources ended without a stop: close as soon as the committers have flushed.
    private var closesWhenCommittersFlush = false

    init(endsWithItsSources: Bool) {
        self.endsWithItsSources = endsWithItsSources
    }

    var isRunning: Bool { phase == .running }
    /// Closing or closed: nothing new may be queued.
    var isEnding: Bool { phase == .closing || phase == .closed }

    private var sourcesEnded: Bool { endsWithItsSources && everLeased && leases == 0 }

    /// An iterator starts reading. Refused (false) once the consumer is closing.
    mutating func leaseTaken() -> Bool {
        guard !isEnding else { return false }
        leases += 1
        everLeased = true
        return true
    }

    /// An iterator's stream ended; `offsetsOutstanding`: emitted offsets are still alive downstream.
    mutating func leaseReleased(
        now: ContinuousClock.Instant, committerGrace: Duration, offsetsOutstanding: Bool = false
    ) -> Action {
        leases = max(0, leases - 1)
        guard sourcesEnded else { return .none }
        guard phase == .running else { return .none }
        phase = .stopped
        closesWhenCommittersFlush = true
        if committers.isEmpty && !offsetsOutstanding { return closing(.completeSourcesAndClose) }
        closeDeadline = earlier(closeDeadline, now + committerGrace)
        return .completeSources
    }

    /// Completes the sources; the consumer closes once nothing holds it, or
    /// `closeAfter` from `now` at the latest (`nil`: only when nothing holds it, or at shutdown).
    mutating func stop(now: ContinuousClock.Instant, closeAfter: Duration?) -> Action {
        guard phase == .running else {
            // A drain that starts after a plain stop takes the stop timer over.
            if phase == .stopped, closeAfter == nil, leases > 0 || !committers.isEmpty { closeDeadline = nil }
            return .none
        }
        phase = .stopped
        closeDeadline = closeAfter.map { now + $0 }
        return .completeSources
    }

    /// Closes now (sources complete first if they have not).
    mutating func shutdown() -> Action {
        switch phase {
        case .running: return closing(.completeSourcesAndClose)
        case .stopped: return closing(.close)
        case .closing, .closed: return .none
        }
    }

    /// A committer will commit through this consumer until it detaches.
    mutating func committerAttached(_ id: ObjectIdentifier) {
        guard !isEnding else { return }
        committers.insert(id)
    }

    /// A committer has flushed what it held; `offsetsOutstanding`: emitted offsets are still alive downstream.
    mutating func committerDetached(_ id: ObjectIdentifier, offsetsOutstanding: Bool = false) -> Action {
        guard committers.remove(id) != nil, committers.isEmpty, !offsetsOutstanding, phase == .stopped,
            closesWhenCommittersFlush
        else { return .none }
        return closing(.close)
    }

    /// The last emitted offset alive downstream was committed or dropped.
    mutating func emittedOffsetsReleased() -> Action {
        guard committers.isEmpty, phase == .stopped, closesWhenCommittersFlush else { return .none }
        return closing(.close)
    }

    /// Time passed: a stopped consumer past its deadline closes.
    mutating func tick(now: ContinuousClock.Instant) -> Action {
        guard phase == .stopped, let deadline = closeDeadline, now >= deadline else { return .none }
        return closing(.close)
    }

    /// The engine finished closing.
    mutating func closed() {
        phase = .closed
        closeDeadline = nil
    }

    private func earlier(_ a: ContinuousClock.Instant?, _ b: ContinuousClock.Instant) -> ContinuousClock.Instant {
        a.map { min($0, b) } ?? b
    }

    private mutating func closing(_ action: Action) -> Action {
        phase = .closing
        closeDeadline = nil
        return action
    }
}

import Foundation
import ReactiveKafka
import Synchronization

/// Stands in for a consumer behind the committable offsets the testkit's factories make
/// (Alpakka's `ConsumerResultFactory` offsets): every commit that reaches it, through
/// ``Committer`` or ``CommittableOffset/commit()``, is recorded in order, and can be
/// inspected or awaited. Told to, it refuses commits, to test error paths.
///
/// ```swift
/// let committer = RecordingCommitter()
/// let offset = try ConsumerResultFactory.committableOffset(topic: "orders", partition: 0, offset: 41, committer: committer)
/// try await offset.commit()
/// committer.committedOffsets // [orders-0: 42]
/// ```
public final class RecordingCommitter: Sendable {
    /// One commit, as the committer received it.
    public struct Commit: Sendable, Equatable, CustomStringConvertible {
        /// The next offset to read per partition: the committed record's offset + 1.
        public let offsets: [TopicPartition: Int64]
        /// The metadata committed with the offsets, for the partitions that had some.
        public let metadata: [TopicPartition: String]
        /// False for a commit sent without waiting for its outcome
        /// (``CommitterSettings/Delivery/sendAndForget``, ``CommittableOffsetBatch/commitAndForget()``).
        public let awaited: Bool

        /// A commit of `offsets` (next offsets to read) with `metadata`, for comparing with ``RecordingCommitter/commits``.
        public init(offsets: [TopicPartition: Int64], metadata: [TopicPartition: String] = [:], awaited: Bool = true) {
            self.offsets = offsets
            self.metadata = metadata
            self.awaited = awaited
        }

        public var description: String {
            "Commit(" + offsets.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ", ") + ")"
        }
    }

    private struct Waiter {
        let expected: [TopicPartition: Int64]
        let continuation: CheckedContinuation<Void, any Error>
        /// Ends the wait at its deadline; cancelled when the wait ends otherwise.
        var timer: Task<Void, Never>?
    }

    private struct State {
        var commits: [Commit] = []
        var refused: [Commit] = []
        var failure: KafkaError?
        /// How many more commits to refuse; nil: every one until ``acceptCommits()``.
        var failuresLeft: Int?
        var waiters: [UUID: Waiter] = [:]
    }

    private let state = Mutex(State())

    /// A committer that accepts every commit.
    public init() {}

    /// The commits accepted so far, in the order they arrived.
    public var commits: [Commit] { state.withLock { $0.commits } }

    /// The commits refused so far (see ``failCommits(with:count:)``), in order.
    public var refusedCommits: [Commit] { state.withLock { $0.refused } }

    /// The latest committed next offset per partition: where a consumer of the group would resume.
    public var committedOffsets: [TopicPartition: Int64] { state.withLock { Self.latest($0.commits) } }

    /// Refuses the next `count` commits (every commit when `count` is nil, until
    /// ``acceptCommits()``) by throwing `error` to whoever awaits them.
    public func failCommits(with error: KafkaError, count: Int? = nil) {
        state.withLock { s in
            s.failure = error
            s.failuresLeft = count.map { max(0, $0) }
        }
    }

    /// Accepts every commit from now on.
    public func acceptCommits() {
        state.withLock { s in
            s.failure = nil
            s.failuresLeft = nil
        }
    }

    /// Returns once the committed next offset of every partition in `offsets` has reached
    /// its value (a record's offset + 1), at once if it already has.
    ///
    /// - Throws: ``KafkaError/Kind/commitTimeout`` when that did not happen within `timeout`
    ///   (naming what was expected and what was committed), ``KafkaError/Kind/cancelled``
    ///   when the waiting task is cancelled.
    public func waitUntilCommitted(_ offsets: [TopicPartition: Int64], timeout: Duration = .seconds(10))
        async throws(KafkaError)
    {
        let id = UUID()
        do {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let reached = state.withLock { s -> Bool in
                        if Self.reached(offsets, in: Self.latest(s.commits)) { return true }
                        s.waiters[id] = Waiter(expected: offsets, continuation: continuation)
                        return false
                    }
                    if reached {
                        continuation.resume()
                    } else if Task.isCancelled {
                        resumeWaiter(id, with: KafkaError(.cancelled, "waiting for commits was cancelled"))
                    } else {
                        // One deadline, not a poll; cancelled when the commits come first.
                        let timer = Task { [weak self] in
                            do { try await Task.sleep(for: timeout) } catch { return }
                            guard let self else { return }
                            self.resumeWaiter(
                                id,
                                with: KafkaError(
                                    .commitTimeout,
                                    "expected commits \(Self.describe(offsets)) within \(timeout); committed so far: \(Self.describe(self.committedOffsets))"
                                ))
                        }
                        let waiting = state.withLock { s -> Bool in
                            s.waiters[id]?.timer = timer
                            return s.waiters[id] != nil
                        }
                        if !waiting { timer.cancel() }
                    }
                }
            } onCancel: {
                resumeWaiter(id, with: KafkaError(.cancelled, "waiting for commits was cancelled"))
            }
        } catch let error as KafkaError {
            throw error
        } catch {
            throw KafkaError(.fatal, "waiting for commits: \(error)")
        }
    }

    private func resumeWaiter(_ id: UUID, with error: KafkaError) {
        guard let waiter = state.withLock({ $0.waiters.removeValue(forKey: id) }) else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(throwing: error)
    }

    /// Records `offsets` (or refuses them) and resumes the waiters they satisfy.
    private func receive(_ offsets: [TopicPartition: CommitPosition], awaited: Bool) -> KafkaError? {
        let commit = Commit(
            offsets: offsets.mapValues(\.nextOffset),
            metadata: offsets.compactMapValues(\.metadata),
            awaited: awaited)
        let (failure, satisfied) = state.withLock { s -> (KafkaError?, [Waiter]) in
            if let failure = s.failure {
                if let left = s.failuresLeft {
                    if left <= 1 {
                        s.failure = nil
                        s.failuresLeft = nil
                    } else {
                        s.failuresLeft = left - 1
                    }
                }
                s.refused.append(commit)
                return (failure, [])
            }
            s.commits.append(commit)
            let latest = Self.latest(s.commits)
            let done = s.waiters.filter { Self.reached($0.value.expected, in: latest) }
            for id in done.keys { s.waiters.removeValue(forKey: id) }
            return (nil, Array(done.values))
        }
        for waiter in satisfied {
            waiter.timer?.cancel()
            waiter.continuation.resume()
        }
        return failure
    }

    private static func latest(_ commits: [Commit]) -> [TopicPartition: Int64] {
        var latest: [TopicPartition: Int64] = [:]
        for commit in commits { latest.merge(commit.offsets) { _, new in new } }
        return latest
    }

    private static func reached(_ expected: [TopicPartition: Int64], in committed: [TopicPartition: Int64]) -> Bool {
        expected.allSatisfy { partition, offset in (committed[partition] ?? -1) >= offset }
    }

    private static func describe(_ offsets: [TopicPartition: Int64]) -> String {
        "[" + offsets.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }
}

extension RecordingCommitter: OffsetCommitter {
    package func commit(_ offsets: [TopicPartition: CommitPosition]) async throws(KafkaError) {
        if let failure = receive(offsets, awaited: true) { throw failure }
    }

    package func commitAndForget(_ offsets: [TopicPartition: CommitPosition]) {
        _ = receive(offsets, awaited: false)
    }
}

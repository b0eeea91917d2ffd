import CRdKafka
import Logging
import StreamKit
import Synchronization

/// One run of a transactional sink or flow: the shell that drives a
/// ``TransactionStateMachine`` with a pump (pulls messages and produces their
/// records into the open transaction) and a committer (commits every
/// `eosCommitInterval`, or at once when asked).
///
/// - The pump produces from its own task without any lock but two short ones
///   per message (the gate in and out); librdkafka's transactional calls run
///   on the producer's ``BlockingCallThread``.
/// - Demand is suspended while a transaction commits: the committer closes the
///   gate, waits until the pump has finished the message in hand, flushes,
///   sends the offsets, commits, and opens the gate again.
/// - After an abort the sources rewind before the gate opens, and records of
///   the rewound partitions that were already on their way (consumed after the
///   aborted transaction's last record) are dropped until the replay arrives, so
///   that nothing is produced twice and nothing skipped. This relies on the
///   stream keeping each partition's order between source and sink.
/// - A flow emits each message's result once its transaction has committed
///   (never for an aborted one), in input order.
final class TransactionalStageRun<Key: Sendable, Value: Sendable>: DeliveryReceiver, TransactionalSinkHandle,
    TransactionMachineHost, @unchecked Sendable
{
    typealias Message = ProducerMessage<Key, Value, TransactionalOffset>
    typealias Result = ProducerResult<Key, Value, TransactionalOffset>

    /// Where one produced record was written.
    struct Outcome {
        var partition: Int32 = -1
        var offset: Int64 = -1
        var timestamp: KafkaTimestamp?
    }

    /// A message of the open transaction, kept until it commits: a flow's result, and what the
    /// last transaction is produced again from (see `replayLastTransaction`).
    struct Held {
        var message: Message
        var firstRecord: Int
    }

    enum Ending {
        /// Upstream completed: commit what is open, then stop.
        case complete
        /// Upstream failed or the run was cancelled: abort what is open, then fail with this.
        case abort(any Error)

        var isComplete: Bool {
            if case .complete = self { true } else { false }
        }
    }

    struct State {
        var machine = TransactionStateMachine()
        var readAhead: TransactionalReadAhead<Prepared>?
        var pumpBusy = false
        var committing = false
        var pump: UnsafeContinuation<Void, Never>?
        var pumpSpace: UnsafeContinuation<Void, Never>?
        var committerForPump: UnsafeContinuation<Void, Never>?
        var committer: UnsafeContinuation<Void, Never>?
        var sleeper: Task<Void, Never>?
        var deadline: ContinuousClock.Instant?
        var commitNow = false
        var abortNow = false
        var ending: Ending?
        var failure: (any Error)?
        var finished = false
        var sources: [ObjectIdentifier: any TransactionalSourceLink] = [:]
        /// Numbers the transactions, so delivery reports of an aborted one are recognised.
        var transaction: UInt64 = 1
        /// The open transaction holds a message no source can replay.
        var unrewindable = false
        /// The open transaction's messages: a flow's results once it commits, and what is produced
        /// again when the stream's last transaction is refused for its generation (see `replay`).
        var held: [Held] = []
        /// The messages of the stream's last transaction, aborted as upstream completed because its
        /// offsets carried a generation a rebalance had just replaced: the commit loop produces
        /// them again in a new transaction (no rewind can, upstream has ended).
        var replay: [Message]?
        var outcomes: [Outcome] = []
        var ready: [Result] = []
        var downstream: UnsafeContinuation<Void, Never>?
        /// Every topic produced to, to name it in errors where the message is no longer held.
        var topics: Set<String> = []
        /// The first record of the open transaction that librdkafka could not deliver.
        var deliveryFailure: DeliveryReport?
        /// Transactions aborted since the last commit.
        var consecutiveAborts = 0
        /// Partitions rewound after an abort → the highest offset the aborted transaction
        /// consumed: newer records of them were consumed before the rewind and are dropped.
        var stale: [TopicPartition: Int64] = [:]
        /// The shared partition object of the last message let in since the transaction began:
        /// its source was looked at.
        var lastEntered: TransactionalPartition?
        /// Every shared partition object of the open transaction: its offsets are sent with
        /// their source's current metadata, unless one of them has ended (see `offsetsGroup`).
        var entered: [ObjectIdentifier: TransactionalPartition] = [:]
        /// The group metadata the open transaction's offsets were last sent with.
        var sentMetadata: ConsumerGroupMetadata?
        /// Metadata the coordinator refused for its generation or member id: the next offsets wait
        /// for the source to have other metadata (see `offsetsGroup`).
        var refusedMetadata: ConsumerGroupMetadata?
        /// Messages until the pump reads the clock again (see `gate`).
        var untilClock = 0
    }

    /// How many messages the pump lets in between two looks at the commit deadline.
    static var clockEvery: Int { 64 }

    let settings: ProducerSettings<Key, Value>
    let interval: Duration
    let transactionalProducer: TransactionalProducerEngine
    let emitsResults: Bool
    let logger: Logger
    /// The most messages a flow keeps for results (open transaction plus results not yet taken).
    let lookAhead: Int
    let parallelism: Int
    let state = Mutex(State())
    let inFlight = Atomic<Int>(0)
    let spaceWaiting = Atomic<Bool>(false)
    let receiver = Atomic<UInt16>(0)

    init(
        settings: ProducerSettings<Key, Value>, producer: TransactionalProducerEngine, interval: Duration,
        emitsResults: Bool, logger: Logger
    ) {
        self.settings = settings
        self.interval = interval
        self.transactionalProducer = producer
        self.emitsResults = emitsResults
        self.logger = logger
        self.parallelism = max(1, settings.parallelism)
        self.lookAhead = 2 * max(1, settings.parallelism)
    }

    var engine: ProducerEngine { transactionalProducer.engine }

    func withMachine<R>(_ body: (inout TransactionStateMachine) -> R) -> R {
        state.withLock { body(&$0.machine) }
    }

    // MARK: The run

    /// Initialises transactions, pumps `upstream` into transactions until it ends,
    /// commits (or, on failure, aborts) the last one, and closes the producer.
    /// - Throws: the stage's failure: a fenced or fatal producer, an abort that cannot be
    ///   replayed, a refused record, or upstream's own error.
    func run(_ upstream: AnyAsyncSequence<Message>) async throws {
        defer { finish() }
        do {
            receiver.store(try engine.register(self), ordering: .releasing)
        } catch {
            await transactionalProducer.close(timeout: .zero)
            throw error
        }
        let started = await performTransactionActions(withMachine { $0.start() }, groupMetadata: { nil }) { _, _ in }
        if let failure = started.failure {
            fail(failure)
        } else {
            // While a transaction commits, read ahead at most `parallelism` messages.
            let readAhead = TransactionalReadAhead<Prepared>(limit: parallelism)
            let pull = makePull(upstream)
            readAhead.start(pull)
            state.withLock { $0.readAhead = readAhead }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.commitLoop() }
                group.addTask { await readAhead.runReader() }
                await self.pump(readAhead, pull)
                // The pump stopped: a reader still waiting on upstream is not needed any more.
                readAhead.cancel()
                group.cancelAll()
            }
        }
        let failure = state.withLock { $0.failure }
        engine.deregister(receiver.load(ordering: .acquiring))
        await transactionalProducer.close(timeout: failure == nil ? settings.closeTimeout : .zero)
        if let failure { throw failure }
    }

    func finish() {
        let (downstream, pump, space, sources) = state.withLock { s in
            s.finished = true
            s.sleeper?.cancel()
            s.sleeper = nil
            defer {
                s.downstream = nil
                s.pump = nil
                s.pumpSpace = nil
                s.sources.removeAll()
            }
            return (s.downstream, s.pump, s.pumpSpace, Array(s.sources.values))
        }
        // A revoke must not wait for commits from a sink that is gone.
        for source in sources { source.detach(self) }
        downstream?.resume()
        pump?.resume()
        space?.resume()
    }

    /// Ends the stage with `error` (the first failure wins) and wakes everyone.
    func fail(_ error: any Error) {
        let (pump, space, committer, downstream, forPump) = state.withLock { s in
            if s.failure == nil { s.failure = error }
            defer {
                s.pump = nil
                s.pumpSpace = nil
                s.committer = nil
                s.downstream = nil
                s.committerForPump = nil
            }
            return (s.pump, s.pumpSpace, s.committer, s.downstream, s.committerForPump)
        }
        pump?.resume()
        space?.resume()
        committer?.resume()
        downstream?.resume()
        forPump?.resume()
    }

    // MARK: DeliveryReceiver (the producer's poll thread)

    func deliver(_ reports: UnsafeBufferPointer<DeliveryReport>) {
        let anyFailed = reports.contains { !$0.succeeded }
        if emitsResults || anyFailed {
            state.withLock { s in
                let current = s.transaction & 0xFFFF
                for report in reports where report.token >> 32 == current {
                    if !report.succeeded {
                        // Records purged by an abort are its consequence, not its cause.
                        if s.deliveryFailure == nil, report.error != RD_KAFKA_RESP_ERR__PURGE_QUEUE,
                            report.error != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT
                        {
                            s.deliveryFailure = report
                        }
                        continue
                    }
                    guard emitsResults else { continue }
                    let index = Int(report.token & 0xFFFF_FFFF)
                    if index < s.outcomes.count {
                        s.outcomes[index] = Outcome(
                            partition: report.partition, offset: report.offset, timestamp: report.timestamp)
                    }
                }
            }
        }
        let remaining = inFlight.subtract(reports.count, ordering: .sequentiallyConsistent).newValue
        if spaceWaiting.load(ordering: .sequentiallyConsistent),
            remaining < max(1, parallelism - max(1, parallelism / 4))
        {
            let pump = state.withLock { s -> UnsafeContinuation<Void, Never>? in
                spaceWaiting.store(false, ordering: .relaxed)
                defer { s.pumpSpace = nil }
                return s.pumpSpace
            }
            pump?.resume()
        }
    }

    func fail(_ error: KafkaError) {
        // The engine's fatal error (reported on its poll thread, e.g. when the producer was fenced).
        fail(fenceAware(error) as any Error)
    }

    func fenceAware(_ error: KafkaError) -> KafkaError {
        if let code = error.code, TransactionError.isFencing(rd_kafka_resp_err_t(code)), error.kind != .fenced {
            return TransactionError.fenced(
                transactionalId: transactionalProducer.transactionalId, detail: error.message, code: code)
        }
        return error
    }

    // MARK: TransactionalSinkHandle

    func requestCommitNow() {
        state.withLock { $0.commitNow = true }
        wakeCommitter()
    }

    func partitionsReassigned(_ partitions: Set<TopicPartition>) {
        state.withLock { s in
            for partition in partitions { s.stale[partition] = nil }
        }
    }

    func requestAbort() {
        state.withLock { $0.abortNow = true }
        wakeCommitter()
    }

    func wakeCommitter() {
        let committer = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            defer { s.committer = nil }
            return s.committer
        }
        committer?.resume()
    }

    // MARK: Downstream (flows)

    enum DownstreamNext {
        case taken, done
        case failed(any Error)
        case wait
    }

    /// Moves the committed results into `buffer`; false once the run ended without more.
    /// - Throws: the stage's failure, after every result committed before it.
    func nextResults(into buffer: inout [Result]) async throws -> Bool {
        while true {
            var pump: UnsafeContinuation<Void, Never>?
            let next = state.withLock { s -> DownstreamNext in
                if !s.ready.isEmpty {
                    swap(&buffer, &s.ready)
                    s.ready.removeAll(keepingCapacity: true)
                    if !s.committing {
                        pump = s.pump
                        s.pump = nil
                    }
                    return .taken
                }
                if let failure = s.failure { return .failed(failure) }
                if s.finished { return .done }
                return .wait
            }
            pump?.resume()
            switch next {
            case .taken: return true
            case .done: return false
            case .failed(let error): throw error
            case .wait:
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        let resumeNow = state.withLock { s -> Bool in
                            if !s.ready.isEmpty || s.failure != nil || s.finished || Task.isCancelled { return true }
                            s.downstream = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let downstream = state.withLock { s -> UnsafeContinuation<Void, Never>? in
                        defer { s.downstream = nil }
                        return s.downstream
                    }
                    downstream?.resume()
                }
                if Task.isCancelled { throw CancellationError() }
            }
        }
    }
}

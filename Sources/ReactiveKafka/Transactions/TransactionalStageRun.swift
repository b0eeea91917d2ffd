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

    /// A message of the open transaction, kept (by a flow) for its result.
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
    private let state = Mutex(State())
    private let inFlight = Atomic<Int>(0)
    private let spaceWaiting = Atomic<Bool>(false)
    private let receiver = Atomic<UInt16>(0)

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

    private var engine: ProducerEngine { transactionalProducer.engine }

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

    private func finish() {
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

    // MARK: Pump

    private enum Gate {
        case go(begin: Bool, transaction: UInt64, firstRecord: Int)
        case drop
        case park
        case committing
        case stop
    }

    /// A message pulled from upstream, serialised, waiting to enter a transaction.
    ///
    /// Kept taken apart (its records and its offset side by side, not in the enum): reading a
    /// payload out of a kept multi-payload enum copies the whole payload first (a retain and a
    /// release per reference it holds), and the pump reads the offset and the records of
    /// every message.
    struct Prepared: @unchecked Sendable {
        enum Kind { case single, multi, passThrough }
        var kind: Kind
        /// The record of a `single` message.
        var record: ProducerRecord<Key, Value>?
        /// The records of a `multi` message.
        var records: [ProducerRecord<Key, Value>]
        var offset: TransactionalOffset
        var single: (key: SerializedBytes?, value: SerializedBytes?)?
        var serialized: [(key: SerializedBytes?, value: SerializedBytes?)]
        var recordCount: Int { single != nil ? 1 : serialized.count }

        /// The message put together again, for a flow's result.
        var message: Message {
            switch kind {
            case .single: .single(record!, passThrough: offset)
            case .multi: .multi(records, passThrough: offset)
            case .passThrough: .passThrough(offset)
            }
        }

        /// Record `index` and its bytes.
        func part(_ index: Int) -> (
            record: ProducerRecord<Key, Value>, bytes: (key: SerializedBytes?, value: SerializedBytes?)
        ) {
            kind == .single ? (record!, single!) : (records[index], serialized[index])
        }
    }

    /// How the pump (or, during a commit, the reader) reads upstream: serialised when read,
    /// so that a serialiser that throws fails the stage before its message enters a transaction.
    private func makePull(_ upstream: AnyAsyncSequence<Message>) -> TransactionalReadAhead<Prepared>.Pull {
        var iterator = upstream.makeAsyncIterator()
        let settings = self.settings
        // Read once: the run's task inherited its trace context and never changes it.
        let traceHeaders = ProducerTraceHeaders.ofCurrentTask(enabled: settings.propagatesTraceContext)
        return {
            guard var message = try await iterator.next(isolation: #isolation) else { return nil }
            if let traceHeaders { traceHeaders.add(to: &message) }
            return try Prepared(message, settings)
        }
    }

    /// `pull` is the read-ahead's own, called directly while the pump reads upstream itself.
    ///
    /// A message goes through ``pumpWithoutWaiting(_:cache:)`` first: the common case (the
    /// transaction is open and librdkafka takes every record) needs no suspension, and a
    /// message kept across a suspension is copied (the whole message: a retain per reference
    /// it holds, and their releases). Only what must wait comes back here.
    private func pump(_ readAhead: TransactionalReadAhead<Prepared>, _ pull: TransactionalReadAhead<Prepared>.Pull)
        async
    {
        var topicCache = ProducerEngine.TopicCache()
        do {
            pumping: while true {
                if inFlight.load(ordering: .acquiring) >= parallelism { try await waitForSpace() }
                guard let next = readAhead.readsItself ? try await pull() : try await readAhead.next() else { break }
                if Task.isCancelled { throw CancellationError() }
                let produced: Bool
                switch try pumpWithoutWaiting(consume next, cache: &topicCache) {
                case .produced:
                    continue pumping
                case .mustEnter(let current, let answer):
                    switch try await enter(current, first: answer) {
                    case .entered(let transaction, let firstRecord):
                        produced = try await produceRecords(
                            of: current, from: 0, transaction: transaction, firstRecord: firstRecord, cache: &topicCache
                        )
                    case .dropped:
                        continue pumping
                    case .stopped:
                        break pumping
                    case .committing:
                        // Read ahead while the transaction commits; this message goes first after it.
                        readAhead.handOver(current)
                        await waitWhileCommitting()
                        continue pumping
                    }
                case .refused(let current, let refusal):
                    produced = try await produceRefused(current, refusal, cache: &topicCache)
                }
                leave()
                if !produced, stopped { break pumping }
            }
            end(.complete)
        } catch {
            leave()
            if let error = error as? KafkaError, engine.fatalError != nil {
                // The producer failed (fatal, fenced): nothing can be aborted or committed any more.
                fail(fenceAware(error))
            }
            end(.abort(error))
        }
    }

    /// How far ``pumpWithoutWaiting(_:cache:)`` took a message.
    private enum Progress {
        /// In the open transaction, every record handed to librdkafka, the gate left.
        case produced
        /// The gate's answer needs waiting (a transaction to begin, a commit, a full window):
        /// ``enter(_:first:)`` takes it from there.
        case mustEnter(Prepared, (gate: Gate, commitRequested: Bool))
        /// Admitted, but librdkafka refused one of its records for now.
        case refused(Prepared, Refusal)
    }

    /// A record librdkafka did not take at once, and where its message stands.
    private struct Refusal {
        var transaction: UInt64
        var firstRecord: Int
        /// The refused record's index in its message; those before it were produced.
        var index: Int
        var code: rd_kafka_resp_err_t
        var generation: UInt64
        var opaque: ProducerOpaque
    }

    /// The per-message path, synchronous: takes `current` through the gate and hands its
    /// records to librdkafka when nothing has to wait; otherwise gives it back with how far it got.
    private func pumpWithoutWaiting(_ current: __owned Prepared, cache: inout ProducerEngine.TopicCache) throws
        -> Progress
    {
        let answer = gate(current)
        guard !answer.commitRequested, case .go(begin: false, let transaction, let firstRecord) = answer.gate else {
            return .mustEnter(current, answer)
        }
        // Record by record in place (not through `part(_:)`, whose result is a copy).
        for i in 0..<current.recordCount {
            let token = token(transaction, firstRecord + i)
            let started =
                current.kind == .single
                ? try startProducing(current.record!, current.single!, token: token, cache: &cache)
                : try startProducing(current.records[i], current.serialized[i], token: token, cache: &cache)
            if started.code != RD_KAFKA_RESP_ERR_NO_ERROR {
                return .refused(
                    current,
                    Refusal(
                        transaction: transaction, firstRecord: firstRecord, index: i,
                        code: started.code, generation: started.generation, opaque: started.opaque))
            }
        }
        leave()
        return .produced
    }

    /// Produces the refused record once librdkafka takes it, then the message's remaining records.
    private func produceRefused(_ current: Prepared, _ refusal: Refusal, cache: inout ProducerEngine.TopicCache)
        async throws -> Bool
    {
        let i = refusal.index
        let (record, bytes) = current.part(i)
        let token = token(refusal.transaction, refusal.firstRecord + i)
        guard
            try await produceAgain(
                record, bytes, token: token, opaque: refusal.opaque, code: refusal.code, generation: refusal.generation,
                cache: &cache)
        else { return false }
        return try await produceRecords(
            of: current, from: i + 1, transaction: refusal.transaction, firstRecord: refusal.firstRecord, cache: &cache)
    }

    /// Produces `current`'s records from index `start` on, waiting for space when librdkafka's
    /// queue is full. False when one was not produced (see ``produce(_:_:token:cache:)``).
    private func produceRecords(
        of current: Prepared, from start: Int, transaction: UInt64, firstRecord: Int,
        cache: inout ProducerEngine.TopicCache
    ) async throws -> Bool {
        for i in start..<current.recordCount {
            let (record, bytes) = current.part(i)
            guard try await produce(record, bytes, token: token(transaction, firstRecord + i), cache: &cache) else {
                return false
            }
        }
        return true
    }

    /// Suspends until no commit holds the gate (or the stage stopped).
    private func waitWhileCommitting() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.failure != nil || s.finished || (!s.committing && s.machine.acceptsMessages) { return true }
                s.pump = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private var stopped: Bool { state.withLock { $0.failure != nil || $0.finished } }

    @inline(__always)
    private func token(_ transaction: UInt64, _ record: Int) -> UInt64 {
        (transaction & 0xFFFF) << 32 | UInt64(UInt32(truncatingIfNeeded: record))
    }

    private enum Entry {
        case entered(transaction: UInt64, firstRecord: Int)
        /// Stale after a rewind: skip it.
        case dropped
        case stopped
        /// A commit (or abort) holds the gate.
        case committing
    }

    /// The gate's answer for `current` now (the per-message path: one lock, no suspension).
    /// Admits the message into the open transaction when it says `.go`.
    private func gate(_ current: Prepared) -> (gate: Gate, commitRequested: Bool) {
        let shared = current.offset.partition
        let partition = shared.topicPartition
        let consumed = current.offset.offset
        var commitRequested = false
        let gate = state.withLock { s -> Gate in
            if s.failure != nil || s.finished || s.ending != nil { return .stop }
            // Revoked or lost since it was emitted: its next owner reads it.
            if shared.hasEnded { return .drop }
            if !s.stale.isEmpty, let highest = s.stale[partition] {
                if consumed > highest { return .drop }
                s.stale[partition] = nil // the replay has begun
            }
            let windowFull = emitsResults && s.held.count + s.ready.count >= lookAhead
            if windowFull && !s.held.isEmpty && !s.committing {
                s.commitNow = true
                commitRequested = true
            }
            // The interval is up: suspend demand here and now. The committer's timer may be
            // late when the pool's threads are busy pumping and reading. The clock is read
            // every `clockEvery` messages: reading it per message cost more than the lock.
            s.untilClock -= 1
            if s.untilClock <= 0, !s.committing, let deadline = s.deadline, deadline <= .now {
                s.committing = true
                s.commitNow = true
                commitRequested = true
            }
            if s.untilClock <= 0 { s.untilClock = Self.clockEvery }
            if s.committing { return .committing }
            if windowFull { return .park }
            let admission = s.machine.admit(consumed: (partition, consumed))
            if admission == .notNow { return s.machine.phase == .failed ? .park : .committing }
            s.pumpBusy = true
            return entered(current, &s, begin: admission == .beginThenProduce)
        }
        return (gate, commitRequested)
    }

    /// `current` entered the open transaction: its source is looked at and the message held.
    @inline(__always)
    private func entered(_ current: Prepared, _ s: inout State, begin: Bool) -> Gate {
        let shared = current.offset.partition
        // Offsets of one partition share their metadata and source: look at them once a run.
        if s.lastEntered !== shared {
            s.lastEntered = shared
            s.entered[ObjectIdentifier(shared)] = shared
            if let source = shared.source {
                let id = ObjectIdentifier(source)
                if s.sources[id] == nil {
                    s.sources[id] = source
                    source.attach(self)
                }
            } else {
                s.unrewindable = true
            }
        }
        let firstRecord = s.outcomes.count
        s.held.append(Held(message: current.message, firstRecord: firstRecord))
        if emitsResults, current.recordCount > 0 {
            s.outcomes.append(contentsOf: repeatElement(Outcome(), count: current.recordCount))
        }
        return .go(begin: begin, transaction: s.transaction, firstRecord: firstRecord)
    }

    /// Lets `current` into the open transaction (beginning one if none is open), or
    /// waits while a commit is under way. `first` is the gate's answer already taken.
    private func enter(_ current: Prepared, first: (gate: Gate, commitRequested: Bool)) async throws -> Entry {
        var answer = first
        while true {
            let (gate, commitRequested) = answer
            if commitRequested { wakeCommitter() }
            switch gate {
            case .stop: return .stopped
            case .drop: return .dropped
            case .committing: return .committing
            case .park:
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        let windowFull = emitsResults && s.held.count + s.ready.count >= lookAhead
                        if s.failure != nil || s.finished || (!s.committing && !windowFull && s.machine.acceptsMessages)
                        {
                            return true
                        }
                        s.pump = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            case .go(let begin, let transaction, let firstRecord):
                if begin {
                    let outcome = await performTransactionActions([.beginTransaction], groupMetadata: { nil }) {
                        action, _ in
                        if case .fail(let error) = action { self.fail(error) }
                    }
                    if let failure = outcome.failure { throw failure }
                    // The interval runs from the transaction's begin.
                    state.withLock { $0.deadline = .now + interval }
                    wakeCommitter()
                }
                return .entered(transaction: transaction, firstRecord: firstRecord)
            }
            answer = self.gate(current)
        }
    }

    /// The pump is done with the message in hand: a waiting commit may go on.
    private func leave() {
        let committer = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            s.pumpBusy = false
            defer { s.committerForPump = nil }
            return s.committerForPump
        }
        committer?.resume()
    }

    /// Produces one record into the open transaction. False when it was not produced
    /// because the transaction broke (it is then aborted and replayed) or the stage stopped.
    private func produce(
        _ record: ProducerRecord<Key, Value>, _ bytes: (key: SerializedBytes?, value: SerializedBytes?), token: UInt64,
        cache: inout ProducerEngine.TopicCache
    ) async throws -> Bool {
        let started = try startProducing(record, bytes, token: token, cache: &cache)
        if started.code == RD_KAFKA_RESP_ERR_NO_ERROR { return true }
        return try await produceAgain(
            record, bytes, token: token, opaque: started.opaque, code: started.code, generation: started.generation,
            cache: &cache)
    }

    /// Counts one record in flight and hands it to librdkafka once: its answer, and what
    /// ``produceAgain(_:_:token:opaque:code:generation:cache:)`` needs when it was a refusal.
    @inline(__always)
    private func startProducing(
        _ record: ProducerRecord<Key, Value>, _ bytes: (key: SerializedBytes?, value: SerializedBytes?), token: UInt64,
        cache: inout ProducerEngine.TopicCache
    ) throws -> (code: rd_kafka_resp_err_t, generation: UInt64, opaque: ProducerOpaque) {
        let opaque = ProducerOpaque(receiver: receiver.load(ordering: .relaxed), token: token)
        if record.topic != cache.name { state.withLock { _ = $0.topics.insert(record.topic) } }
        inFlight.add(1, ordering: .relaxed)
        let generation = engine.spaceGenerationNow
        let code = try attempt(record, bytes, opaque: opaque, cache: &cache)
        return (code, generation, opaque)
    }

    /// Hands one record to librdkafka once, without waiting.
    @inline(__always)
    private func attempt(
        _ record: ProducerRecord<Key, Value>, _ bytes: (key: SerializedBytes?, value: SerializedBytes?),
        opaque: ProducerOpaque,
        cache: inout ProducerEngine.TopicCache
    ) throws -> rd_kafka_resp_err_t {
        if record.headers.isEmpty, let rkt = try engine.resolveTopic(record.topic, cache: &cache) {
            return try engine.tryProduce(
                rkt: rkt, partition: record.partition, key: bytes.key, value: bytes.value, timestamp: record.timestamp,
                opaque: opaque)
        }
        return try engine.tryProduce(
            topic: record.topic, partition: record.partition, key: bytes.key, value: bytes.value,
            headers: record.headers, timestamp: record.timestamp, opaque: opaque, topicCache: &cache)
    }

    /// ``produce(_:_:token:cache:)`` after librdkafka did not take the record at once
    /// (`code`): waits for space and tries again, or decides what the refusal means.
    private func produceAgain(
        _ record: ProducerRecord<Key, Value>, _ bytes: (key: SerializedBytes?, value: SerializedBytes?), token: UInt64,
        opaque: ProducerOpaque,
        code first: rd_kafka_resp_err_t, generation firstGeneration: UInt64, cache: inout ProducerEngine.TopicCache
    ) async throws -> Bool {
        var code = first
        var generation = firstGeneration
        while true {
            if code == RD_KAFKA_RESP_ERR_NO_ERROR { return true }
            if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                await engine.waitForSpace(since: generation, cancellable: true)
                if Task.isCancelled {
                    inFlight.subtract(1, ordering: .relaxed)
                    throw CancellationError()
                }
                if stopped {
                    inFlight.subtract(1, ordering: .relaxed)
                    return false
                }
                generation = engine.spaceGenerationNow
                code = try attempt(record, bytes, opaque: opaque, cache: &cache)
                continue
            }
            inFlight.subtract(1, ordering: .relaxed)
            if code == RD_KAFKA_RESP_ERR__FATAL { throw engine.raiseFatalError() }
            if code == RD_KAFKA_RESP_ERR__STATE {
                // librdkafka refuses records for a transaction that already failed: abort it, and replay.
                logger.warning("the open transaction failed while producing; aborting it and replaying its records")
                requestAbort()
                return false
            }
            // A record librdkafka can never take (unknown partition, too large, …): the stream cannot go on.
            throw DeliveryReport(
                token: token, error: code, partition: record.partition ?? -1, offset: -1, timestamp: nil
            )
            .failure(topic: record.topic)
        }
    }

    /// Suspends while `parallelism` records are unacknowledged.
    private func waitForSpace() async throws {
        while inFlight.load(ordering: .acquiring) >= parallelism {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    spaceWaiting.store(true, ordering: .sequentiallyConsistent)
                    if inFlight.load(ordering: .sequentiallyConsistent) < parallelism || s.failure != nil || s.finished
                    {
                        spaceWaiting.store(false, ordering: .relaxed)
                        return true
                    }
                    s.pumpSpace = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
            if Task.isCancelled { throw CancellationError() }
            if stopped { return }
        }
    }

    private func end(_ ending: Ending) {
        state.withLock { s in if s.ending == nil { s.ending = ending } }
        wakeCommitter()
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

    private func fenceAware(_ error: KafkaError) -> KafkaError {
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

    private func requestAbort() {
        state.withLock { $0.abortNow = true }
        wakeCommitter()
    }

    private func wakeCommitter() {
        let committer = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            defer { s.committer = nil }
            return s.committer
        }
        committer?.resume()
    }

    // MARK: Committer

    private enum Work {
        case commit
        case abort
        case end(Ending)
        case stop
        case wait
    }

    private func commitLoop() async {
        while true {
            let work = state.withLock { s -> Work in
                if s.failure != nil || s.finished { return .stop }
                if s.abortNow {
                    s.abortNow = false
                    s.commitNow = false
                    return .abort
                }
                if let ending = s.ending { return .end(ending) }
                if s.commitNow {
                    s.commitNow = false
                    return .commit
                }
                if let deadline = s.deadline, deadline <= .now { return .commit }
                return .wait
            }
            switch work {
            case .stop:
                return
            case .commit:
                let actions = withMachine { $0.commitDue() }
                if actions.isEmpty {
                    // Nothing open to commit: let a pump that stopped for the interval go on.
                    await effect(.resumeDemand, lastError: nil)
                } else {
                    await perform(actions)
                }
            case .abort:
                await perform(withMachine { $0.abortRequested() })
            case .end(let ending):
                switch ending {
                case .complete:
                    await perform(withMachine { $0.closeRequested() })
                    if let messages = takeReplay() {
                        await produceLastTransactionAgain(messages)
                        continue // commits them as the last transaction
                    }
                case .abort(let error):
                    await perform(withMachine { $0.abortRequested() })
                    fail(error)
                }
                return
            case .wait:
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if s.failure != nil || s.finished || s.abortNow || s.commitNow || s.ending != nil {
                            return true
                        }
                        if let deadline = s.deadline {
                            if deadline <= .now { return true }
                            if s.sleeper == nil {
                                s.sleeper = Task { [weak self] in
                                    try? await Task.sleep(until: deadline, clock: .continuous)
                                    self?.timerFired()
                                }
                            }
                        }
                        s.committer = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    private func timerFired() {
        state.withLock { $0.sleeper = nil }
        wakeCommitter()
    }

    /// Performs a commit or abort sequence and its effects.
    private func perform(_ actions: [TransactionStateMachine.Action]) async {
        guard !actions.isEmpty else { return }
        let outcome = await performTransactionActions(actions, groupMetadata: offsetsGroup) { action, lastError in
            await self.effect(action, lastError: lastError)
        }
        if outcome.aborted, let cause = outcome.lastError {
            logger.warning("transaction aborted", metadata: ["cause": "\(cause.kafkaError)"])
        }
        if let failure = outcome.failure { fail(failure) }
    }

    /// Performs a non-transactional action; `lastError` is the last transactional call's failure
    /// (the cause of an abort, which the stream's failure names when it gives up).
    private func effect(_ action: TransactionStateMachine.Action, lastError: TransactionError?) async {
        switch action {
        case .suspendDemand:
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    s.committing = true
                    s.sleeper?.cancel()
                    s.sleeper = nil
                    if s.pumpBusy && s.failure == nil {
                        s.committerForPump = continuation
                        return false
                    }
                    return true
                }
                if resumeNow { continuation.resume() }
            }
        case .resumeDemand:
            let (pump, readAhead) = state.withLock {
                s -> (UnsafeContinuation<Void, Never>?, TransactionalReadAhead<Prepared>?) in
                s.committing = false
                s.deadline = nil
                defer { s.pump = nil }
                return (s.pump, s.readAhead)
            }
            readAhead?.commitEnded()
            pump?.resume()
        case .committed(let offsets):
            let (sources, downstream) = state.withLock {
                s -> ([any TransactionalSourceLink], UnsafeContinuation<Void, Never>?) in
                if emitsResults {
                    s.ready.reserveCapacity(s.ready.count + s.held.count)
                    for held in s.held { s.ready.append(result(held, s.outcomes)) }
                }
                resetTransaction(&s)
                s.consecutiveAborts = 0
                s.deliveryFailure = nil
                defer { s.downstream = nil }
                return (Array(s.sources.values), s.downstream)
            }
            for source in sources { source.committed(offsets) }
            downstream?.resume()
        case .rewindSource(let offsets):
            let (sources, unrewindable, ending, delivery, aborts, lastMessages) = state.withLock {
                s -> ([any TransactionalSourceLink], Bool, Ending?, KafkaError?, Int, [Message]) in
                let unrewindable = s.unrewindable
                let lastMessages = s.ending?.isComplete == true ? s.held.map(\.message) : []
                let delivery = s.deliveryFailure.map { deliveryError($0, s) }
                if let code = lastError?.kafkaError.code,
                    TransactionError.meansPartitionsMoved(rd_kafka_resp_err_t(code))
                {
                    s.refusedMetadata = s.sentMetadata
                }
                s.deliveryFailure = nil
                s.consecutiveAborts += 1
                resetTransaction(&s)
                for (partition, next) in s.machine.lastAbortedNext {
                    s.stale[partition] = max(s.stale[partition] ?? Int64.min, next - 1)
                }
                return (Array(s.sources.values), unrewindable, s.ending, delivery, s.consecutiveAborts, lastMessages)
            }
            let id = transactionalProducer.transactionalId
            if let delivery, Self.isPermanent(delivery.code) {
                // Replaying would fail the same record again, forever.
                fail(delivery)
                return
            }
            // Why the transaction was aborted: a record's delivery, or a call (refused offsets).
            let failure = delivery ?? lastError?.kafkaError
            switch ending {
            case .abort?:
                return // the stream ends with its own error: nothing is read again
            case .complete?:
                if delivery == nil, aborts <= Self.maxConsecutiveAborts, let code = failure?.code,
                    TransactionError.meansPartitionsMoved(rd_kafka_resp_err_t(code)),
                    replayLastTransaction(lastMessages)
                {
                    logger.warning(
                        "the last transaction's offsets were refused for a generation a rebalance replaced; producing its messages again in a new transaction",
                        metadata: [
                            "transactional.id": "\(id)", "messages": "\(lastMessages.count)",
                            "cause": "\(failure.map(\.message) ?? "")",
                        ])
                    return
                }
                fail(
                    KafkaError(
                        .transactionAborted,
                        "the last transaction of '\(id)' was aborted as the stream completed\(failure.map { " (\($0.message))" } ?? ""); "
                            + "nothing of it was committed: its records are read again when the stream restarts from the committed offsets"
                    ))
                return
            case nil:
                break
            }
            if aborts > Self.maxConsecutiveAborts {
                fail(
                    KafkaError(
                        .transactionAborted,
                        "\(aborts) transactions of '\(id)' in a row were aborted without one committing; giving up. Nothing of them was committed"
                            + (failure.map { ". The last was aborted because \($0.message)" } ?? ""),
                        code: failure?.code, partitions: failure?.partitions ?? []))
                return
            }
            if unrewindable || sources.isEmpty {
                fail(
                    KafkaError(
                        .transactionAborted,
                        "a transaction of '\(id)' was aborted\(failure.map { " (\($0.message))" } ?? "") and its messages cannot be read again: they did not come from Transactional.source. "
                            + "Nothing of it was committed; restart the stream from the committed offsets"))
                return
            }
            for source in sources {
                do {
                    try await source.rewind(offsets)
                } catch {
                    fail(
                        KafkaError(
                            error.kind, "rewinding the source after an aborted transaction failed: \(error.message)",
                            code: error.code))
                    return
                }
            }
        case .fail(let error):
            fail(error)
        case .releaseWaiters, .produce, .initTransactions, .beginTransaction, .flush, .sendOffsets, .commitTransaction,
            .abortTransaction:
            break
        }
    }

    /// Whether the stream's last transaction, just aborted as upstream completed, can be produced
    /// again from `messages` (its offsets were refused for their generation, and every partition
    /// is still this member's): if so, schedules it for the commit loop and reopens the machine.
    private func replayLastTransaction(_ messages: [Message]) -> Bool {
        guard !messages.isEmpty else { return false }
        let owned = messages.allSatisfy { message in
            switch message {
            case .single(_, let offset), .multi(_, let offset), .passThrough(let offset): !offset.partition.hasEnded
            }
        }
        guard owned else { return false }
        return state.withLock { s in
            guard s.failure == nil, s.machine.reopenAfterAbort() else { return false }
            s.replay = messages
            return true
        }
    }

    /// The messages ``replayLastTransaction(_:)`` scheduled, taken once.
    private func takeReplay() -> [Message]? {
        state.withLock { s in
            defer { s.replay = nil }
            return s.replay
        }
    }

    /// Produces the stream's last transaction's messages again, in a new transaction that the
    /// commit loop then commits as the last (see ``replayLastTransaction(_:)``). Its offsets go
    /// with the generation that replaced the refused one (`offsetsGroup` waits for it).
    private func produceLastTransactionAgain(_ messages: [Message]) async {
        var cache = ProducerEngine.TopicCache()
        do {
            for message in messages {
                if inFlight.load(ordering: .acquiring) >= parallelism { try await waitForSpace() }
                let current = try Prepared(message, settings)
                let gate = state.withLock { s -> Gate in
                    if s.failure != nil || s.finished { return .stop }
                    // Revoked or lost meanwhile: its next owner reads it.
                    if current.offset.partition.hasEnded { return .drop }
                    s.stale[current.offset.partition.topicPartition] = nil
                    let admission = s.machine.admit(
                        consumed: (current.offset.partition.topicPartition, current.offset.offset))
                    guard admission != .notNow else { return .stop }
                    return entered(current, &s, begin: admission == .beginThenProduce)
                }
                guard case .go(let begin, let transaction, let firstRecord) = gate else {
                    if case .drop = gate { continue }
                    return
                }
                if begin {
                    let outcome = await performTransactionActions([.beginTransaction], groupMetadata: { nil }) {
                        action, _ in
                        if case .fail(let error) = action { self.fail(error) }
                    }
                    if let failure = outcome.failure { throw failure }
                }
                guard
                    try await produceRecords(
                        of: current, from: 0, transaction: transaction, firstRecord: firstRecord, cache: &cache)
                else { return }
            }
        } catch {
            fail(error)
        }
    }

    /// Aborting and replaying more often than this in a row fails the stage.
    static var maxConsecutiveAborts: Int { 5 }

    /// Delivery errors that no retry of the same record can cure.
    static func isPermanent(_ code: Int32?) -> Bool {
        guard let code else { return false }
        switch rd_kafka_resp_err_t(code) {
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR__INVALID_ARG:
            return true
        default:
            return false
        }
    }

    /// The typed error for a failed delivery, naming the record's topic when a flow still holds it.
    private func deliveryError(_ report: DeliveryReport, _ s: State) -> KafkaError {
        let index = Int(report.token & 0xFFFF_FFFF)
        var topic = s.topics.count == 1 ? s.topics.first! : "one of the topics \(s.topics.sorted())"
        // A sink's held messages are not numbered by record (only a flow keeps outcomes).
        if emitsResults, let held = s.held.last(where: { $0.firstRecord <= index }) {
            switch held.message {
            case .single(let record, _): topic = record.topic
            case .multi(let records, _):
                if index - held.firstRecord < records.count { topic = records[index - held.firstRecord].topic }
            case .passThrough: break
            }
        }
        return report.failure(topic: topic)
    }

    /// The group metadata to send the open transaction's offsets with: their source's current
    /// generation. Throws (an abortable error naming them) when a partition of the transaction
    /// was revoked or lost after its records were let in: committing them now would commit
    /// records their next owner reads too.
    private func offsetsGroup() async throws(TransactionError) -> ConsumerGroupMetadata? {
        // A cooperative member's rejoin replaces its generation, which it learns in its next
        // rebalance callback: offsets sent in between would be refused and abort the transaction.
        let (sources, refused) = state.withLock { s in
            defer { s.refusedMetadata = nil }
            return (Array(s.sources.values), s.refusedMetadata)
        }
        for source in sources {
            // Refused for its generation: sending the same again would only abort again.
            if let refused { await source.waitForMetadata(replacing: refused) }
            await source.waitWhileRejoining()
        }
        let (entered, last) = state.withLock { s in (Array(s.entered.values), s.lastEntered) }
        let moved = Set(entered.filter(\.hasEnded).map(\.topicPartition))
        guard moved.isEmpty else {
            let list = moved.sorted().map(\.description).joined(separator: ", ")
            throw TransactionError(
                kafkaError: KafkaError(
                    .transactionAborted,
                    "the transaction of '\(transactionalProducer.transactionalId)' holds records of \(list), which this member no longer owns "
                        + "(revoked or lost before the transaction committed): it is aborted, and their next owner reads them",
                    partitions: moved),
                isFatal: false, isAbortable: true, isRetriable: false)
        }
        let metadata = (last ?? entered.first)?.groupMetadata
        state.withLock { $0.sentMetadata = metadata }
        return metadata
    }

    private func resetTransaction(_ s: inout State) {
        s.entered.removeAll(keepingCapacity: true)
        s.held.removeAll(keepingCapacity: true)
        s.outcomes.removeAll(keepingCapacity: true)
        s.transaction &+= 1
        s.unrewindable = false
        s.lastEntered = nil
        s.deadline = nil
    }

    private func result(_ held: Held, _ outcomes: [Outcome]) -> Result {
        func metadata(_ record: ProducerRecord<Key, Value>, _ index: Int) -> RecordMetadata {
            let outcome = index < outcomes.count ? outcomes[index] : Outcome()
            return RecordMetadata(
                topic: record.topic, partition: outcome.partition, offset: outcome.offset, timestamp: outcome.timestamp)
        }
        switch held.message {
        case .single(let record, let passThrough):
            return .single(metadata(record, held.firstRecord), record, passThrough: passThrough)
        case .multi(let records, let passThrough):
            return .multi(
                records.enumerated().map { ProducedRecord(metadata: metadata($1, held.firstRecord + $0), record: $1) },
                passThrough: passThrough)
        case .passThrough(let passThrough):
            return .passThrough(passThrough)
        }
    }

    // MARK: Downstream (flows)

    private enum DownstreamNext {
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

extension TransactionalStageRun.Prepared {
    /// Takes `message` apart and serialises its records.
    init(_ message: __owned TransactionalStageRun.Message, _ settings: borrowing ProducerSettings<Key, Value>)
        throws(KafkaError)
    {
        switch consume message {
        case .single(let record, let offset):
            self.init(
                kind: .single, record: record, records: [], offset: offset, single: try settings.serialize(record),
                serialized: [])
        case .multi(let records, let offset):
            var serialized: [(key: SerializedBytes?, value: SerializedBytes?)] = []
            serialized.reserveCapacity(records.count)
            for record in records { serialized.append(try settings.serialize(record)) }
            self.init(kind: .multi, record: nil, records: records, offset: offset, single: nil, serialized: serialized)
        case .passThrough(let offset):
            self.init(kind: .passThrough, record: nil, records: [], offset: offset, single: nil, serialized: [])
        }
    }
}

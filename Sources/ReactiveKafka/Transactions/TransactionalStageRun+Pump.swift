import CRdKafka
import Logging
import StreamKit
import Synchronization

/// The pump of a ``TransactionalStageRun``: pulls messages from upstream (or, while a transaction
/// commits, from the read-ahead), lets each through the gate into the open transaction and hands its
/// records to librdkafka, waiting for space when its queue or `parallelism` is full.
extension TransactionalStageRun {
    // MARK: Pump

    enum Gate {
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
    func makePull(_ upstream: AnyAsyncSequence<Message>) -> TransactionalReadAhead<Prepared>.Pull {
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
    func pump(_ readAhead: TransactionalReadAhead<Prepared>, _ pull: TransactionalReadAhead<Prepared>.Pull)
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
    enum Progress {
        /// In the open transaction, every record handed to librdkafka, the gate left.
        case produced
        /// The gate's answer needs waiting (a transaction to begin, a commit, a full window):
        /// ``enter(_:first:)`` takes it from there.
        case mustEnter(Prepared, (gate: Gate, commitRequested: Bool))
        /// Admitted, but librdkafka refused one of its records for now.
        case refused(Prepared, Refusal)
    }

    /// A record librdkafka did not take at once, and where its message stands.
    struct Refusal {
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
    func pumpWithoutWaiting(_ current: __owned Prepared, cache: inout ProducerEngine.TopicCache) throws
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
    func produceRefused(_ current: Prepared, _ refusal: Refusal, cache: inout ProducerEngine.TopicCache)
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
    func produceRecords(
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
    func waitWhileCommitting() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.failure != nil || s.finished || (!s.committing && s.machine.acceptsMessages) { return true }
                s.pump = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    var stopped: Bool { state.withLock { $0.failure != nil || $0.finished } }

    @inline(__always)
    func token(_ transaction: UInt64, _ record: Int) -> UInt64 {
        (transaction & 0xFFFF) << 32 | UInt64(UInt32(truncatingIfNeeded: record))
    }

    enum Entry {
        case entered(transaction: UInt64, firstRecord: Int)
        /// Stale after a rewind: skip it.
        case dropped
        case stopped
        /// A commit (or abort) holds the gate.
        case committing
    }

    /// The gate's answer for `current` now (the per-message path: one lock, no suspension).
    /// Admits the message into the open transaction when it says `.go`.
    func gate(_ current: Prepared) -> (gate: Gate, commitRequested: Bool) {
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
    func entered(_ current: Prepared, _ s: inout State, begin: Bool) -> Gate {
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
    func enter(_ current: Prepared, first: (gate: Gate, commitRequested: Bool)) async throws -> Entry {
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
                    try await beginTransaction()
                    // The interval runs from the transaction's begin.
                    state.withLock { $0.deadline = .now + interval }
                    wakeCommitter()
                }
                return .entered(transaction: transaction, firstRecord: firstRecord)
            }
            answer = self.gate(current)
        }
    }

    /// `begin_transaction` for a message the gate admitted first into a new transaction.
    /// - Throws: the machine's failure (begin fails only on misuse or after a fatal error).
    func beginTransaction() async throws {
        let outcome = await performTransactionActions([.beginTransaction], groupMetadata: { nil }) { action, _ in
            if case .fail(let error) = action { self.fail(error) }
        }
        if let failure = outcome.failure { throw failure }
    }

    /// The pump is done with the message in hand: a waiting commit may go on.
    func leave() {
        let committer = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            s.pumpBusy = false
            defer { s.committerForPump = nil }
            return s.committerForPump
        }
        committer?.resume()
    }

    /// Produces one record into the open transaction. False when it was not produced
    /// because the transaction broke (it is then aborted and replayed) or the stage stopped.
    func produce(
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
    func startProducing(
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
    func attempt(
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
    func produceAgain(
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
    func waitForSpace() async throws {
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

    func end(_ ending: Ending) {
        state.withLock { s in if s.ending == nil { s.ending = ending } }
        wakeCommitter()
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

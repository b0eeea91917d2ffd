import Foundation
import Logging

/// The state of an event-sourced flow's run: the entities of every input partition seen, and
/// what the committed results still need (snapshots, the replay ledgers).
///
/// `handle` runs for one input at a time; before the first input of a partition, of a new
/// ownership period of it, or after the source rewound it (an aborted transaction), it drops
/// the partition's entities and recovers them from the snapshot store and the changelog,
/// which then holds exactly the committed events. `committed` runs for each result of the
/// transactional flow, in input order.
actor EventSourcedCore<
    Key: Hashable & Sendable, Command: Sendable, State: Sendable, Event: Sendable, Rejection: Error,
    OutKey: Sendable, OutValue: Sendable
> {
    typealias Outcome = EventSourcedOutcome<Key, State, Event, Rejection>
    typealias Message = ProducerMessage<SerializedBytes, SerializedBytes, TransactionalOffset>
    typealias Output = @Sendable (Command, Outcome) throws -> [ProducerRecord<OutKey, OutValue>]

    /// A partition's entities for its current period of ownership.
    private struct Partition {
        var entities: EventSourcedEntities<Key, State, Command, Event, Rejection>
        let period: TransactionalPartition
        var nextInput: Int64
    }

    /// A partition's recovered state, not yet taken by an input.
    private struct Recovered {
        let replay: EventSourcedReplay<Key, State, Event>
        /// The period of ownership it was recovered in: only an input of the same one may take it.
        let ownership: UInt64?
    }

    /// An input handled but not yet committed.
    private struct Pending {
        let outcome: Outcome
        let snapshotDue: Bool
    }

    private let behavior: EventSourcedBehavior<State, Command, Event, Rejection>
    private let settings: EventSourcedSettings<Key, State, Event>
    private let producer: ProducerSettings<OutKey, OutValue>
    private let output: Output
    private let reader: ChangelogReader
    private let store: SnapshotStore?
    private var storeOpened = false
    private var partitions: [Int32: Partition] = [:]
    private var ledgers: [Int32: SnapshotLedger<Key>] = [:]
    private var pending: [Int32: [Int64: Pending]] = [:]
    /// Partitions recovered with another one, before any input of theirs.
    private var prefetched: [Int32: Recovered] = [:]
    private let instruments: RecoveryInstruments?
    private let logger: Logger

    init(
        behavior: EventSourcedBehavior<State, Command, Event, Rejection>,
        settings: EventSourcedSettings<Key, State, Event>, producer: ProducerSettings<OutKey, OutValue>,
        reader: ChangelogReader, metrics: KafkaMetricsSettings, logger: Logger, output: @escaping Output
    ) {
        self.behavior = behavior
        self.settings = settings
        self.producer = producer
        self.reader = reader
        self.output = output
        self.logger = logger
        instruments = RecoveryInstruments(metrics, changelogTopic: settings.changelogTopic)
        store = settings.snapshotStorePath.map { SnapshotStore(path: $0, topic: settings.changelogTopic) }
    }

    /// Decides `message`'s command and returns what to write: its events to the changelog
    /// partition of the input's number, then the output records, with the input's offset.
    func handle(_ message: TransactionalMessage<Key, Command>) async throws -> Message {
        let position = message.partitionOffset
        let number = position.partition.topicPartition.partition
        let isCurrent = partitions[number].map { $0.period === position.partition && position.offset >= $0.nextInput }
        if isCurrent != true {
            try await recover(number, period: position.partition)
            pending[number] = pending[number]?.filter { $0.key < position.offset }
        }
        let key = message.record.key
        // In place (optional chaining): a copy of the partition would copy its entities.
        guard let result = partitions[number]?.entities.handle(message.record.value, for: key) else {
            throw EventSourcedError(.changelog, "the state of input partition \(number) was not recovered")
        }
        let outcome: Outcome
        let due: Bool
        switch result {
        case .accepted(let events, let state, let snapshotDue):
            outcome = Outcome(key: key, events: events, state: state, rejection: nil, input: position.partitionOffset)
            due = snapshotDue
        case .rejected(let rejection):
            outcome = Outcome(
                key: key, events: [], state: partitions[number]?.entities.state(of: key) ?? behavior.initialState,
                rejection: rejection,
                input: position.partitionOffset)
            due = false
        }
        partitions[number]?.nextInput = position.offset + 1
        let records =
            try changelogRecords(outcome, partition: number) + serialized(output(message.record.value, outcome))
        pending[number, default: [:]][position.offset] = Pending(outcome: outcome, snapshotDue: due)
        return records.isEmpty ? .passThrough(position) : .multi(records, passThrough: position)
    }

    /// Books `result`'s committed events, stores the snapshots that became due with them, and
    /// returns the input's outcome (nil for a result this run did not handle).
    func committed(_ result: ProducerResult<SerializedBytes, SerializedBytes, TransactionalOffset>) async throws
        -> Outcome?
    {
        let position = result.passThrough
        let number = position.partition.topicPartition.partition
        guard let entry = pending[number]?.removeValue(forKey: position.offset) else { return nil }
        guard let store, !entry.outcome.events.isEmpty else { return entry.outcome }
        let offsets = result.metadata.prefix(entry.outcome.events.count).map(\.offset)
        var ledger = ledgers[number] ?? SnapshotLedger(end: 0)
        for offset in offsets { ledger.committed(entry.outcome.key, at: offset) }
        if entry.snapshotDue, let last = offsets.last {
            ledger.snapshotted(entry.outcome.key, through: last)
            let row = SnapshotStore.Row(
                key: try encode(settings.keySerializer, entry.outcome.key, "key"),
                state: try encode(settings.stateSerializer, entry.outcome.state, "state"), offset: last)
            try await store.save([row], partition: number, replayFrom: ledger.replayFrom)
        }
        ledgers[number] = ledger
        return entry.outcome
    }

    /// Closes the snapshot store.
    func close() async { await store?.close() }

    /// Rebuilds partition `number`'s entities from its snapshots and its changelog, unless a
    /// recovery for the same period of ownership already did (see `prefetched`).
    ///
    /// A member is assigned its partitions together, and each partition's first input would
    /// otherwise wait for a consumer of its own: the partitions of the input topic that the
    /// source owns and that no input has needed yet are recovered with it, by one reader.
    private func recover(_ number: Int32, period: TransactionalPartition) async throws {
        if let ownership = period.ownership, let ready = prefetched.removeValue(forKey: number),
            ready.ownership == ownership
        {
            install(ready, as: number, period: period)
            return
        }
        let owned = period.ownership == nil ? [:] : period.source?.ownedPartitions ?? [:]
        let topic = period.topicPartition.topic
        // A prefetched partition that was revoked since is recovered again by whoever owns it.
        prefetched = prefetched.filter { owned[TopicPartition(topic, $0.key)] == $0.value.ownership }
        var batch: [Int32: UInt64?] = [number: period.ownership]
        for (partition, ownership) in owned where partition.topic == topic && partition.partition != number {
            let known = partitions[partition.partition].map { !$0.period.hasEnded } ?? false
            if !known && prefetched[partition.partition] == nil { batch[partition.partition] = ownership }
        }
        for (partition, recovered) in try await recoverAll(batch) {
            if partition == number {
                install(recovered, as: number, period: period)
            } else {
                prefetched[partition] = recovered
            }
        }
    }

    private func install(_ recovered: Recovered, as number: Int32, period: TransactionalPartition) {
        var entities = EventSourcedEntities<Key, State, Command, Event, Rejection>(
            behavior: behavior, snapshotEvery: settings.snapshotEvery)
        for (key, entity) in recovered.replay.recovered {
            entities.restore(key, .init(state: entity.state, eventsSinceSnapshot: entity.eventsSinceSnapshot))
        }
        partitions[number] = Partition(entities: entities, period: period, nextInput: 0)
        ledgers[number] = recovered.replay.ledger
    }

    /// Replays the changelog partitions of `batch` (with their periods of ownership) onto
    /// their snapshots, reading them at once.
    private func recoverAll(_ batch: [Int32: UInt64?]) async throws -> [Int32: Recovered] {
        let started = ContinuousClock.now
        var replays: [EventSourcedReplay<Key, State, Event>] = []
        var index: [Int32: Int] = [:]
        var from: [Int32: Int64] = [:]
        for number in batch.keys.sorted() {
            let (snapshots, start) = try await loadSnapshots(number)
            index[number] = replays.count
            from[number] = start
            replays.append(
                EventSourcedReplay(
                    initialState: behavior.initialState, evolve: behavior.evolve, snapshots: snapshots, from: start,
                    tracksLedger: store != nil))
        }
        let (keys, events, topic) = (settings.keyDeserializer, settings.eventDeserializer, settings.changelogTopic)
        // Records come in runs of one partition: the replay's index is looked up once a run.
        var (current, at, count) = (Int32(-1), 0, 0)
        try await reader.read(from) { record in
            let key: Key
            let event: Event
            do {
                key = try keys.deserialize(record.key)
                event = try events.deserialize(record.value)
            } catch {
                throw EventSourcedError(
                    .undeserializable,
                    "the changelog record at \(topic)-\(record.partition)@\(record.offset) cannot be decoded (\(error)); was it written by this stage with these settings?"
                )
            }
            if record.partition != current {
                guard let found = index[record.partition] else { return }
                (current, at) = (record.partition, found)
            }
            replays[at].apply(event, of: key, at: record.offset)
            count += 1
        }
        let elapsed = ContinuousClock.now - started
        instruments?.recovered(events: count, after: elapsed)
        logger.debug(
            "recovered the state of changelog partitions from snapshots and events",
            metadata: [
                "changelog": "\(topic)", "partitions": "\(batch.keys.sorted())", "events": "\(count)",
                "duration": "\(elapsed)",
            ])
        var recovered: [Int32: Recovered] = [:]
        for (number, ownership) in batch {
            recovered[number] = Recovered(replay: replays[index[number]!], ownership: ownership)
        }
        return recovered
    }

    /// Partition `number`'s snapshots and the offset its replay starts at.
    private func loadSnapshots(_ number: Int32) async throws -> ([Key: EntitySnapshot<State>], Int64) {
        guard let store else { return ([:], 0) }
        if !storeOpened {
            try await store.open()
            storeOpened = true
        }
        let loaded = try await store.load(number)
        var snapshots: [Key: EntitySnapshot<State>] = [:]
        for row in loaded.rows {
            let key = try decode(settings.keyDeserializer, row.key, "key", number)
            snapshots[key] = EntitySnapshot(
                state: try decode(settings.stateDeserializer, row.state, "state", number), offset: row.offset)
        }
        return (snapshots, loaded.replayFrom ?? 0)
    }

    private func changelogRecords(_ outcome: Outcome, partition: Int32) throws -> [ProducerRecord<
        SerializedBytes, SerializedBytes
    >] {
        guard !outcome.events.isEmpty else { return [] }
        let key = try settings.keySerializer.serialize(outcome.key)
        return try outcome.events.map { event in
            ProducerRecord(
                topic: settings.changelogTopic, partition: partition, key: key,
                value: try settings.eventSerializer.serialize(event))
        }
    }

    private func serialized(_ records: [ProducerRecord<OutKey, OutValue>]) throws -> [ProducerRecord<
        SerializedBytes, SerializedBytes
    >] {
        try records.map { record in
            ProducerRecord(
                topic: record.topic, partition: record.partition,
                key: try record.key.flatMap { try producer.keySerializer.serialize($0) },
                value: try record.value.flatMap { try producer.valueSerializer.serialize($0) },
                headers: record.headers, timestamp: record.timestamp)
        }
    }

    private func encode<T>(_ serializer: Serializer<T>, _ value: T, _ what: String) throws -> Data {
        guard let bytes = try serializer.serialize(value) else {
            throw EventSourcedError(
                .invalidSettings, "the \(what) serializer gave no bytes for a snapshot; it must encode every \(what)")
        }
        return bytes.withUnsafeBytes { Data($0) }
    }

    private func decode<T>(_ deserializer: Deserializer<T>, _ data: Data, _ what: String, _ partition: Int32) throws
        -> T
    {
        do { return try deserializer.deserialize(KafkaBytes(data)) } catch {
            throw EventSourcedError(
                .corruptStore,
                "a snapshot \(what) of partition \(partition) in \(settings.snapshotStorePath ?? "") cannot be decoded (\(error)); was the file written with other settings? Delete it to recover from the changelog"
            )
        }
    }
}

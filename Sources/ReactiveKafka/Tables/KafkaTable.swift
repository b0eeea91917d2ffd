import Logging
import ServiceLifecycle
import Synchronization

/// A topic materialised as key → latest value: a `KTable` or `GlobalKTable`.
///
/// ``run()`` restores the table from its topic (or from its SQLite file and then only the
/// records written since) and then keeps it current, until ``close()``, cancellation or a
/// graceful shutdown (it is a swift-service-lifecycle `Service`). ``ready()`` returns once
/// the initial restore has read every partition up to the end offsets it had when the
/// table started. A record with a null value (a tombstone) deletes its key; a record with
/// a null key is ignored.
///
/// Look-ups (``value(for:)``) and ``snapshot()`` read memory under a lock and see whole
/// batches: a snapshot never shows half of a batch. ``changes()`` follows every change.
///
/// ```swift
/// let table = try KafkaTable(topic: "customers", settings: settings)
/// async let running: Void = table.run()
/// try await table.ready()
/// let name = table["c-42"]
/// ```
///
/// The consumer is released however the run ends; ``run()`` throws a
/// ``KafkaTableError`` if the table fails (then look-ups keep answering with the rows it had).
public final class KafkaTable<Key: Hashable & Sendable, Value: Sendable>: KafkaTableView, Service {
    /// The topic the table holds.
    public let topic: String
    /// How it reads and stores.
    public let options: KafkaTableOptions
    let settings: ConsumerSettings<Key, Value>
    let logger: Logger
    let store: any TableStore<Key, Value>
    let hub = TableChangeHub<Key, Value>()
    let lifecycle = Mutex(TableLifecycle())
    private let skipped = Atomic<Int>(0)
    private let read = Atomic<Int>(0)

    /// A table of `topic`, read with `settings` (connection, deserialisers; a group for
    /// ``KafkaTableOptions/Scope-swift.enum/partitionAligned``). Throws for bad settings.
    public init(
        topic: String, settings: ConsumerSettings<Key, Value>, options: KafkaTableOptions = KafkaTableOptions(),
        logger: Logger = Logger(label: "reactive-kafka.table")
    ) throws(KafkaTableError) {
        do {
            try TopicName.validate(topic)
            try settings.validate()
        } catch {
            throw KafkaTableError(.invalidConfiguration, "\(error.message)")
        }
        guard options.maxBatchRecords >= 1 else {
            throw KafkaTableError(
                .invalidConfiguration, "maxBatchRecords is \(options.maxBatchRecords); it must be at least 1")
        }
        if options.scope == .partitionAligned, (settings.groupId ?? "").isEmpty {
            throw KafkaTableError(
                .invalidConfiguration,
                "a partition-aligned table is a member of a consumer group: set one with ConsumerSettings.withGroupId(_:), or use the global scope"
            )
        }
        self.topic = topic
        self.settings = settings
        self.options = options
        self.logger = logger
        let tracksPartitions = options.scope == .partitionAligned
        switch options.storage {
        case .memory:
            store = InMemoryTableStore(tracksPartitions: tracksPartitions)
        case .sqlite(let path):
            store = SQLiteTableStore(
                path: path, topic: topic, keys: settings.keyDeserializer, values: settings.valueDeserializer,
                tracksPartitions: tracksPartitions)
        }
    }

    /// The current value of `key`; nil when absent.
    public func value(for key: Key) -> Value? { store.value(for: key) }

    /// Every row, as of the last batch applied.
    public func snapshot() -> [Key: Value] { store.snapshot() }

    /// The number of rows.
    public var count: Int { store.count }

    /// The changes from now on; see ``KafkaTableChanges`` for what a slow reader sees.
    public func changes() -> KafkaTableChanges<Key, Value> { KafkaTableChanges(subscription: hub.subscribe()) }

    /// Records skipped because they could not be deserialised (with ``KafkaTableOptions/UndeserializablePolicy/skip``).
    public var skippedRecords: Int { skipped.load(ordering: .relaxed) }

    /// Records this run read from the topic (a persistent table restarted reads only the new ones).
    public var recordsRead: Int { read.load(ordering: .relaxed) }

    /// Returns once the initial restore is complete; throws the table's failure, a
    /// ``KafkaTableError/Kind/closed`` error if it closed first, or `CancellationError`.
    ///
    /// A partition counts as restored once it has read up to its end offset at start, or (a log
    /// ending with transaction markers, which no record reaches) once the consumer reports its
    /// end and the records read before it are applied.
    public func ready() async throws {
        let id = lifecycle.withLock { $0.reserveWaiter() }
        let result: Result<Void, any Error> = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let now = lifecycle.withLock { state -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if let now = state.readiness() { return now }
                    state.wait(continuation, id: id)
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = lifecycle.withLock { $0.cancelWait(id) }
            waiter?.resume(returning: .failure(CancellationError()))
        }
        try result.get()
    }

    /// Ends ``run()`` (its consumer stops and closes); waiting ``ready()`` calls throw
    /// ``KafkaTableError/Kind/closed`` if the restore had not completed. Idempotent.
    public func close() {
        let control = lifecycle.withLock { $0.close() }
        control?.stop()
        if lifecycle.withLock({ $0.phase == .idle }) {
            for waiter in lifecycle.withLock({ $0.releaseWaiters() }) {
                waiter.resume(returning: .failure(KafkaTableError(.closed, "the table was closed before it ran")))
            }
        }
    }

    /// Counts the records of a batch read and those skipped.
    func count(read records: Int, skipped skips: Int) {
        read.add(records, ordering: .relaxed)
        if skips > 0 { skipped.add(skips, ordering: .relaxed) }
    }

    /// Applies a change to the restore and resumes the waiters if it completed it.
    func updateRestore(_ change: (inout TableRestore) -> Bool) {
        let waiters = lifecycle.withLock { state -> [TableLifecycle.Waiter] in
            change(&state.restore) ? state.releaseWaiters() : []
        }
        if !waiters.isEmpty { logger.debug("table restored", metadata: ["topic": "\(topic)", "rows": "\(count)"]) }
        for waiter in waiters { waiter.resume(returning: .success(())) }
    }
}

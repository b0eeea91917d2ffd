import DequeModule

/// Which records of a parallel source may run now, as a pure state machine (no I/O).
///
/// At most `maxConcurrency` records run at once. Records with an ordering key run one at a
/// time per key, in the order they were added (each key has its own queue; keys whose head
/// may run wait in a ready queue, first come first served). Records without a key run in
/// the order added, as slots free up. Records belong to a *lane* (a partition's assignment),
/// whose backlog (queued and running) is counted, so its reader can stop reading when it is
/// full, and whose queued records are dropped at once when the partition goes.
struct KeyScheduler<Item> {
    /// A lane (one assignment of a partition) and an ordering key in it.
    struct OrderKey: Hashable {
        let lane: UInt64
        let key: Int
    }

    /// What a running record holds: give it back with ``finished(_:)``.
    struct Ticket: Hashable {
        let lane: UInt64
        /// Nil for an unordered record.
        let key: OrderKey?
    }

    /// A key's queued records: most keys hold one at a time, kept without a buffer of its own.
    private enum Queue {
        case one(Item)
        case many(Deque<Item>)
    }

    let maxConcurrency: Int
    private var queues: [OrderKey: Queue] = [:]
    /// Keys with a queued record and none running.
    private var ready: Deque<OrderKey> = []
    /// Unordered records, oldest first.
    private var unordered: Deque<(lane: UInt64, item: Item)> = []
    private var running: Set<OrderKey> = []
    private(set) var inFlight = 0
    /// Per lane: records queued or running.
    private var backlogs: [UInt64: Int] = [:]
    /// Per lane: records running.
    private var runningPerLane: [UInt64: Int] = [:]

    init(maxConcurrency: Int) {
        self.maxConcurrency = maxConcurrency
    }

    /// Records queued or running in `lane`.
    func backlog(_ lane: UInt64) -> Int { backlogs[lane] ?? 0 }

    /// Records running in `lane`.
    func running(_ lane: UInt64) -> Int { runningPerLane[lane] ?? 0 }

    /// Whether no record is queued or running.
    var isIdle: Bool { backlogs.isEmpty }

    /// Adds a record of `lane`, ordered behind the others of `key` (nil: unordered).
    mutating func enqueue(_ item: Item, lane: UInt64, key: Int?) {
        backlogs[lane, default: 0] += 1
        guard let key else {
            unordered.append((lane, item))
            return
        }
        let orderKey = OrderKey(lane: lane, key: key)
        // Taken out and put back, so the deque is never shared (no copy on append).
        switch queues.removeValue(forKey: orderKey) {
        case nil:
            queues[orderKey] = .one(item)
            if !running.contains(orderKey) { ready.append(orderKey) }
        case .one(let first):
            queues[orderKey] = .many([first, item])
        case .many(var items):
            items.append(item)
            queues[orderKey] = .many(items)
        }
    }

    /// The next record to run, if a slot is free and one may run.
    mutating func take() -> (Item, Ticket)? {
        guard inFlight < maxConcurrency else { return nil }
        while let orderKey = ready.popFirst() {
            let item: Item
            switch queues.removeValue(forKey: orderKey) {
            case nil: continue
            case .one(let only): item = only
            case .many(var items):
                item = items.removeFirst()
                queues[orderKey] = items.count == 1 ? .one(items[0]) : .many(items)
            }
            running.insert(orderKey)
            return (item, started(orderKey.lane, key: orderKey))
        }
        if let (lane, item) = unordered.popFirst() { return (item, started(lane, key: nil)) }
        return nil
    }

    private mutating func started(_ lane: UInt64, key: OrderKey?) -> Ticket {
        inFlight += 1
        runningPerLane[lane, default: 0] += 1
        return Ticket(lane: lane, key: key)
    }

    /// The record holding `ticket` is done: its slot frees, and its key's next record may run.
    mutating func finished(_ ticket: Ticket) {
        inFlight -= 1
        Self.decrement(&runningPerLane, ticket.lane)
        Self.decrement(&backlogs, ticket.lane)
        guard let key = ticket.key else { return }
        running.remove(key)
        if queues[key] != nil { ready.append(key) }
    }

    /// Drops the queued records of `lane` (its partition went); its running records stay
    /// counted until they finish. Returns the records dropped.
    mutating func removeLane(_ lane: UInt64) -> [Item] {
        var dropped: [Item] = []
        for key in queues.keys where key.lane == lane {
            switch queues.removeValue(forKey: key) {
            case .one(let item): dropped.append(item)
            case .many(let items): dropped.append(contentsOf: items)
            case nil: break
            }
        }
        ready.removeAll { $0.lane == lane }
        dropped.append(contentsOf: unordered.filter { $0.lane == lane }.map(\.item))
        unordered.removeAll { $0.lane == lane }
        let left = (backlogs[lane] ?? 0) - dropped.count
        backlogs[lane] = left > 0 ? left : nil
        return dropped
    }

    private static func decrement(_ counts: inout [UInt64: Int], _ lane: UInt64) {
        let left = (counts[lane] ?? 0) - 1
        counts[lane] = left > 0 ? left : nil
    }
}

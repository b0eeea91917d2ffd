import Synchronization

/// What ``_Concurrency/AsyncSequence/buffer(size:overflow:statistics:)`` does when an
/// element arrives and the buffer is full: Akka's `OverflowStrategy`.
public enum OverflowStrategy: Sendable, Hashable, CaseIterable {
    /// Stop pulling the upstream until the consumer makes room (nothing is lost).
    case backpressure
    /// Drop the oldest buffered element to make room for the new one.
    case dropHead
    /// Drop the youngest buffered element to make room for the new one.
    case dropTail
    /// Drop everything buffered, then buffer the new element.
    case dropBuffer
    /// Drop the new element; keep the buffer as it is.
    case dropNew
    /// Fail the stream with ``StreamKitError/bufferOverflow(size:)`` (after the buffered elements).
    case fail

    @usableFromInline var pumpOverflow: PumpOverflow {
        switch self {
        case .backpressure: .backpressure
        case .dropHead: .dropHead
        case .dropTail: .dropTail
        case .dropBuffer: .dropBuffer
        case .dropNew: .dropNew
        case .fail: .fail
        }
    }
}

/// Live counters of a buffer stage: how many elements its overflow strategy
/// dropped and the most elements it held at once. Pass one to
/// ``_Concurrency/AsyncSequence/buffer(size:overflow:statistics:)`` to watch a buffer.
public final class BufferStatistics: Sendable {
    @usableFromInline let counters = Mutex<(dropped: Int, highWaterMark: Int)>((0, 0))

    /// Counters start at zero.
    @inlinable public init() {}

    /// Elements dropped so far by the overflow strategy.
    public var dropped: Int { counters.withLock { $0.dropped } }
    /// The most elements the buffer held at once so far.
    public var highWaterMark: Int { counters.withLock { $0.highWaterMark } }

    @inlinable func update(dropped: Int, highWaterMark: Int) {
        counters.withLock { $0 = (dropped, highWaterMark) }
    }
}

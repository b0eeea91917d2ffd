import Synchronization

/// Something that can end streams from outside: Akka's `KillSwitch`.
///
/// ``shutdown()`` completes the controlled streams, ``abort(_:)`` fails them.
/// Either takes effect at once, even while a stream waits for its upstream:
/// buffered elements are dropped and the upstream is cancelled.
public protocol KillSwitch: Sendable {
    /// Completes the controlled streams.
    func shutdown()
    /// Fails the controlled streams with `error`.
    func abort(_ error: any Error)
}

/// The trigger and the streams listening to it.
@usableFromInline final class KillSwitchCore: Sendable {
    @usableFromInline struct State {
        @usableFromInline var trigger: (any Error)?? = nil
        @usableFromInline var nextID = 0
        @usableFromInline var listeners: [Int: @Sendable ((any Error)?) -> Void] = [:]
        @inlinable init() {}
    }
    @usableFromInline let state = Mutex(State())

    @inlinable init() {}

    /// Registers `listener`; if the switch already fired it is called now and `nil` returned.
    @inlinable func register(_ listener: @escaping @Sendable ((any Error)?) -> Void) -> Int? {
        let fired: (any Error)?? = state.withLock { state in
            if let trigger = state.trigger { return .some(trigger) }
            state.nextID += 1
            state.listeners[state.nextID] = listener
            return nil
        }
        if let fired {
            listener(fired)
            return nil
        }
        return state.withLock { $0.nextID }
    }

    @inlinable func unregister(_ id: Int) {
        _ = state.withLock { $0.listeners.removeValue(forKey: id) }
    }

    @inlinable func fire(_ error: (any Error)?) {
        let listeners = state.withLock { state -> [@Sendable ((any Error)?) -> Void] in
            guard state.trigger == nil else { return [] }
            state.trigger = .some(error)
            defer { state.listeners = [:] }
            return Array(state.listeners.values)
        }
        for listener in listeners { listener(error) }
    }
}

/// A kill switch for any number of streams: Akka's `SharedKillSwitch`.
///
/// ```swift
/// let stop = SharedKillSwitch()
/// async let a: Void = feedA.killable(by: stop).forEach(handle)
/// async let b: Void = feedB.killable(by: stop).forEach(handle)
/// stop.shutdown()   // both complete now
/// ```
/// Streams attached after the switch fired end as soon as they start.
public final class SharedKillSwitch: KillSwitch {
    @usableFromInline let core = KillSwitchCore()

    /// A switch that has not fired.
    public init() {}

    /// Completes every stream this switch controls, as if upstream had ended.
    public func shutdown() { core.fire(nil) }
    /// Fails every stream this switch controls with `error`.
    public func abort(_ error: any Error) { core.fire(error) }
}

/// The kill switch of one stream, materialized by ``Source/killSwitch()``:
/// Akka's `UniqueKillSwitch`.
public final class UniqueKillSwitch: KillSwitch {
    @usableFromInline let core = KillSwitchCore()

    @usableFromInline init() {}

    /// Completes every stream this switch controls, as if upstream had ended.
    public func shutdown() { core.fire(nil) }
    /// Fails every stream this switch controls with `error`.
    public func abort(_ error: any Error) { core.fire(error) }
}

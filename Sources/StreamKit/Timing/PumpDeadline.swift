/// What waiting for an element with a deadline gave.
@usableFromInline enum DeadlineEvent<Element> {
    case element(Element)
    case finished((any Error)?)
    case deadlinePassed
}

extension Pump {
    /// The next event, or `.deadlinePassed` once `deadline` is reached on `clock`.
    /// With `deadlineFirst`, a passed deadline wins over an element already buffered.
    @inlinable func next<C: Clock>(before deadline: C.Instant?, clock: C, deadlineFirst: Bool) async -> DeadlineEvent<
        Element
    > {
        while true {
            if deadlineFirst, let deadline, clock.now >= deadline { return .deadlinePassed }
            let event =
                if let deadline {
                    await next(wakeAt: deadline, clock: clock)
                } else {
                    await next()
                }
            switch event {
            case .element(let element): return .element(element)
            case .finished(let error): return .finished(error)
            case .tick:
                if let deadline, clock.now >= deadline { return .deadlinePassed }
            }
        }
    }
}

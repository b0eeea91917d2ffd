/// The engine shared by the operators that race the upstream against a timer
/// (`completionTimeout`, `idleTimeout`, `initialTimeout`, `takeWithin`,
/// `keepAlive`): they differ only in when the deadline is set and in what
/// happens when it fires, so both are data here and the race is written once.
///
/// The upstream runs in a reader task with a one-element look-ahead, so the
/// timer fires even while the upstream is quiet; when the race ends the stream
/// (or the consumer stops) the upstream is cancelled.
@usableFromInline struct DeadlineRace<Base: AsyncSequence & Sendable, C: Clock>: Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    /// When the deadline for a `next()` is.
    @usableFromInline enum Measure: Sendable {
        /// `timeout` after the first `next()`, for the whole stream; a passed
        /// deadline wins over an element already waiting.
        case sinceFirstPull
        /// `timeout` after each `next()` starts, i.e. after the previous
        /// element (real or injected) was handed over.
        case sinceEachPull
        /// As `sinceEachPull` until the first element; none after it.
        case untilFirstElement
    }

    /// What the deadline passing does.
    @usableFromInline enum Outcome: Sendable {
        /// Cancel the upstream and fail with this error.
        case fail(StreamKitError)
        /// Cancel the upstream and complete normally.
        case complete
        /// Hand over this element and keep going (the upstream stays).
        case emit(@Sendable () -> Base.Element)
    }

    @usableFromInline let base: Base
    @usableFromInline let timeout: Duration
    @usableFromInline let clock: C
    @usableFromInline let measure: Measure
    @usableFromInline let outcome: Outcome

    @inlinable init(base: Base, timeout: Duration, clock: C, measure: Measure, outcome: Outcome) {
        self.base = base
        self.timeout = timeout
        self.clock = clock
        self.measure = measure
        self.outcome = outcome
    }

    @inlinable func makeIterator() -> Iterator {
        Iterator(race: self, lifetime: PumpLifetime(Pump(base, capacity: 1)))
    }

    @usableFromInline struct Iterator {
        @usableFromInline let race: DeadlineRace
        @usableFromInline let lifetime: PumpLifetime<Base>
        /// The deadline fixed at the first `next()` (`sinceFirstPull` only).
        @usableFromInline var fixedDeadline: C.Instant? = nil
        @usableFromInline var sawFirst = false
        @usableFromInline var done = false

        @inlinable init(race: DeadlineRace, lifetime: PumpLifetime<Base>) {
            self.race = race
            self.lifetime = lifetime
        }

        @inlinable mutating func deadline() -> C.Instant? {
            switch race.measure {
            case .sinceFirstPull:
                if fixedDeadline == nil { fixedDeadline = race.clock.now.advanced(by: race.timeout) }
                return fixedDeadline
            case .sinceEachPull:
                return race.clock.now.advanced(by: race.timeout)
            case .untilFirstElement:
                return sawFirst ? nil : race.clock.now.advanced(by: race.timeout)
            }
        }

        @inlinable mutating func next() async throws -> Base.Element? {
            if done { return nil }
            let deadline = deadline()
            let deadlineFirst = if case .sinceFirstPull = race.measure { true } else { false }
            switch await lifetime.pump.next(before: deadline, clock: race.clock, deadlineFirst: deadlineFirst) {
            case .element(let element):
                sawFirst = true
                return element
            case .finished(let error):
                done = true
                if let error { throw error }
                return nil
            case .deadlinePassed:
                switch race.outcome {
                case .emit(let inject):
                    return inject()
                case .fail(let error):
                    done = true
                    lifetime.pump.cancel()
                    throw error
                case .complete:
                    done = true
                    lifetime.pump.cancel()
                    return nil
                }
            }
        }
    }
}

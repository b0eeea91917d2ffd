extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Spreads the elements over `count` branches, each element to whichever
    /// branch asks first: Akka's `Balance`, for a pool of workers.
    ///
    /// ```swift
    /// for worker in jobs.balance(into: 4) { group.addTask { for try await job in worker { try await run(job) } } }
    /// ```
    /// The branches share one buffer of at most `bufferSize` elements; the
    /// upstream is pulled only when it has room, so the pool's total speed
    /// sets the pace.
    @inlinable public func balance(into count: Int, bufferSize: Int = 16) -> [AsyncFanOutBranch<Element>] {
        makeFanOut(self, branches: Swift.max(0, count), bufferSize: bufferSize, routing: .balance)
    }
}

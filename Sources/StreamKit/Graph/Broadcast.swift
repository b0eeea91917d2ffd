extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Sends every element to each of `count` branches: Akka's `Broadcast`.
    ///
    /// ```swift
    /// let outputs = orders.broadcast(count: 2)
    /// async let audit: Void = outputs[0].forEach(log)
    /// async let totals = outputs[1].reduce(0) { $0 + $1.amount }
    /// ```
    /// Each branch buffers at most `bufferSize` elements; the slowest branch
    /// sets the pace (each consumer back-pressures the producer). Returns no
    /// branch for `count < 1`; `bufferSize` below 1 is treated as 1.
    @inlinable public func broadcast(count: Int, bufferSize: Int = 16) -> [AsyncFanOutBranch<Element>] {
        makeFanOut(self, branches: Swift.max(0, count), bufferSize: bufferSize, routing: .broadcast)
    }
}

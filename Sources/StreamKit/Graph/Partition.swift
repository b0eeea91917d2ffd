extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Sends each element to exactly one of `count` branches, the one
    /// `partitioner` returns (`0..<count`): Akka's `Partition`.
    ///
    /// ```swift
    /// let byParity = numbers.partition(into: 2) { $0 % 2 }
    /// ```
    /// Each branch buffers at most `bufferSize` elements; a full branch holds
    /// back the upstream. An index outside `0..<count` fails every branch with
    /// ``StreamKitError/partitionIndexOutOfRange(index:count:)``. Elements for
    /// a branch whose consumer stopped are dropped.
    @inlinable public func partition(
        into count: Int, bufferSize: Int = 16, by partitioner: @escaping @Sendable (Element) -> Int
    ) -> [AsyncFanOutBranch<Element>] {
        makeFanOut(self, branches: Swift.max(0, count), bufferSize: bufferSize, routing: .partition(partitioner))
    }
}

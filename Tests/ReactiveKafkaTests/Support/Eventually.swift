/// Bounded waits for a condition that a test cannot be told about (a broker's state, a count
/// another thread moves): checked every 50 ms until it holds or the bound passes.
enum Eventually {
    /// True once `condition` holds; false if it still does not after `limit`.
    static func within(_ limit: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while try await !condition() {
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
        return true
    }
}

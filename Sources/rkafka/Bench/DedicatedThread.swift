import Foundation

/// Runs blocking `body` (a raw librdkafka loop) on a new thread of its own and returns
/// its result, so that the cooperative thread pool is never blocked. Not cancellable:
/// the raw loops end by themselves (all messages seen, or their no-progress timeout).
func onDedicatedThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.name = name
        thread.stackSize = 4 << 20
        thread.start()
    }
}

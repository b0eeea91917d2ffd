import CSanitizerSupport
import Foundation
import ReactiveKafkaTestKit
import Synchronization
import Testing

/// In sanitizer builds (`make sanitize`), librdkafka's C11 threads and locks must reach the
/// sanitizers' pthread interceptors through CSanitizerSupport; otherwise ThreadSanitizer sees
/// neither librdkafka's threads nor its locks, and LeakSanitizer does not scan their stacks.
@Suite struct SanitizerThreadRouteTests {
    static var isSanitizerBuild: Bool { rkafka_sanitizer_routed_threads() >= 0 }

    @Test(.enabled(if: isSanitizerBuild, "only sanitizer builds route librdkafka's threads"))
    func librdkafkasThreadsAndLocksGoThroughPthreads() throws {
        let threadsBefore = rkafka_sanitizer_routed_threads()
        let locksBefore = rkafka_sanitizer_routed_locks()
        // The mock cluster is a librdkafka client: it starts its brokers' threads with thrd_create.
        let kafka = try EmbeddedKafka()
        defer { kafka.stop() }
        try kafka.createTopic("sanitizer-route", partitions: 1)
        #expect(
            rkafka_sanitizer_routed_threads() > threadsBefore,
            "librdkafka's thrd_create calls reached the executable's definition (pthread_create)")
        #expect(rkafka_sanitizer_routed_locks() > locksBefore, "and so did its mtx_lock calls")
    }

    @Test(.enabled(if: !isSanitizerBuild, "sanitizer builds route them"))
    func otherBuildsLeaveLibrdkafkasThreadsToGlibc() {
        #expect(rkafka_sanitizer_routed_threads() == -1)
        #expect(rkafka_sanitizer_routed_locks() == -1)
    }
}

/// In ThreadSanitizer builds, a contended `Synchronization.Mutex` hand-over (locked and
/// unlocked by the kernel, in an uninstrumented library) is annotated for ThreadSanitizer by
/// CSanitizerSupport. Without the annotation ThreadSanitizer reports a race on the guarded
/// value below, and the test process exits with its failure code.
@Suite struct SanitizerMutexAnnotationTests {
    static var isThreadSanitizerBuild: Bool { rkafka_sanitizer_annotated_mutex_slow_paths() >= 0 }

    @Test(.enabled(if: isThreadSanitizerBuild, "only ThreadSanitizer builds annotate the Mutex"))
    func contendedMutexHandOversAreSeenByThreadSanitizer() async throws {
        final class Shared: Sendable {
            let counter = Mutex<Int>(0)
        }
        let shared = Shared()
        let before = rkafka_sanitizer_annotated_mutex_slow_paths()
        let perThread = 20_000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<4 {
                group.addTask {
                    try await onOwnThread("mutex-\(index)") {
                        for _ in 0..<perThread { shared.counter.withLock { $0 += 1 } }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(shared.counter.withLock { $0 } == 4 * perThread)
        #expect(
            rkafka_sanitizer_annotated_mutex_slow_paths() > before,
            "four threads contended: some hand-overs took the slow path")
    }

    @Test(.enabled(if: !isThreadSanitizerBuild, "ThreadSanitizer builds annotate it"))
    func otherBuildsLeaveTheMutexAlone() {
        #expect(rkafka_sanitizer_annotated_mutex_slow_paths() == -1)
    }

    /// Runs `body` on a thread of its own (so the threads really run at once, outside the pool).
    private func onOwnThread(_ name: String, _ body: @escaping @Sendable () -> Void) async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                body()
                continuation.resume()
            }
            thread.name = name
            thread.start()
        }
    }
}

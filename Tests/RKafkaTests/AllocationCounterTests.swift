#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import rkafka

@Suite struct AllocationCounterTests {
    @Test func countsEveryHeapAllocation() {
        let before = allocationCount()
        var arrays: [[Int]] = []
        arrays.reserveCapacity(1000)
        for i in 0..<1000 { arrays.append([Int](repeating: i, count: 4 + i % 3)) }
        let after = allocationCount()
        #expect(arrays.count == 1000)
        #expect(after - before >= 1000)
        #expect(AllocationCounterCheck.isWorking)
    }

    @Test func countsAllocationsOfOtherThreadsAndCLibraries() async throws {
        let before = allocationCount()
        // malloc called from C on another thread is counted too (librdkafka allocates this way).
        try await onDedicatedThread("alloc-test") {
            for _ in 0..<100 { free(malloc(64)) }
        }
        #expect(allocationCount() - before >= 100)
    }
}

import Testing

@testable import rkafka

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The counter interposes glibc's malloc; elsewhere it counts nothing by design (see allocation_counter.c).
#if canImport(Glibc)
    @Suite struct AllocationCounterTests {
        /// Sanitizer builds compile the malloc interposer out: the counter must then say it does
        /// not count (so the bench leaves allocs/msg out) instead of reporting zero allocations.
        @Test func saysWhetherItCounts() {
            let before = allocationCount()
            let arrays = (0..<1000).map { [Int](repeating: $0, count: 4 + $0 % 3) }
            let after = allocationCount()
            #expect(arrays.count == 1000)
            if allocationCounterAvailable {
                #expect(AllocationCounterCheck.isWorking)
                #expect(after - before >= 1000)
            } else {
                #expect(!AllocationCounterCheck.isWorking)
                #expect(before == 0 && after == 0)
            }
        }

        @Test(.enabled(if: allocationCounterAvailable, "sanitizer builds keep the sanitizer's allocator"))
        func countsEveryHeapAllocation() {
            let before = allocationCount()
            var arrays: [[Int]] = []
            arrays.reserveCapacity(1000)
            for i in 0..<1000 { arrays.append([Int](repeating: i, count: 4 + i % 3)) }
            let after = allocationCount()
            #expect(arrays.count == 1000)
            #expect(after - before >= 1000)
            #expect(AllocationCounterCheck.isWorking)
        }

        @Test(.enabled(if: allocationCounterAvailable, "sanitizer builds keep the sanitizer's allocator"))
        func countsAllocationsOfOtherThreadsAndCLibraries() async throws {
            let before = allocationCount()
            // malloc called from C on another thread is counted too (librdkafka allocates this way).
            try await onDedicatedThread("alloc-test") {
                for _ in 0..<100 { free(malloc(64)) }
            }
            #expect(allocationCount() - before >= 100)
        }
    }
#endif

// A fast producer and a slow consumer under each back-pressure strategy.
//
//     swift run backpressure-demo
//
// The producer offers 300 numbers as fast as it can; the consumer needs 2 ms
// for each. Every strategy prints how many elements the producer got rid of,
// how many reached the consumer, how many were dropped, the buffer's
// high-water mark, and how long it took.
import StreamKit
import Synchronization

/// 0..<count, counting what the stage pulled.
struct FastProducer: AsyncSequence, Sendable {
    typealias Element = Int
    let count: Int
    let produced: Counter

    struct Iterator: AsyncIteratorProtocol {
        var next = 0
        let count: Int
        let produced: Counter
        mutating func next() async -> Int? {
            guard next < count else { return nil }
            defer { next += 1 }
            produced.increment()
            return next
        }
    }

    func makeAsyncIterator() -> Iterator { Iterator(count: count, produced: produced) }
}

final class Counter: Sendable {
    private let value = Atomic(0)
    func increment() { value.add(1, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}

let elements = 300
let work: Duration = .milliseconds(2)

func slowConsumer<S: AsyncSequence>(_ stream: S, weight: (S.Element) -> Int = { _ in 1 }) async -> (
    emitted: Int, covered: Int, error: (any Error)?
) {
    var emitted = 0
    var covered = 0
    do {
        for try await element in stream {
            emitted += 1
            covered += weight(element)
            try? await Task.sleep(for: work)
        }
        return (emitted, covered, nil)
    } catch {
        return (emitted, covered, error)
    }
}

func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}

func report(
    _ name: String, produced: Int, emitted: Int, dropped: Int, highWater: Int?, elapsed: Duration, error: (any Error)?
) {
    let mark = highWater.map(String.init) ?? "-"
    let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    let outcome = error.map { "failed: \($0)" } ?? "completed"
    var line = padded(name, 40)
    line += padded("produced \(produced)", 14)
    line += padded("emitted \(emitted)", 13)
    line += padded("dropped \(dropped)", 13)
    line += padded("high-water \(mark)", 16)
    line += padded("\(milliseconds) ms", 10)
    line += outcome
    print(line)
}

print("fast producer (\(elements) elements) -> slow consumer (\(work) per element)\n")

let strategies: [(String, Int, OverflowStrategy)] = [
    ("slow down (backpressure, 16)", 16, .backpressure),
    ("drop newest (dropNew, 16)", 16, .dropNew),
    ("buffer then drop oldest (dropHead, 64)", 64, .dropHead),
    ("drop youngest buffered (dropTail, 16)", 16, .dropTail),
    ("drop whole buffer (dropBuffer, 16)", 16, .dropBuffer),
    ("fail (fail, 16)", 16, .fail),
]

for (name, size, strategy) in strategies {
    let produced = Counter()
    let statistics = BufferStatistics()
    let clock = ContinuousClock()
    let start = clock.now
    let result = await slowConsumer(
        FastProducer(count: elements, produced: produced).buffer(size: size, overflow: strategy, statistics: statistics)
    )
    report(
        name, produced: produced.current, emitted: result.emitted, dropped: statistics.dropped,
        highWater: statistics.highWaterMark, elapsed: clock.now - start, error: result.error)
}

// Aggregate instead of dropping: conflate sums what arrived while the consumer was busy.
do {
    let produced = Counter()
    let clock = ContinuousClock()
    let start = clock.now
    let result = await slowConsumer(
        FastProducer(count: elements, produced: produced).conflate(
            seed: { _ in 1 }, aggregate: { count, _ in count + 1 }),
        weight: { $0 })
    report(
        "aggregate (conflate, counts)", produced: produced.current, emitted: result.emitted,
        dropped: 0, highWater: nil, elapsed: clock.now - start, error: result.error)
    print("  conflate delivered \(result.emitted) aggregates covering all \(result.covered) elements")
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

import StreamKit
import Synchronization

extension StreamKitBench {
    /// The state check of `streamkit-windowed-count`, in an unmeasured pass before the timed
    /// ones: the windows the operator holds open, seen from outside. A window counts as open
    /// from when the operator pulls its first element until its result comes out; the operator
    /// pulls only when no result is waiting, so this is the number of windows it keeps. In
    /// order, with tumbling windows and no lateness, at most one window per key (the keys seen)
    /// plus the one whose first element moves the watermark past the others is open; more
    /// throws. Every window must come out exactly once, with every element counted.
    enum WindowStateCheck {
        static let keys = 10_000

        /// Runs the windowed count over `source` and returns the note for the result line.
        static func run(_ source: Counter) async throws -> String {
            let open = Tracker()
            let tracked = source.map { x in
                open.state.withLock { $0.pulled(key: x % keys, windowStart: x / 100 / 1_000 * 1_000) }
                return x
            }
            let windows = tracked.windowed(
                .tumbling(.seconds(1)), key: { $0 % keys }, time: { EventTime(milliseconds: Int64($0 / 100)) },
                aggregate: .count)
            var results = 0
            var counted = 0
            for try await output in windows {
                guard let result = output.result else {
                    throw BenchError("streamkit-windowed-count: element \(output.lateElement ?? -1) came out late")
                }
                let closed = open.state.withLock {
                    $0.emitted(key: result.key, windowStart: Int(result.window.start.milliseconds))
                }
                guard closed else {
                    throw BenchError(
                        "streamkit-windowed-count: window \(result.window) of key \(result.key) came out twice or unopened"
                    )
                }
                results += 1
                counted += result.value
            }
            let (peak, left) = open.state.withLock { ($0.peak, $0.current.count) }
            let bound = min(keys, source.count) + 1
            guard left == 0, counted == source.count else {
                throw BenchError(
                    "streamkit-windowed-count: \(left) windows never came out; \(counted) of \(source.count) elements counted"
                )
            }
            guard peak <= bound else {
                throw BenchError(
                    "streamkit-windowed-count: \(peak) windows open at once, more than the bound \(bound) (keys + 1)")
            }
            return "max open windows \(peak) (bound \(bound)), \(results) windows"
        }

        /// Shared by the upstream's `map` and the loop reading the results (one task).
        final class Tracker: Sendable {
            let state = Mutex(OpenWindows())
        }

        /// The windows with an element pulled and no result emitted yet.
        struct OpenWindows {
            struct Window: Hashable {
                let key: Int
                let windowStart: Int
            }
            var current = Set<Window>()
            var peak = 0

            mutating func pulled(key: Int, windowStart: Int) {
                current.insert(Window(key: key, windowStart: windowStart))
                peak = max(peak, current.count)
            }

            /// False if the window was not open.
            mutating func emitted(key: Int, windowStart: Int) -> Bool {
                current.remove(Window(key: key, windowStart: windowStart)) != nil
            }
        }
    }
}

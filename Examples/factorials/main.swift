// The Akka Streams quick start, in Swift with StreamKit:
// the numbers 1…100, scanned into factorials (arbitrary precision), each
// written as a line to factorials.txt.
//
//     swift run factorials            # writes ./factorials.txt
//     swift run factorials out.txt    # or another path
//
// Like Akka's `scan`, the first line is the initial value, 1 (= 0!), then
// 1!, 2!, … 100!: 101 lines.
import BigInt
import StreamKit

let path = CommandLine.arguments.dropFirst().first ?? "factorials.txt"

let factorials = Source.from(1...100)
    .transform { $0.scan(BigInt(1)) { accumulated, next in accumulated * BigInt(next) } }

do {
    let bytes = try await factorials.run(into: Sinks.lines(toFile: path, BigInt.self))
    print("wrote 101 factorials (\(bytes) bytes) to \(path)")
} catch {
    print("factorials: \(error)")
    exit(1)
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Errors raised by StreamKit operators themselves (as opposed to errors of the
/// user's upstream or closures, which pass through unchanged).
///
/// Switch over it with a `default:` case: new operators bring new cases in minor releases
/// (the compiler cannot insist on `default:` for a library enum built without library
/// evolution, so this is a documented rule, unlike `KafkaError.Kind`, which is a struct).
public enum StreamKitError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An operator was given a parameter it cannot work with; the message says which and what to pass.
    case invalidArgument(String)
    /// `buffer(size:overflow: .fail)` received an element while its buffer of `size` was full.
    case bufferOverflow(size: Int)
    /// No element arrived within the `idleTimeout` duration.
    case idleTimeout(Duration)
    /// The stream did not complete within the `completionTimeout` duration.
    case completionTimeout(Duration)
    /// The first element did not arrive within the `initialTimeout` duration.
    case initialTimeout(Duration)
    /// `partition(into:by:)`'s function returned an index outside `0..<count`.
    case partitionIndexOutOfRange(index: Int, count: Int)
    /// `groupBy` saw more distinct keys than `maxSubstreams`.
    case tooManySubstreams(max: Int)
    /// A kill switch aborted the stream without a more specific error.
    case aborted
    /// The operator's sub-stream or branch was iterated twice; each may be iterated once.
    case alreadyIterated(String)
    /// A file operation failed; `errno` is the system's error number.
    case io(operation: String, path: String, errno: Int32)
    /// An ``ask(timeout:clock:_:)`` call did not answer within its timeout.
    case askTimeout(Duration)

    /// A rendering for logs and error messages.
    public var description: String {
        switch self {
        case .invalidArgument(let message):
            return "invalid argument: \(message)"
        case .bufferOverflow(let size):
            return
                "buffer overflow: buffer(size: \(size), overflow: .fail) was full; use a larger size or another overflow strategy"
        case .idleTimeout(let duration):
            return "no element within the idle timeout of \(duration)"
        case .completionTimeout(let duration):
            return "stream did not complete within \(duration)"
        case .initialTimeout(let duration):
            return "first element did not arrive within \(duration)"
        case .partitionIndexOutOfRange(let index, let count):
            return "partition function returned \(index), outside 0..<\(count)"
        case .tooManySubstreams(let max):
            return "groupBy saw more than maxSubstreams = \(max) distinct keys; raise maxSubstreams or use fewer keys"
        case .aborted:
            return "stream aborted by a kill switch"
        case .alreadyIterated(let what):
            return "\(what) can be iterated only once"
        case .io(let operation, let path, let errno):
            return "\(operation) \(path) failed: \(systemErrorMessage(errno)) (errno \(errno))"
        case .askTimeout(let duration):
            return
                "no answer within the ask timeout of \(duration); raise the timeout or look at what keeps the callee busy"
        }
    }
}

@inline(__always)
func requireArgument(_ condition: Bool, _ message: @autoclosure () -> String) throws(StreamKitError) {
    if !condition { throw StreamKitError.invalidArgument(message()) }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

func systemErrorMessage(_ code: Int32) -> String {
    guard let message = strerror(code) else { return "unknown error" }
    return String(cString: message)
}

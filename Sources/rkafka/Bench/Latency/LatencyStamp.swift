/// What the load generator writes at the start of each value: when the record was produced
/// (nanoseconds since the run's origin, on `ContinuousClock`) and the measuring point it belongs
/// to (0: warm-up and readiness records, measured by nobody). Little-endian, 12 bytes; the rest
/// of the value is filler. The pipelines under test relay values unchanged.
enum LatencyStamp {
    static let size = 12

    /// Writes the stamp at the start of `value`, which holds at least ``size`` bytes.
    @inline(__always)
    static func write(sentNanoseconds: Int64, point: UInt32, into value: UnsafeMutableRawPointer) {
        value.storeBytes(of: sentNanoseconds.littleEndian, toByteOffset: 0, as: Int64.self)
        value.storeBytes(of: point.littleEndian, toByteOffset: 8, as: UInt32.self)
    }

    /// The stamp of a value of `length` bytes; `nil` for a value too short to hold one (the
    /// connector's warm-up record).
    @inline(__always)
    static func read(_ value: UnsafeRawPointer?, length: Int) -> (sent: Int64, point: UInt32)? {
        guard let value, length >= size else { return nil }
        let sent = Int64(littleEndian: value.loadUnaligned(fromByteOffset: 0, as: Int64.self))
        let point = UInt32(littleEndian: value.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        return (sent, point)
    }
}

/// The clock both ends of a latency measurement read: nanoseconds since one origin on
/// `ContinuousClock`, shared by the load generator and the reader of the same process.
struct LatencyClock: Sendable {
    let origin: ContinuousClock.Instant

    init(origin: ContinuousClock.Instant = .now) { self.origin = origin }

    @inline(__always)
    func nanoseconds(at instant: ContinuousClock.Instant = .now) -> Int64 {
        let elapsed = instant - origin
        return elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
    }
}

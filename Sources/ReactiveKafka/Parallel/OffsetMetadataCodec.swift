import Foundation

/// The commit metadata of a parallel source: which records above the committed offset were
/// already completed, so that the partition's next reader skips them.
///
/// Text (Kafka keeps metadata as a string): `PC1:<kind>:<base64>`. `PC1` is the version;
/// kind `r` is run-length (varint lengths of alternating not-done/done runs), `b` a bitset
/// (one bit per offset, set when done); the smaller is used. Both start with the committed
/// offset they describe, so metadata written with another offset is ignored.
///
/// It must fit the broker's limit (`offset.metadata.max.bytes`, 4096 by default): when it
/// does not, fewer completed offsets are encoded (those nearest the committed one), down to
/// none. What is left out is processed again: at-least-once, never a record skipped.
enum OffsetMetadataCodec {
    static let version = "PC1"

    /// The metadata telling `done` (ascending, disjoint ranges above `base`), at most `maxBytes`
    /// long; nil when there is nothing to tell or not even one range fits.
    static func encode(base: Int64, done: [Range<Int64>], maxBytes: Int) -> String? {
        let done = done.filter { $0.lowerBound >= base && !$0.isEmpty }
        guard !done.isEmpty else { return nil }
        let budget = (maxBytes - version.utf8.count - 3) / 4 * 3
        guard budget > 0 else { return nil }
        let runs = runLength(base: base, done: done, budget: budget)
        let bits = bitset(base: base, done: done, budget: budget)
        // The one covering more offsets, then the shorter.
        let best: (kind: String, payload: [UInt8], covered: Int64)?
        switch (runs, bits) {
        case (let r?, let b?):
            best =
                r.covered > b.covered || (r.covered == b.covered && r.payload.count <= b.payload.count)
                ? ("r", r.payload, r.covered) : ("b", b.payload, b.covered)
        case (let r?, nil): best = ("r", r.payload, r.covered)
        case (nil, let b?): best = ("b", b.payload, b.covered)
        case (nil, nil): best = nil
        }
        guard let best else { return nil }
        return "\(version):\(best.kind):\(Data(best.payload).base64EncodedString())"
    }

    /// The completed offsets above `committed` that `metadata` tells; empty when it is not this
    /// source's metadata or describes another offset.
    static func decode(_ metadata: String?, committed: Int64) -> [Range<Int64>] {
        guard let metadata else { return [] }
        let parts = metadata.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == version, let data = Data(base64Encoded: String(parts[2])) else { return [] }
        var reader = VarintReader(bytes: [UInt8](data))
        guard let base = reader.next(), Int64(exactly: base) == committed else { return [] }
        switch parts[1] {
        case "r": return decodeRuns(&reader, base: committed)
        case "b": return decodeBits(&reader, base: committed)
        default: return []
        }
    }

    private static func runLength(base: Int64, done: [Range<Int64>], budget: Int) -> (payload: [UInt8], covered: Int64)?
    {
        var payload = varint(UInt64(base))
        var cursor = base
        for range in done {
            let pair = varint(UInt64(range.lowerBound - cursor)) + varint(UInt64(range.count))
            guard payload.count + pair.count <= budget else { break }
            payload += pair
            cursor = range.upperBound
        }
        return cursor == base ? nil : (payload, cursor - base)
    }

    private static func bitset(base: Int64, done: [Range<Int64>], budget: Int) -> (payload: [UInt8], covered: Int64)? {
        let wanted = done.last!.upperBound - base
        let header = varint(UInt64(base))
        // The bit count's varint takes at most 10 bytes.
        let room = Int64(budget - header.count - 10) * 8
        let count = min(wanted, room)
        guard count > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int((count + 7) / 8))
        for range in done where range.lowerBound < base + count {
            for o in range.lowerBound..<min(range.upperBound, base + count) {
                let i = Int(o - base)
                bytes[i / 8] |= 1 << UInt8(i % 8)
            }
        }
        guard bytes.contains(where: { $0 != 0 }) else { return nil }
        return (header + varint(UInt64(count)) + bytes, count)
    }

    private static func decodeRuns(_ reader: inout VarintReader, base: Int64) -> [Range<Int64>] {
        var ranges: [Range<Int64>] = []
        var cursor = base
        while let gap = reader.next(), let length = reader.next() {
            guard let g = Int64(exactly: gap), let l = Int64(exactly: length), l > 0,
                cursor <= Int64.max - g - l
            else { return [] }
            ranges.append(cursor + g..<cursor + g + l)
            cursor += g + l
        }
        return reader.isAtEnd ? ranges : []
    }

    private static func decodeBits(_ reader: inout VarintReader, base: Int64) -> [Range<Int64>] {
        guard let count = reader.next(), let bytes = reader.rest(), UInt64(bytes.count) * 8 >= count else { return [] }
        var ranges: [Range<Int64>] = []
        var runStart: Int64?
        for i in 0..<Int64(count) {
            let set = bytes[Int(i / 8)] & (1 << UInt8(i % 8)) != 0
            if set, runStart == nil { runStart = base + i }
            if !set, let s = runStart {
                ranges.append(s..<base + i)
                runStart = nil
            }
        }
        if let s = runStart { ranges.append(s..<base + Int64(count)) }
        return ranges
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        repeat {
            let byte = UInt8(v & 0x7f)
            v >>= 7
            out.append(v == 0 ? byte : byte | 0x80)
        } while v != 0
        return out
    }

    struct VarintReader {
        let bytes: [UInt8]
        var index = 0
        var isAtEnd: Bool { index == bytes.count }

        mutating func next() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count, shift < 64 {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }

        mutating func rest() -> [UInt8]? {
            defer { index = bytes.count }
            return Array(bytes[index...])
        }
    }
}

import Foundation

/// An immutable run of bytes: a record's key or value, or a header value.
///
/// Bytes read from Kafka are a zero-copy view into the batch librdkafka
/// fetched: the batch stays alive as long as any view into it does. Bytes you
/// create own a private copy. Either way a `KafkaBytes` is `Sendable` and can
/// outlive the stream that produced it.
public struct KafkaBytes: Sendable, Hashable, RandomAccessCollection, CustomStringConvertible {
    public typealias Index = Int
    public typealias Element = UInt8

    // Keeps `pointer` valid: a fetched batch or an owned copy.
    @usableFromInline let owner: (any AnyObject & Sendable)?
    // nonisolated(unsafe): immutable, and `owner` (held as long as this value) keeps its bytes alive and unchanged.
    @usableFromInline nonisolated(unsafe) let pointer: UnsafeRawPointer?
    /// The number of bytes.
    public let count: Int

    @usableFromInline
    init(owner: (any AnyObject & Sendable)?, pointer: UnsafeRawPointer?, count: Int) {
        self.owner = owner
        self.pointer = count > 0 ? pointer : nil
        self.count = count > 0 ? count : 0
    }

    /// No bytes.
    public init() { self.init(owner: nil, pointer: nil, count: 0) }

    /// A copy of `bytes`.
    public init<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let array = Array(bytes)
        let storage = OwnedBytes(copying: array)
        self.init(owner: storage, pointer: storage.pointer.map { UnsafeRawPointer($0) }, count: array.count)
    }

    /// The UTF-8 bytes of `string`.
    public init(_ string: String) {
        self.init(Array(string.utf8))
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    @inlinable
    public subscript(position: Int) -> UInt8 {
        precondition(position >= 0 && position < count, "KafkaBytes index out of range")
        return pointer!.load(fromByteOffset: position, as: UInt8.self)
    }

    /// Calls `body` with the bytes, without copying.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(owner) {
            try body(UnsafeRawBufferPointer(start: pointer, count: count))
        }
    }

    /// The bytes as an array (a copy).
    public var array: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The bytes as `Data` (a copy).
    public var data: Data { withUnsafeBytes { Data($0) } }

    /// The bytes decoded as UTF-8, with invalid sequences repaired.
    public var string: String { withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

    public var description: String {
        count <= 64 ? string : "\(count) bytes"
    }

    public static func == (lhs: KafkaBytes, rhs: KafkaBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count == 0 { return true }
        return lhs.withUnsafeBytes { l in
            rhs.withUnsafeBytes { r in memcmp(l.baseAddress!, r.baseAddress!, l.count) == 0 }
        }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

extension KafkaBytes: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(value) }
}

/// Heap storage for bytes created by the application.
final class OwnedBytes: Sendable {
    // nonisolated(unsafe): immutable; its bytes are written once in init and freed only in deinit.
    nonisolated(unsafe) let pointer: UnsafeMutableRawPointer?

    init(copying bytes: [UInt8]) {
        if bytes.isEmpty {
            pointer = nil
        } else {
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 1)
            bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            pointer = p
        }
    }

    deinit { pointer?.deallocate() }
}

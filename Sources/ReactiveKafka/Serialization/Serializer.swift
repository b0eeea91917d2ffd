import Foundation

/// The bytes a serialiser produced, in the form that avoids a copy.
public enum SerializedBytes: Sendable {
    /// Kafka bytes (for example a consumed record's value, forwarded untouched).
    case bytes(KafkaBytes)
    /// The UTF-8 bytes of a string, written without an intermediate copy.
    case utf8(String)
    /// An array of bytes.
    case array([UInt8])
    /// Foundation data.
    case data(Data)

    /// Calls `body` with the bytes, contiguous, copying only when the string is not.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .bytes(let b): return try b.withUnsafeBytes(body)
        case .array(let a): return try a.withUnsafeBytes(body)
        case .data(let d): return try d.withUnsafeBytes(body)
        case .utf8(let s):
            if let r = try s.utf8.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
                return r
            }
            return try Array(s.utf8).withUnsafeBytes(body)
        }
    }
}

/// Turns a Swift value into the bytes of a record's key or value.
///
/// A serialiser that throws fails the producing stream with a
/// ``KafkaError/Kind/serialization`` error. Returning `nil` writes a null key or value.
public struct Serializer<Value>: Sendable {
    private let body: @Sendable (Value) throws -> SerializedBytes?
    /// Whether this is ``bytes``: a producer then reads the `KafkaBytes` in place instead of
    /// calling `body` (no call, and no retain and release of the bytes, per record).
    @usableFromInline let writesKafkaBytesAsIs: Bool

    /// A serialiser that runs `body`.
    public init(_ body: @escaping @Sendable (Value) throws -> SerializedBytes?) {
        self.init(body, writesKafkaBytesAsIs: false)
    }

    private init(_ body: @escaping @Sendable (Value) throws -> SerializedBytes?, writesKafkaBytesAsIs: Bool) {
        self.body = body
        self.writesKafkaBytesAsIs = writesKafkaBytesAsIs
    }

    /// Serialises `value`.
    public func serialize(_ value: Value) throws -> SerializedBytes? {
        try body(value)
    }
}

extension Serializer where Value == KafkaBytes {
    /// The bytes as they are.
    public static var bytes: Self { Self({ .bytes($0) }, writesKafkaBytesAsIs: true) }
}

extension Serializer where Value == String {
    /// UTF-8 text.
    public static var string: Self { Self { .utf8($0) } }
}

extension Serializer where Value == [UInt8] {
    /// The array's bytes.
    public static var byteArray: Self { Self { .array($0) } }
}

extension Serializer where Value == Data {
    /// The data's bytes.
    public static var data: Self { Self { .data($0) } }
}

extension Serializer where Value: Encodable {
    /// JSON encoded with `encoder`.
    public static func json(
        _ type: Value.Type = Value.self, encoder: @escaping @Sendable () -> JSONEncoder = { JSONEncoder() }
    ) -> Self {
        Self { .data(try encoder().encode($0)) }
    }
}

extension Serializer: CustomStringConvertible {
    /// `Serializer<Value>`: its body is a closure, so its type is what can be said about it.
    public var description: String { "Serializer<\(Value.self)>" }
}

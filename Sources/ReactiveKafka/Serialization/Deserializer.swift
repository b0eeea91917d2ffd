import Foundation

/// Turns the bytes of a record's key or value into a Swift value.
///
/// A deserialiser that throws fails the stream with a
/// ``KafkaError/Kind/deserialization`` error naming the record's topic,
/// partition and offset. `nil` bytes mean the record had no key (or value).
public struct Deserializer<Value>: Sendable {
    /// How ``bytes`` and ``optionalBytes`` hand the bytes on.
    enum BytesAsIs {
        /// A missing key or value reads as empty bytes (`Value == KafkaBytes`).
        case empty
        /// A missing key or value reads as nil (`Value == KafkaBytes?`).
        case null
    }

    private let body: @Sendable (KafkaBytes?) throws -> Value
    /// Set for ``bytes`` and ``optionalBytes`` only: a consumer then hands the bytes on as
    /// they are, without calling `body` (no call, no retain and release of the bytes, per record).
    let bytesAsIs: BytesAsIs?

    /// A deserialiser that runs `body`.
    public init(_ body: @escaping @Sendable (KafkaBytes?) throws -> Value) {
        self.init(body, bytesAsIs: nil)
    }

    private init(_ body: @escaping @Sendable (KafkaBytes?) throws -> Value, bytesAsIs: BytesAsIs?) {
        self.body = body
        self.bytesAsIs = bytesAsIs
    }

    /// Deserialises `bytes`.
    public func deserialize(_ bytes: KafkaBytes?) throws -> Value {
        try body(bytes)
    }
}

extension Deserializer where Value == KafkaBytes {
    /// The raw bytes, without copying; a missing key or value reads as empty.
    public static var bytes: Self { Self({ $0 ?? KafkaBytes() }, bytesAsIs: .empty) }
}

extension Deserializer where Value == KafkaBytes? {
    /// The raw bytes, without copying; `nil` when the record has no key or value.
    public static var optionalBytes: Self { Self({ $0 }, bytesAsIs: .null) }
}

extension Deserializer where Value == String {
    /// UTF-8 text; a missing key or value reads as the empty string.
    public static var string: Self { Self { $0?.string ?? "" } }
}

extension Deserializer where Value == String? {
    /// UTF-8 text, or `nil` when the record has no key or value.
    public static var optionalString: Self { Self { $0?.string } }
}

extension Deserializer where Value == [UInt8] {
    /// A copy of the bytes as an array; a missing key or value reads as empty.
    public static var byteArray: Self { Self { $0?.array ?? [] } }
}

/// Why a deserialiser rejected its input.
public struct DeserializationFailure: Error, Sendable, CustomStringConvertible {
    /// What was wrong with the bytes.
    public let reason: String
    /// A failure explained by `reason`.
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension Deserializer where Value: Decodable {
    /// JSON decoded with `decoder` into `type`. A missing key or value is an error.
    public static func json(
        _ type: Value.Type = Value.self, decoder: @escaping @Sendable () -> JSONDecoder = { JSONDecoder() }
    ) -> Self {
        Self { bytes in
            guard let bytes else {
                throw DeserializationFailure("expected JSON for \(Value.self), found no bytes (null)")
            }
            do {
                return try decoder().decode(Value.self, from: bytes.data)
            } catch let error as DecodingError {
                throw DeserializationFailure("invalid JSON for \(Value.self): \(error)")
            }
        }
    }
}

extension Deserializer: CustomStringConvertible {
    /// `Deserializer<Value>`: its body is a closure, so its type is what can be said about it.
    public var description: String { "Deserializer<\(Value.self)>" }
}

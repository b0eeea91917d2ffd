import Foundation
import ReactiveKafka
import Testing

/// The error kinds users switch over: an open set (structs with a static member per kind, so a
/// new kind is not a breaking change), each documented and named in descriptions as declared.
@Suite struct ErrorKindTests {
    static let errorFiles = [
        "Sources/ReactiveKafka/Core/KafkaError.swift",
        "Sources/ReactiveKafka/Tables/KafkaTableError.swift",
        "Sources/ReactiveKafka/EventSourcing/EventSourcedError.swift",
    ]

    /// What a caller writes: named kinds, and `default:` for the ones it does not handle.
    static func reaction(to error: KafkaError) -> String {
        switch error.kind {
        case .notAssigned, .commitTimeout: return "retry"
        case .fenced: return "exit"
        default: return "fail"
        }
    }

    @Test func everyKindIsDocumentedAndNamedAsDeclared() throws {
        let declaration = try Regex(#"public static let (\w+) = Kind\("(\w+)"\)"#)
        for file in Self.errorFiles {
            let text = try String(contentsOf: ReadmeBlocks.root.appendingPathComponent(file), encoding: .utf8)
            #expect(
                !text.contains("public enum Kind"),
                "\(file): Kind must stay a struct, so adding a kind does not break switches")
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            var kinds = 0
            for (index, line) in lines.enumerated() {
                guard let match = line.firstMatch(of: declaration) else { continue }
                kinds += 1
                let (member, name) = (match.output[1].substring ?? "", match.output[2].substring ?? "")
                #expect(member == name, "\(file): \(member) describes itself as \(name)")
                let docLine = index > 0 ? lines[index - 1].trimmingCharacters(in: .whitespaces) : ""
                #expect(docLine.hasPrefix("///"), "\(file): kind \(member) has no doc comment")
            }
            #expect(kinds >= 6, "\(file): found \(kinds) kinds; the declaration pattern no longer matches")
        }
    }

    @Test func kindsAreDistinctAndShowTheirNames() {
        let kinds: [KafkaError.Kind] = [
            .invalidConfiguration, .deserialization, .serialization, .commitTimeout, .commitFailed, .deliveryFailed,
            .fatal, .brokerUnreachable, .shutDown, .illegalState, .kafka, .fenced, .transactionAborted, .notAssigned,
            .cancelled,
        ]
        #expect(Set(kinds).count == kinds.count)
        #expect(kinds.map(\.description).contains("transactionAborted"))
        #expect(
            "\(KafkaError(.commitTimeout, "no answer within 15 s"))"
                == "KafkaError.commitTimeout: no answer within 15 s")
        #expect("\(KafkaTableError.Kind.corruptStore)" == "corruptStore")
        #expect("\(EventSourcedError.Kind.changelog)" == "changelog")
    }

    @Test func aSwitchMatchesNamedKindsAndFallsBackToDefault() {
        #expect(Self.reaction(to: KafkaError(.commitTimeout, "slow")) == "retry")
        #expect(Self.reaction(to: KafkaError(.fenced, "taken over")) == "exit")
        #expect(Self.reaction(to: KafkaError(.deserialization, "bad record")) == "fail")
        #expect(KafkaError(.kafka, "x").kind != .fatal)
    }
}

/// The bench command's way to StreamKit's own scenarios (`streamkit-…`), which live in
/// `StreamKitBench.swift`; the two members forward to `StreamKitBench`.
enum StreamKitBenchShim {
    /// Names of the StreamKit scenarios, all starting with `streamkit-`.
    static var scenarios: [String] { StreamKitBench.scenarios }

    /// Runs StreamKit scenario `scenario` over `elements` elements.
    static func run(_ scenario: String, elements: Int) async throws -> BenchLine {
        try await StreamKitBench.run(scenario, elements: elements)
    }
}

/// A benchmark that could not run, with the reason.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

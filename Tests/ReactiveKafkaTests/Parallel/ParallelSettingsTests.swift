import Testing

@testable import ReactiveKafka

@Suite struct ParallelSettingsTests {
    @Test func backoffDoublesUpToItsCap() {
        let retry = ParallelRetry(maxAttempts: 10, initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(500))
        #expect(
            (1...5).map { retry.backoff(after: $0) } == [
                .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(500), .milliseconds(500),
            ])
    }

    @Test(arguments: [
        ParallelSettings(maxConcurrency: 0),
        ParallelSettings(maxBufferedPerPartition: 0),
        ParallelSettings(commitInterval: .zero),
        ParallelSettings(drainTimeout: .seconds(-1)),
        ParallelSettings(maxMetadataBytes: -1),
        ParallelSettings(retry: ParallelRetry(maxAttempts: 0)),
        ParallelSettings(retry: ParallelRetry(initialBackoff: .seconds(2), maxBackoff: .seconds(1))),
    ])
    func badSettingsAreRefusedWithAnInvalidConfigurationError(_ settings: ParallelSettings) {
        #expect(throws: KafkaError.self) { try settings.validate() }
        do { try settings.validate() } catch { #expect(error.kind == .invalidConfiguration) }
    }

    @Test func theDefaultsAreValid() throws {
        try ParallelSettings().validate()
    }
}

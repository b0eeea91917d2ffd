import Testing

@testable import ReactiveKafka

@Suite struct SettingsTests {
    @Test func unknownPropertyIsATypedErrorQuotingLibrdkafka() {
        let settings = ConsumerSettings().withProperty("no.such.property", "1")
        #expect {
            try settings.validate()
        } throws: { error in
            let e = error as! KafkaError
            return e.kind == .invalidConfiguration && e.message.contains("no.such.property")
                && e.message.contains("No such configuration property")
        }
    }

    @Test func invalidValueIsATypedError() {
        let settings = ProducerSettings().withProperty("acks", "sometimes")
        #expect {
            try settings.validate()
        } throws: { error in
            let e = error as! KafkaError
            return e.kind == .invalidConfiguration && e.message.contains("acks") && e.message.contains("sometimes")
        }
    }

    @Test func outOfRangeConnectorFieldsAreRejected() {
        #expect(throws: KafkaError.self) { try ConsumerSettings().withMaxBufferedBytes(0).validate() }
        #expect(throws: KafkaError.self) { try ProducerSettings().withParallelism(0).validate() }
        #expect(throws: KafkaError.self) { try CommitterSettings().withMaxBatch(0).validate() }
    }

    @Test func validSettingsPass() throws {
        try ConsumerSettings().withBootstrapServers("localhost:9092").withGroupId("g").validate()
        try ProducerSettings().withProperty("linger.ms", "5").validate()
        try CommitterSettings().validate()
    }

    @Test func committerDefaultsMatchAlpakka() {
        let s = CommitterSettings()
        #expect(s.maxBatch == 1000)
        #expect(s.maxInterval == .seconds(10))
        #expect(s.delivery == .waitForAck)
        #expect(s.when == .offsetFirstObserved)
    }
}

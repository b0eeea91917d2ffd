import CRdKafka
import Testing

@testable import ReactiveKafka

/// The flow's lock-free ring on its own (no Kafka): ordering, both capacity
/// bounds and failures, driven with hand-made delivery reports.
@Suite struct ProducerFlowRingTests {
    typealias Ring = ProducerFlowRing<String, String, Int>

    static func single(_ i: Int) -> Ring.Message {
        .single(ProducerRecord(topic: "t", value: "v\(i)"), passThrough: i)
    }

    static func ok(_ position: Int, index: Int = 0, partition: Int32 = 0, offset: Int64 = 0) -> DeliveryReport {
        DeliveryReport(
            token: Ring.token(position: position, index: index), error: RD_KAFKA_RESP_ERR_NO_ERROR,
            partition: partition, offset: offset, timestamp: nil)
    }

    static func failed(_ position: Int) -> DeliveryReport {
        DeliveryReport(
            token: Ring.token(position: position, index: 0), error: RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            partition: 0, offset: -1, timestamp: nil)
    }

    @discardableResult
    static func deliver(_ ring: Ring, _ reports: [DeliveryReport]) -> Bool {
        reports.withUnsafeBufferPointer { ring.deliver($0) }
    }

    static func drain(_ buffer: Ring.ResultBuffer) -> [Ring.Result] {
        var all: [Ring.Result] = []
        while let result = buffer.take() { all.append(result) }
        return all
    }

    @Test func resultsLeaveInInputOrderWhateverOrderReportsArriveIn() {
        let ring = Ring(parallelism: 10)
        for i in 0..<3 { _ = ring.publish(Self.single(i), recordCount: 1) }
        let buffer = Ring.ResultBuffer()
        Self.deliver(ring, [Self.ok(2, offset: 7), Self.ok(1, offset: 6)])
        #expect(!ring.headIsReady())
        guard case .nothingReady = ring.pop(into: buffer) else {
            Issue.record("the head is not acknowledged yet")
            return
        }
        Self.deliver(ring, [Self.ok(0, offset: 5)])
        #expect(ring.headIsReady())
        guard case .emitted(3) = ring.pop(into: buffer) else {
            Issue.record("expected three results")
            return
        }
        let results = Self.drain(buffer)
        #expect(results.map(\.passThrough) == [0, 1, 2])
        #expect(results.map { $0.metadata.first?.offset } == [5, 6, 7])
        #expect(ring.isDrained)
    }

    @Test func parallelismBoundsUnacknowledgedMessagesAndTheRingBoundsTheRest() {
        let ring = Ring(parallelism: 2)
        #expect(ring.capacity == 4)
        _ = ring.publish(Self.single(0), recordCount: 1)
        _ = ring.publish(Self.single(1), recordCount: 1)
        #expect(!ring.pumpHasCapacity, "two unacknowledged messages")
        // Acknowledging a message behind the head frees a place even though nothing can be emitted yet.
        Self.deliver(ring, [Self.ok(1)])
        #expect(ring.pumpHasCapacity)
        _ = ring.publish(Self.single(2), recordCount: 1)
        Self.deliver(ring, [Self.ok(2)])
        _ = ring.publish(Self.single(3), recordCount: 1)
        Self.deliver(ring, [Self.ok(3)])
        // Four pulled and not given back: the ring is full although only one is unacknowledged.
        #expect(!ring.pumpHasCapacity)
        Self.deliver(ring, [Self.ok(0)])
        let buffer = Ring.ResultBuffer()
        guard case .emitted(4) = ring.pop(into: buffer) else {
            Issue.record("expected four results")
            return
        }
        #expect(!ring.pumpHasCapacity, "handed out but not yet given back")
        ring.giveBack()
        #expect(ring.pumpHasCapacity)
        #expect(ring.hasFreeCapacity(2))
    }

    @Test func aMultiMessageWaitsForEveryRecordAndKeepsRecordOrder() {
        let ring = Ring(parallelism: 10)
        let records = (0..<3).map { ProducerRecord<String, String>(topic: "t", value: "r\($0)") }
        let position = ring.publish(.multi(records, passThrough: 9), recordCount: 3)
        let buffer = Ring.ResultBuffer()
        Self.deliver(
            ring,
            [
                Self.ok(position, index: 2, partition: 2, offset: 30),
                Self.ok(position, index: 0, partition: 0, offset: 10),
            ])
        guard case .nothingReady = ring.pop(into: buffer) else {
            Issue.record("one record is missing")
            return
        }
        Self.deliver(ring, [Self.ok(position, index: 1, partition: 1, offset: 20)])
        guard case .emitted(1) = ring.pop(into: buffer) else {
            Issue.record("expected the result")
            return
        }
        let result = Self.drain(buffer).first
        #expect(result?.metadata.map(\.offset) == [10, 20, 30])
        #expect(result?.metadata.map(\.partition) == [0, 1, 2])
    }

    @Test func messagesWithoutRecordsAreCompleteAtOnce() {
        let ring = Ring(parallelism: 10)
        _ = ring.publish(.passThrough(1), recordCount: 0)
        _ = ring.publish(.multi([], passThrough: 2), recordCount: 0)
        #expect(ring.headIsReady())
        let buffer = Ring.ResultBuffer()
        guard case .emitted(2) = ring.pop(into: buffer) else {
            Issue.record("expected results")
            return
        }
        #expect(Self.drain(buffer).map(\.passThrough) == [1, 2])
    }

    @Test func aFailedDeliveryFailsAfterTheResultsBeforeIt() {
        let ring = Ring(parallelism: 10)
        for i in 0..<3 { _ = ring.publish(Self.single(i), recordCount: 1) }
        #expect(Self.deliver(ring, [Self.ok(0), Self.failed(1), Self.ok(2)]))
        let buffer = Ring.ResultBuffer()
        guard case .emitted(1) = ring.pop(into: buffer) else {
            Issue.record("the first result comes first")
            return
        }
        #expect(Self.drain(buffer).map(\.passThrough) == [0])
        guard case .failed(let error) = ring.pop(into: buffer) else {
            Issue.record("then the failure")
            return
        }
        #expect(error.kind == .deliveryFailed)
        #expect(error.message.contains("t-0"))
        #expect(error.code == Int32(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue))
    }

    @Test func aRefusedRecordFailsItsMessage() {
        let ring = Ring(parallelism: 10)
        let position = ring.publish(Self.single(0), recordCount: 1)
        ring.fail(position: position, error: KafkaError(.deliveryFailed, "refused"))
        #expect(ring.headIsReady())
        guard case .failed(let error) = ring.pop(into: Ring.ResultBuffer()) else {
            Issue.record("expected the failure")
            return
        }
        #expect(error.message == "refused")
    }

    @Test func unpoppedMessagesAreReleasedWithTheRing() {
        final class Tracked: Sendable {}
        weak var weakTracked: Tracked?
        do {
            let ring = ProducerFlowRing<String, String, Tracked>(parallelism: 4)
            let tracked = Tracked()
            weakTracked = tracked
            _ = ring.publish(.passThrough(tracked), recordCount: 0)
        }
        #expect(weakTracked == nil)
    }
}

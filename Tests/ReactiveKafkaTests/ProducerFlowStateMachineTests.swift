import CRdKafka
import Testing
@testable import ReactiveKafka

/// The flow's state machine on its own: ordering, capacity and failures,
/// driven with hand-made delivery reports.
@Suite struct ProducerFlowStateMachineTests {
    typealias Machine = ProducerFlowStateMachine<String, String, Int>

    static func single(_ i: Int) -> Machine.Message {
        .single(ProducerRecord(topic: "t", value: "v\(i)"), passThrough: i)
    }

    static func ok(_ sequence: UInt64, index: Int = 0, partition: Int32 = 0, offset: Int64 = 0) -> DeliveryReport {
        DeliveryReport(token: Machine.token(sequence: sequence, index: index), error: RD_KAFKA_RESP_ERR_NO_ERROR,
                       partition: partition, offset: offset, timestamp: nil, reason: nil)
    }

    static func failed(_ sequence: UInt64, index: Int = 0) -> DeliveryReport {
        DeliveryReport(token: Machine.token(sequence: sequence, index: index), error: RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                       partition: 0, offset: -1, timestamp: nil, reason: "too big")
    }

    @discardableResult
    static func deliver(_ machine: inout Machine, _ reports: [DeliveryReport]) -> Machine.Wakeups {
        reports.withUnsafeBufferPointer { machine.deliver($0) }
    }

    @discardableResult
    static func register(_ machine: inout Machine, _ message: Machine.Message, records: Int = 1) -> UInt64 {
        guard case .produce(let sequence, _, _) = machine.register(message, recordCount: records) else {
            Issue.record("register refused")
            return 0
        }
        return sequence
    }

    @Test func resultsLeaveInInputOrderWhateverOrderReportsArriveIn() {
        var machine = Machine(parallelism: 10)
        for i in 0..<3 { Self.register(&machine, Self.single(i)) }
        var buffer: [Machine.Result] = []
        Self.deliver(&machine, [Self.ok(2, offset: 7), Self.ok(1, offset: 6)])
        guard case .suspend = machine.next(returned: 0, into: &buffer) else { Issue.record("head is not acknowledged yet"); return }
        #expect(machine.downstreamWaiting)
        let wakeups = Self.deliver(&machine, [Self.ok(0, offset: 5)])
        #expect(wakeups.downstream)
        guard case .emit = machine.next(returned: 0, into: &buffer) else { Issue.record("expected results"); return }
        #expect(buffer.map(\.passThrough) == [0, 1, 2])
        #expect(buffer.map { $0.metadata.first?.offset } == [5, 6, 7])
    }

    @Test func capacityCountsMessagesUntilTheDownstreamGivesThemBack() {
        var machine = Machine(parallelism: 2)
        #expect(machine.pumpWantsCapacity() == .proceed)
        guard case .produce(_, true, _) = machine.register(Self.single(0), recordCount: 1) else { Issue.record("expected capacity"); return }
        guard case .produce(_, false, _) = machine.register(Self.single(1), recordCount: 1) else { Issue.record("expected no capacity"); return }
        #expect(machine.pumpWantsCapacity() == .suspend)
        Self.deliver(&machine, [Self.ok(0), Self.ok(1)])
        var buffer: [Machine.Result] = []
        // Handed to the downstream, but not yet given back: still counted.
        guard case .emit(false) = machine.next(returned: 0, into: &buffer) else { Issue.record("expected results, pump still waiting"); return }
        #expect(machine.outstanding == 2)
        buffer.removeAll()
        guard case .suspend(true) = machine.next(returned: 2, into: &buffer) else { Issue.record("expected the pump to be resumed"); return }
        #expect(machine.pumpWantsCapacity() == .proceed)
    }

    @Test func aMultiMessageWaitsForEveryRecordAndKeepsRecordOrder() {
        var machine = Machine(parallelism: 10)
        let records = (0..<3).map { ProducerRecord<String, String>(topic: "t", value: "r\($0)") }
        let sequence = Self.register(&machine, .multi(records, passThrough: 9), records: 3)
        var buffer: [Machine.Result] = []
        Self.deliver(&machine, [Self.ok(sequence, index: 2, partition: 2, offset: 30), Self.ok(sequence, index: 0, partition: 0, offset: 10)])
        guard case .suspend = machine.next(returned: 0, into: &buffer) else { Issue.record("one record is missing"); return }
        Self.deliver(&machine, [Self.ok(sequence, index: 1, partition: 1, offset: 20)])
        guard case .emit = machine.next(returned: 0, into: &buffer) else { Issue.record("expected the result"); return }
        #expect(buffer.first?.metadata.map(\.offset) == [10, 20, 30])
        #expect(buffer.first?.metadata.map(\.partition) == [0, 1, 2])
    }

    @Test func passThroughAndEmptyMultiCompleteAtOnceAndWakeTheDownstream() {
        var machine = Machine(parallelism: 10)
        var buffer: [Machine.Result] = []
        guard case .suspend = machine.next(returned: 0, into: &buffer) else { Issue.record("nothing registered yet"); return }
        guard case .produce(_, _, true) = machine.register(.passThrough(1), recordCount: 0) else { Issue.record("should wake the downstream"); return }
        Self.register(&machine, .multi([], passThrough: 2), records: 0)
        guard case .emit = machine.next(returned: 0, into: &buffer) else { Issue.record("expected results"); return }
        #expect(buffer.map(\.passThrough) == [1, 2])
    }

    @Test func aFailedDeliveryFailsAfterTheResultsBeforeItAndStopsThePump() {
        var machine = Machine(parallelism: 10)
        for i in 0..<3 { Self.register(&machine, Self.single(i)) }
        let wakeups = Self.deliver(&machine, [Self.ok(0), Self.failed(1), Self.ok(2)])
        #expect(!wakeups.pump)
        #expect(machine.pumpWantsCapacity() == .stop)
        var buffer: [Machine.Result] = []
        guard case .emit = machine.next(returned: 0, into: &buffer) else { Issue.record("the first result comes first"); return }
        #expect(buffer.map(\.passThrough) == [0])
        buffer.removeAll()
        guard case .fail(let error, _) = machine.next(returned: 1, into: &buffer) else { Issue.record("then the failure"); return }
        #expect((error as? KafkaError)?.kind == .deliveryFailed)
        #expect((error as? KafkaError)?.message.contains("t-0") == true)
        guard case .finish = machine.next(returned: 0, into: &buffer) else { Issue.record("a failed run stays finished"); return }
    }

    @Test func upstreamCompletionWaitsForEverythingInFlight() {
        var machine = Machine(parallelism: 10)
        Self.register(&machine, Self.single(0))
        _ = machine.pumpFinished(error: nil)
        var buffer: [Machine.Result] = []
        guard case .suspend = machine.next(returned: 0, into: &buffer) else { Issue.record("still in flight"); return }
        #expect(Self.deliver(&machine, [Self.ok(0)]).downstream)
        guard case .emit = machine.next(returned: 0, into: &buffer) else { Issue.record("expected the result"); return }
        guard case .finish = machine.next(returned: 1, into: &buffer) else { Issue.record("then completion"); return }
    }

    @Test func anEngineFailureFailsEveryUnacknowledgedMessage() {
        var machine = Machine(parallelism: 10)
        Self.register(&machine, Self.single(0))
        Self.register(&machine, Self.single(1))
        Self.deliver(&machine, [Self.ok(0)])
        let wakeups = machine.engineFailed(KafkaError(.fatal, "boom"))
        #expect(!wakeups.downstream)
        var buffer: [Machine.Result] = []
        guard case .emit = machine.next(returned: 0, into: &buffer) else { Issue.record("the acknowledged one is emitted"); return }
        guard case .fail(let error, _) = machine.next(returned: 1, into: &buffer) else { Issue.record("then the failure"); return }
        #expect((error as? KafkaError)?.kind == .fatal)
    }

    @Test func staleReportsAreIgnored() {
        var machine = Machine(parallelism: 10)
        Self.register(&machine, Self.single(0))
        Self.deliver(&machine, [Self.ok(5), Self.ok(0)])
        var buffer: [Machine.Result] = []
        guard case .emit = machine.next(returned: 0, into: &buffer) else { Issue.record("expected the result"); return }
        #expect(buffer.count == 1)
    }
}

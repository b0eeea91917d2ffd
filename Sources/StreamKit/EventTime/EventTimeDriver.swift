import DequeModule

/// The async shell shared by the pull-through event-time operators (windows, joins, patterns):
/// pulls the upstream only when no output is waiting, feeds the state machine, and at the end
/// of the input lets it flush. Taking the machine out while it changes keeps it uniquely
/// referenced, so its state is never copied; after the end, or an upstream error, it is gone.
@usableFromInline struct EventTimeDriver<Base: AsyncIteratorProtocol, Machine, Output> {
    @usableFromInline var base: Base
    @usableFromInline var machine: Machine?
    @usableFromInline var invalid: StreamKitError?
    @usableFromInline var pending: Deque<Output> = []
    @usableFromInline let receive: (inout Machine, Base.Element, inout Deque<Output>) -> Void
    @usableFromInline let finish: (inout Machine, inout Deque<Output>) -> Void

    @inlinable init(
        base: Base, machine: Result<Machine, StreamKitError>,
        receive: @escaping (inout Machine, Base.Element, inout Deque<Output>) -> Void,
        finish: @escaping (inout Machine, inout Deque<Output>) -> Void
    ) {
        self.base = base
        switch machine {
        case .success(let machine): self.machine = machine
        case .failure(let error): invalid = error
        }
        self.receive = receive
        self.finish = finish
    }

    @inlinable mutating func next() async throws -> Output? {
        if let invalid {
            self.invalid = nil
            throw invalid
        }
        while true {
            if let output = pending.popFirst() { return output }
            guard var machine = machine.take() else { return nil }
            guard let element = try await base.next() else {
                finish(&machine, &pending)
                continue
            }
            receive(&machine, element, &pending)
            self.machine = machine
        }
    }
}

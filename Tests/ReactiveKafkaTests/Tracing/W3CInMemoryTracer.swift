import InMemoryTracing
import Tracing

/// An `InMemoryTracer` that propagates its span context the W3C way, as production tracers
/// (swift-otel) do: `traceparent: 00-<32 hex trace id>-<16 hex span id>-01`, and `tracestate`
/// when the context holds one. `InMemoryTracer` itself writes `in-memory-trace-id` and
/// `in-memory-span-id` headers, which would not show what a real deployment sends.
///
/// Each test scopes its own tracer with `withTracer(_:_:)`: the library reads
/// `InstrumentationSystem.instrument`, which is that task-local tracer here and the
/// bootstrapped one in an application, so tests need no process-wide bootstrap and do not
/// see each other's spans.
struct W3CInMemoryTracer: Tracer {
    let recorder = InMemoryTracer(idGenerator: .w3c, recordInjections: false, recordExtractions: false)

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> InMemorySpan {
        recorder.startSpan(
            operationName, context: context(), ofKind: kind, at: instant(), function: function, file: fileID, line: line
        )
    }

    func activeSpan(identifiedBy context: ServiceContext) -> InMemorySpan? {
        recorder.activeSpan(identifiedBy: context)
    }

    func forceFlush() { recorder.forceFlush() }

    var finishedSpans: [FinishedInMemorySpan] { recorder.finishedSpans }

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    )
    where Inject.Carrier == Carrier {
        guard let span = context.inMemorySpanContext else { return }
        injector.inject("00-\(span.traceID)-\(span.spanID)-01", forKey: "traceparent", into: &carrier)
        if let state = context.traceState { injector.inject(state, forKey: "tracestate", into: &carrier) }
    }

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    )
    where Extract.Carrier == Carrier {
        guard let parent = extractor.extract(key: "traceparent", from: carrier).flatMap(TraceParent.init) else {
            return
        }
        context.inMemorySpanContext = InMemorySpanContext(
            traceID: parent.traceID, spanID: parent.spanID, parentSpanID: nil)
        context.traceState = extractor.extract(key: "tracestate", from: carrier)
    }
}

/// A `traceparent` value split into its W3C fields, nil unless it is exactly
/// `<2 hex version>-<32 hex trace id>-<16 hex span id>-<2 hex flags>` (lower-case hex).
struct TraceParent: Equatable {
    let version: String
    let traceID: String
    let spanID: String
    let flags: String

    init?(_ text: String) {
        let fields = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 4,
            zip(fields, [2, 32, 16, 2]).allSatisfy({ field, length in
                field.count == length && field.allSatisfy(\.isLowercaseHex)
            })
        else { return nil }
        (version, traceID, spanID, flags) = (fields[0], fields[1], fields[2], fields[3])
    }
}

extension Character {
    fileprivate var isLowercaseHex: Bool { isHexDigit && !isUppercase }
}

extension ServiceContext {
    /// The W3C `tracestate` the test tracer propagates beside the span context.
    var traceState: String? {
        get { self[TraceStateKey.self] }
        set { self[TraceStateKey.self] = newValue }
    }

    private enum TraceStateKey: ServiceContextKey {
        typealias Value = String
    }
}

extension InMemoryTracer.IDGenerator {
    /// Random, non-zero W3C ids: 16 bytes of trace id, 8 of span id, as lower-case hex.
    static var w3c: Self {
        Self(nextTraceID: { randomHex(bytes: 16) }, nextSpanID: { randomHex(bytes: 8) })
    }

    private static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        while true {
            let values = (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // All zeros is W3C's invalid id.
            if values.contains(where: { $0 != 0 }) {
                return values.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
            }
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: Swift.max(0, width - count)) + self
    }
}

/// An iterator's hold on its consumer engine (see ``ConsumerLifecycleStateMachine``).
///
/// Taken when the iterator starts reading, released when its stream ends (the
/// iterator drops it on completion or failure) or when the last copy of the
/// iterator is dropped (a `break`, `take(n)`, a cancelled task): whichever
/// comes first, exactly once.
final class ConsumerEngineLease: Sendable {
    let engine: ConsumerEngine
    let reader: ConsumerEngine.Reader

    /// A lease on `engine` for `reader`; nil when the engine is already closing.
    init?(_ engine: ConsumerEngine, reader: ConsumerEngine.Reader) {
        guard engine.takeLease() else { return nil }
        self.engine = engine
        self.reader = reader
    }

    deinit { engine.releaseLease(reader) }
}

/// Protection against a consumer silently jumping back and reprocessing a
/// topic (Alpakka's `OffsetResetProtectionSettings`): for example when its
/// committed offset expired or a fetch fell out of range and
/// `auto.offset.reset=earliest` moved it to the start of the log.
///
/// When a partition delivers records further back than a threshold from the
/// partition's committed offset (or, with a time threshold, records older by
/// more than that than the newest already read from it), those records are
/// dropped, the partition is sought back to its committed offset, and a
/// warning is logged. Set at least one threshold.
public struct OffsetResetProtection: Sendable, Equatable {
    /// How many offsets behind the committed offset a record may be.
    public var offsetThreshold: Int64?
    /// How much older than the newest record read from the partition a record may be.
    public var timeThreshold: Duration?

    /// Protection with the given thresholds.
    public init(offsetThreshold: Int64? = nil, timeThreshold: Duration? = nil) {
        self.offsetThreshold = offsetThreshold
        self.timeThreshold = timeThreshold
    }

    func validate() throws(KafkaError) {
        try check(
            offsetThreshold != nil || timeThreshold != nil,
            "offset reset protection needs an offsetThreshold or a timeThreshold")
        if let offsetThreshold {
            try check(offsetThreshold >= 0, "offsetThreshold must not be negative, got \(offsetThreshold)")
        }
        if let timeThreshold {
            try check(timeThreshold >= .zero, "timeThreshold must not be negative, got \(timeThreshold)")
        }
    }
}

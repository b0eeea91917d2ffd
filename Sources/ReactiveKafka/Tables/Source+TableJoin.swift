import StreamKit

extension Source {
    /// Enriches each element with the current value of its key in `table` (a stream–table
    /// join, Kafka Streams' `KStream#join(KTable)`); elements whose key is absent are dropped.
    ///
    /// The look-up reads the table as it is when the element passes: start the stream once
    /// the table is ``KafkaTable/ready()`` to join against the restored table.
    ///
    /// ```swift
    /// let enriched = Consumer.plainSource(orderSettings, subscription: .topics("orders"))
    ///     .join(customers, key: { $0.key })
    /// ```
    public func join<Table: KafkaTableView>(
        _ table: Table, key: @escaping @Sendable (Element) -> Table.Key
    ) -> Source<AsyncThrowingCompactMapSequence<Base, JoinedRecord<Element, Table.Value>>, Materialized> {
        compactMap { element in
            table.value(for: key(element)).map { JoinedRecord(record: element, value: $0) }
        }
    }

    /// Like ``join(_:key:)``, but keeps elements whose key is absent, with a nil value
    /// (Kafka Streams' `leftJoin`).
    public func leftJoin<Table: KafkaTableView>(
        _ table: Table, key: @escaping @Sendable (Element) -> Table.Key
    ) -> Source<AsyncSyncMapSequence<Base, JoinedRecord<Element, Table.Value?>>, Materialized> {
        map { element in JoinedRecord(record: element, value: table.value(for: key(element))) }
    }
}

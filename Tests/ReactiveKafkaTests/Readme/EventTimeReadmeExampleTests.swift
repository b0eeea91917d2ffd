import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

// The README's event-time and actor examples, verbatim, run here so they cannot rot.

struct Payment: Sendable {
    var customer: String
    var amount: Int
    var time: EventTime
}

struct Login: Sendable {
    var customer: String
    var country: String
    var time: EventTime
}

actor FraudScorer {
    private(set) var inFlight = 0
    private(set) var maxInFlight = 0

    func score(_ payment: Payment) async -> Int {
        inFlight += 1
        maxInFlight = max(maxInFlight, inFlight)
        await Task.yield()
        inFlight -= 1
        return payment.amount > 1_000 ? 90 : 10
    }
}

@Suite(.serialized, .timeLimit(.minutes(2))) struct EventTimeReadmeExampleTests {
    @Test func theReadmeShowsThisCodeVerbatim() throws {
        try ReadmeBlocks.expectInReadme(markers: [
            "README windows", "README join", "README pattern", "README merge", "README kafka event time",
            "README actors",
        ])
    }

    static func ms(_ milliseconds: Int64) -> EventTime { EventTime(milliseconds: milliseconds) }

    @Test func windows() async throws {
        let ms = Self.ms
        // README windows: begin
        let payments = Source.from([
            Payment(customer: "ann", amount: 30, time: ms(1_000)),
            Payment(customer: "bob", amount: 5, time: ms(20_000)),
            Payment(customer: "ann", amount: 12, time: ms(58_000)),
            Payment(customer: "ann", amount: 40, time: ms(95_000)),
            Payment(customer: "bob", amount: 99, time: ms(3_000)), // 92 s behind: too late
        ])
        let spend = payments.windowed(
            .tumbling(.seconds(60)), key: \.customer, time: \.time,
            outOfOrderness: .seconds(5), allowedLateness: .seconds(10),
            aggregate: .sum(\.amount))
        var lines: [String] = []
        for try await output in spend {
            switch output {
            case .window(let total): lines.append("\(total.key) \(total.window): \(total.value)")
            case .late(let payment): lines.append("late: \(payment.customer) \(payment.amount)")
            }
        }
        // lines == ["ann [0, 60000): 42", "bob [0, 60000): 5", "late: bob 99", "ann [60000, 120000): 40"]
        // README windows: end
        #expect(lines == ["ann [0, 60000): 42", "bob [0, 60000): 5", "late: bob 99", "ann [60000, 120000): 40"])
    }

    @Test func join() async throws {
        let ms = Self.ms
        // README join: begin
        let logins = Source.from([
            Login(customer: "ann", country: "FR", time: ms(0)), Login(customer: "bob", country: "NZ", time: ms(1_000)),
        ])
        let payments = Source.from([
            Payment(customer: "ann", amount: 70, time: ms(30_000)),
            Payment(customer: "bob", amount: 9, time: ms(700_000)),
        ])
        let paidAfterLogin = eventTimeJoin(
            logins, payments, leftKey: \.customer, rightKey: \.customer,
            leftTime: \.time, rightTime: \.time, within: .seconds(5 * 60))
        var pairs: [String] = []
        for try await output in paidAfterLogin {
            if case .joined(let login, let payment) = output { pairs.append("\(login.country) \(payment.amount)") }
        }
        // pairs == ["FR 70"]: bob paid more than 5 minutes after his login
        // README join: end
        #expect(pairs == ["FR 70"])
    }

    @Test func pattern() async throws {
        let ms = Self.ms
        // README pattern: begin
        enum Activity: Sendable {
            case login(Login)
            case payment(Payment)
            var customer: String {
                switch self {
                case .login(let l): l.customer
                case .payment(let p): p.customer
                }
            }
            var time: EventTime {
                switch self {
                case .login(let l): l.time
                case .payment(let p): p.time
                }
            }
        }
        let takeover = EventPattern<Activity>
            .first("login abroad") { if case .login(let login) = $0 { login.country != "NZ" } else { false } }
            .followedBy("large payment") {
                if case .payment(let payment) = $0 { payment.amount > 1_000 } else { false }
            }
            .within(.seconds(5 * 60))
        let unpaid = EventPattern<Activity>
            .first("login") { if case .login = $0 { true } else { false } }
            .notFollowedBy("payment") { if case .payment = $0 { true } else { false } }
            .within(.seconds(10 * 60))
        let activity = Source.from([
            Activity.login(Login(customer: "ann", country: "FR", time: ms(0))),
            .login(Login(customer: "bob", country: "NZ", time: ms(5_000))),
            .payment(Payment(customer: "ann", amount: 2_500, time: ms(60_000))),
        ])
        var alerts: [String] = []
        for try await output in activity.matching(takeover, key: \.customer, time: \.time, outOfOrderness: .seconds(5))
        {
            if case .match(let match) = output { alerts.append("takeover? \(match.key)") }
        }
        for try await output in activity.matching(unpaid, key: \.customer, time: \.time) {
            if case .match(let match) = output { alerts.append("no payment: \(match.key)") }
        }
        // alerts == ["takeover? ann", "no payment: bob"]
        // README pattern: end
        #expect(alerts == ["takeover? ann", "no payment: bob"])
    }

    @Test func merge() async throws {
        let ms = Self.ms
        // README merge: begin
        let eu = Source.from([ms(1_000), ms(4_000), ms(9_000)])
        let us = Source.from([ms(2_000), ms(3_000), ms(10_000)])
        var times: [Int64] = []
        for try await time in eventTimeMerge([eu, us], time: { $0 }, idleTimeout: .seconds(30)) {
            times.append(time.milliseconds)
        }
        // times == [1000, 2000, 3000, 4000, 9000, 10000]
        // README merge: end
        #expect(times == [1_000, 2_000, 3_000, 4_000, 9_000, 10_000])
    }

    @Test func kafkaEventTime() async throws {
        let kafka = try EmbeddedKafka()
        for topic in ["logins", "payments"] {
            try kafka.createTopic(topic, partitions: 1)
            let producer = try KafkaProducer(
                ProducerSettings(keySerializer: .string, valueSerializer: .string).withBootstrapServers(
                    kafka.bootstrapServers))
            for (customer, seconds) in [("ann", 1), ("bob", 2), ("ann", 70)] {
                _ = try await producer.send(
                    ProducerRecord(
                        topic: topic, partition: 0, key: customer, value: topic,
                        timestamp: KafkaTimestamp(milliseconds: 1_700_000_040_000 + Int64(seconds) * 1_000)))
            }
            await producer.close()
        }
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers).withProperty("auto.offset.reset", "earliest")
        // README kafka event time: begin
        let logins = Consumer.plainSource(settings, subscription: .assignment(TopicPartition("logins", 0)))
        let payments = Consumer.plainSource(settings, subscription: .assignment(TopicPartition("payments", 0)))
        let activity = Consumer.mergedByTimestamp([logins, payments], idleTimeout: .seconds(30))
        var perMinute: [String: Int] = [:]
        for try await output in activity.windowed(
            .tumbling(.seconds(60)), key: \.key, outOfOrderness: .seconds(5), aggregate: .count)
        {
            guard let count = output.result else { continue }
            perMinute[count.key] = count.value
            if perMinute.count == 2 { break }
        }
        await logins.materialized.shutdown()
        await payments.materialized.shutdown()
        // perMinute == ["ann": 2, "bob": 2]: each customer's first minute, over both topics
        // README kafka event time: end
        #expect(perMinute == ["ann": 2, "bob": 2])
    }

    @Test func actors() async throws {
        let payments = Source.from(
            (1...40).map { Payment(customer: "c\($0 % 4)", amount: $0 * 100, time: Self.ms(Int64($0))) })
        // README actors: begin
        // One actor, at most 5 calls in flight; each answer within 2 s or the stream fails
        // with StreamKitError.askTimeout.
        let scorer = FraudScorer()
        let scores = payments.mapAsync(parallelism: 5) { payment in
            try await scorer.ask(timeout: .seconds(2)) { await $0.score(payment) }
        }
        // A pool: balance spreads the payments over 4 actors, each called 2 at a time.
        let pool = (0..<4).map { _ in FraudScorer() }
        let flagged = try await withThrowingTaskGroup(of: Int.self) { group in
            for (scorer, share) in zip(pool, payments.balance(into: pool.count)) {
                group.addTask {
                    try await share.mapAsync(parallelism: 2) { payment in
                        try await scorer.ask(timeout: .seconds(2)) { await $0.score(payment) }
                    }.reduce(0) { $0 + ($1 > 50 ? 1 : 0) }
                }
            }
            return try await group.reduce(0, +)
        }
        // README actors: end
        var all: [Int] = []
        for try await score in scores { all.append(score) }
        #expect(all == (1...40).map { $0 * 100 > 1_000 ? 90 : 10 })
        #expect(await scorer.maxInFlight <= 5)
        #expect(flagged == 30)
        for scorer in pool { #expect(await scorer.maxInFlight <= 2) }
    }
}

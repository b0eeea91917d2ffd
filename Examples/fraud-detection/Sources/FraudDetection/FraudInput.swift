import StreamKit

/// A deterministic day of activity: customers with profiles, and logins and payments at
/// increasing times (each topic in time order, as one partition each keeps them), from a
/// seeded generator so every run and the reference see the same input.
public struct FraudInput: Sendable {
    /// An input event with its time (milliseconds since the epoch; the record timestamp).
    public struct Timed: Sendable, Hashable {
        /// The login or payment.
        public var activity: Activity
        /// When it happened.
        public var time: Int64
    }

    /// Profiles by customer.
    public var profiles: [String: Profile]
    /// The logins, in time order.
    public var logins: [Timed]
    /// The payments, in time order.
    public var payments: [Timed]

    /// The first event's time: a minute boundary.
    public static let start: Int64 = 1_767_225_600_000

    /// `customers` customers, `payments` payments and `payments / 4` logins spread over
    /// `minutes` minutes of event time, from `seed`.
    public init(customers: Int, payments: Int, minutes: Int, seed: UInt64 = 15) {
        var random = SplitMix64(seed: seed)
        let countries = ["NZ", "FR", "DE", "US", "JP", "BR", "IN", "ZA"]
        var profiles: [String: Profile] = [:]
        let names = (0..<customers).map { "c-\(1000 + $0)" }
        for name in names {
            let home = countries[random.next(below: countries.count)]
            let second = countries[random.next(below: countries.count)]
            profiles[name] = Profile(
                countries: Array(Set([home, second])).sorted(), limit: 500 + 250 * random.next(below: 8))
        }
        let span = Int64(minutes) * 60_000
        // Payments at even milliseconds, logins at odd ones: no two events share a time.
        let paymentStep = max(2, span / Int64(max(payments, 1)) / 2 * 2)
        self.payments = (0..<payments).map { index in
            let customer = names[random.next(below: names.count)]
            let large = random.next(below: 8) == 0
            let amount = large ? 400 + random.next(below: 3_000) : 5 + random.next(below: 200)
            return Timed(
                activity: .payment(Payment(id: index, customer: customer, amount: amount)),
                time: Self.start + Int64(index) * paymentStep)
        }
        let loginCount = payments / 4
        let loginStep = max(2, span / Int64(max(loginCount, 1)) / 2 * 2)
        self.logins = (0..<loginCount).map { index in
            let customer = names[random.next(below: names.count)]
            let known = profiles[customer]!.countries
            let country = random.next(below: 5) == 0 ? countries[random.next(below: countries.count)] : known[0]
            return Timed(
                activity: .login(Login(customer: customer, country: country)),
                time: Self.start + 1 + Int64(index) * loginStep)
        }
        self.profiles = profiles
    }

    /// The alerts the detector must raise, computed directly: for each login from a country
    /// not in the profile, the first later payment of that customer over the limit at most
    /// 5 minutes after it.
    public func expectedAlerts() -> [FraudAlert] {
        let bound = Int64(5 * 60 * 1000)
        var paymentsByCustomer: [String: [(payment: Payment, time: Int64)]] = [:]
        for event in payments {
            if case .payment(let payment) = event.activity {
                paymentsByCustomer[payment.customer, default: []].append((payment, event.time))
            }
        }
        var alerts: [FraudAlert] = []
        for event in logins {
            guard case .login(let login) = event.activity, let profile = profiles[login.customer],
                !profile.countries.contains(login.country)
            else { continue }
            let candidates = paymentsByCustomer[login.customer] ?? []
            if let hit = candidates.first(where: {
                $0.time > event.time && $0.time <= event.time + bound && $0.payment.amount > profile.limit
            }) {
                alerts.append(
                    FraudAlert(
                        customer: login.customer, country: login.country, loginTime: event.time,
                        paymentId: hit.payment.id, amount: hit.payment.amount, paymentTime: hit.time))
            }
        }
        return alerts
    }

    /// Every customer's spend per minute of event time, computed directly.
    public func expectedSpend() -> [MinuteSpend] {
        var totals: [MinuteSpend: Int] = [:]
        for event in payments {
            guard case .payment(let payment) = event.activity else { continue }
            let start = event.time - event.time % 60_000
            totals[MinuteSpend(customer: payment.customer, start: start, total: 0), default: 0] += payment.amount
        }
        return totals.map { MinuteSpend(customer: $0.key.customer, start: $0.key.start, total: $0.value) }
    }
}

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same input everywhere.
struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

import ReactiveKafka
import StreamKit

/// A customer signed in from `country`. Its time is the record's timestamp.
public struct Login: Codable, Sendable, Hashable {
    /// Who signed in.
    public var customer: String
    /// Where from (ISO code).
    public var country: String

    /// A login of `customer` from `country`.
    public init(customer: String, country: String) {
        self.customer = customer
        self.country = country
    }
}

/// A customer paid `amount`. Its time is the record's timestamp.
public struct Payment: Codable, Sendable, Hashable {
    /// Unique per payment, so an alert names the payment that raised it.
    public var id: Int
    /// Who paid.
    public var customer: String
    /// How much, in whole currency units.
    public var amount: Int

    /// Payment `id` of `amount` by `customer`.
    public init(id: Int, customer: String, amount: Int) {
        self.id = id
        self.customer = customer
        self.amount = amount
    }
}

/// What the two input topics carry: the logins topic holds `.login`s, the payments topic
/// `.payment`s. One type for both lets ``Consumer/mergedByTimestamp(_:bufferSize:idleTimeout:)``
/// merge them into one stream in event-time order.
public enum Activity: Codable, Sendable, Hashable {
    /// A sign-in.
    case login(Login)
    /// A payment.
    case payment(Payment)

    /// The customer it concerns (also the record key).
    public var customer: String {
        switch self {
        case .login(let login): login.customer
        case .payment(let payment): payment.customer
        }
    }
}

/// A customer's profile, kept in a compacted topic and read as a ``KafkaTable``.
public struct Profile: Codable, Sendable, Hashable {
    /// The countries the customer is known to sign in from.
    public var countries: [String]
    /// A payment above this is "large".
    public var limit: Int

    /// A profile.
    public init(countries: [String], limit: Int) {
        self.countries = countries
        self.limit = limit
    }
}

/// An activity with its time and the customer's profile: what the pattern and the windows read.
public struct ProfiledActivity: Sendable {
    /// The login or payment.
    public var activity: Activity
    /// Its event time (the record's timestamp).
    public var time: EventTime
    /// The customer's profile at the time it was processed.
    public var profile: Profile

    /// The customer.
    public var customer: String { activity.customer }

    /// A login from a country not in the profile.
    public var isLoginFromNewCountry: Bool {
        if case .login(let login) = activity { !profile.countries.contains(login.country) } else { false }
    }

    /// A payment above the profile's limit.
    public var isPaymentOverLimit: Bool {
        if case .payment(let payment) = activity { payment.amount > profile.limit } else { false }
    }

    /// The amount of a payment, 0 for a login.
    public var spent: Int {
        if case .payment(let payment) = activity { payment.amount } else { 0 }
    }
}

/// "A login from a new country followed by a payment over the limit within 5 minutes".
public struct FraudAlert: Codable, Sendable, Hashable {
    /// Whose account.
    public var customer: String
    /// The country of the login.
    public var country: String
    /// When the login happened (milliseconds since the epoch).
    public var loginTime: Int64
    /// The payment that completed the pattern.
    public var paymentId: Int
    /// Its amount.
    public var amount: Int
    /// When it happened (milliseconds since the epoch).
    public var paymentTime: Int64

    /// An alert.
    public init(customer: String, country: String, loginTime: Int64, paymentId: Int, amount: Int, paymentTime: Int64) {
        self.customer = customer
        self.country = country
        self.loginTime = loginTime
        self.paymentId = paymentId
        self.amount = amount
        self.paymentTime = paymentTime
    }
}

/// What a customer spent in one tumbling minute of event time.
public struct MinuteSpend: Codable, Sendable, Hashable {
    /// The customer.
    public var customer: String
    /// The window's start (milliseconds since the epoch, a multiple of 60,000).
    public var start: Int64
    /// The sum of the customer's payments in `[start, start + 60 s)`.
    public var total: Int

    /// A window result.
    public init(customer: String, start: Int64, total: Int) {
        self.customer = customer
        self.start = start
        self.total = total
    }
}

/// How far the detector's committed output goes: the number of alerts and of window results
/// committed so far. Written in the same transaction as the outputs it counts, so the last
/// committed checkpoint always matches the committed outputs exactly.
public struct FraudCheckpoint: Codable, Sendable, Hashable {
    /// Alerts committed.
    public var alerts: Int
    /// Window results committed.
    public var windows: Int
    /// Transactions committed (all runs).
    public var transactions: Int

    /// A checkpoint.
    public init(alerts: Int = 0, windows: Int = 0, transactions: Int = 0) {
        self.alerts = alerts
        self.windows = windows
        self.transactions = transactions
    }

    /// The checkpoint of the next transaction, whose last output brought the run's counts to
    /// `counted`. One kind may still be skipping what an earlier run committed while the other
    /// writes, so a count never goes below what is already committed.
    func next(counted: FraudCheckpoint) -> FraudCheckpoint {
        FraudCheckpoint(
            alerts: max(alerts, counted.alerts), windows: max(windows, counted.windows), transactions: transactions + 1)
    }
}

import Testing

/// Every test that starts broker and member processes. They run one at a time: each starts several processes
/// whose timing (session timeouts, grace periods, kills mid-batch) is what it checks, and two such tests side
/// by side on a two-core machine would test the scheduler instead. A test that hangs fails after its limit
/// rather than holding the suite.
@Suite("Broker and member processes over TCP", .serialized, .timeLimit(.minutes(10)))
struct BrokerTests {}

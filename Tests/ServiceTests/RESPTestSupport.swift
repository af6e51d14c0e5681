// Helpers of the RESP client tests: a runtime on the test's own thread that
// runs a scenario and stops when it says so (or at a deadline, which fails
// the test: nothing may hang).
import ProtocolRESP
import Reactor
import ReactorTestSupport
import Testing

/// Runs `start` once the runtime is up; the scenario calls `finish()` when
/// done. A scenario still running after `timeout` is stopped and reported.
final class RESPScenario: Service {
    private let start: (RESPScenario, Context) -> Void
    private let timeout: Duration
    private var deadline: TimerID?
    private(set) var timedOut = false
    private var context: Context?

    init(timeout: Duration = .seconds(60), start: @escaping (RESPScenario, Context) -> Void) {
        self.timeout = timeout
        self.start = start
    }

    func runtimeStarted(context: Context) {
        self.context = context
        deadline = context.schedule(after: timeout)
        start(self, context)
    }

    private var later: [TimerID: () -> Void] = [:]

    /// Runs `body` after `delay`, on the runtime's thread.
    func after(_ delay: Duration, _ body: @escaping () -> Void) {
        guard let context else { return }
        later[context.schedule(after: delay)] = body
    }

    func timerFired(_ timer: TimerID, context: Context) {
        if let body = later.removeValue(forKey: timer) { return body() }
        guard timer == deadline else { return }
        timedOut = true
        context.stop()
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}

    /// Ends the scenario: the runtime stops after this turn.
    func finish() { context?.stop() }

    /// Runs the scenario on this thread, in a runtime of `backend` made with
    /// `options`, until it finishes; false when it timed out.
    static func run(backend: Backend = .epoll, timeout: Duration = .seconds(60), options: RuntimeOptions = RuntimeOptions(),
                    _ start: @escaping (RESPScenario, Context) -> Void) throws -> Bool {
        struct Run: PollerVisitor {
            let scenario: RESPScenario
            let options: RuntimeOptions
            func visit<P: Poller>(_ type: P.Type) throws {
                try Runtime<P, RESPScenario>(service: scenario, options: options).run()
            }
        }
        let scenario = RESPScenario(timeout: timeout, start: start)
        try backend.visit(Run(scenario: scenario, options: options))
        return !scenario.timedOut
    }

    /// Calls `body` once `condition` holds, checking every 10 ms.
    func when(_ condition: @escaping () -> Bool, _ body: @escaping () -> Void) {
        if condition() { return body() }
        after(.milliseconds(10)) { self.when(condition, body) }
    }
}

extension RedisPool {
    /// Sends the commands one after another and calls `done` with every result, in the order sent.
    func sendAll(_ commands: [[String]], done: @escaping ([Result<RESPValue, RedisError>]) -> Void) {
        var results = [Result<RESPValue, RedisError>?](repeating: nil, count: commands.count)
        var answered = 0
        for (index, command) in commands.enumerated() {
            send(command) { result in
                results[index] = result
                answered += 1
                if answered == commands.count { done(results.map { $0! }) }
            }
        }
    }
}

extension RedisClient {
    /// Sends the commands one after another (pipelined) and calls `done` with every result, in order.
    func sendAll(_ commands: [[String]], done: @escaping ([Result<RESPValue, RedisError>]) -> Void) {
        var results: [Result<RESPValue, RedisError>] = []
        for command in commands {
            send(command) { result in
                results.append(result)
                if results.count == commands.count { done(results) }
            }
        }
    }
}

extension Result where Success == RESPValue, Failure == RedisError {
    /// The value, or the error's sentence, for a readable #expect.
    var text: String {
        switch self {
        case .success(let value): return value.description
        case .failure(let error): return "failure: \(error)"
        }
    }
}

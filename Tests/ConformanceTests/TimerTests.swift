// Timers through the runtime: deadline order, creation order for equal
// delays, never early, cancellation, repetition.
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Timers")
struct TimerTests {
    @Test("timers fire in deadline order, never before their delay", arguments: Backend.underTest)
    func deadlineOrder(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            var armed: [TimerID: (at: MonotonicInstant, delay: Duration)] = [:]
            var fired: [TimerID] = []
            var order: [TimerID] = []
            let service = ScriptedService()
            service.onStart = { context in
                for delay in [40, 10, 30, 20] {
                    let at = MonotonicInstant.now()
                    let id = context.schedule(after: .milliseconds(delay))
                    armed[id] = (at, .milliseconds(delay))
                }
                order = armed.sorted { $0.value.delay < $1.value.delay }.map(\.key)
            }
            service.onTimer = { id, context in
                let now = MonotonicInstant.now()
                fired.append(id)
                if let timer = armed[id] {
                    #expect(timer.at.duration(until: now) >= timer.delay, "\(id) fired early")
                }
                if fired.count == armed.count {
                    #expect(context.timerCount == 1, "only the watchdog is left")
                    context.stop()
                }
            }
            try runHere(P.self, service)
            #expect(fired == order)
        }
        try body(pollerType(of: backend))
    }

    @Test("timers with the same delay fire in creation order", arguments: Backend.underTest)
    func equalDelays(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            var created: [TimerID] = []
            var fired: [TimerID] = []
            let service = ScriptedService()
            service.onStart = { context in
                created = (0..<20).map { _ in context.schedule(after: .milliseconds(15)) }
                // Already due when the loop first looks: same turn, same check.
                created += (0..<20).map { _ in context.schedule(after: .zero) }
                usleep(16_000)
            }
            service.onTimer = { id, context in
                fired.append(id)
                if fired.count == created.count { context.stop() }
            }
            try runHere(P.self, service)
            // The zero-delay group has the earlier deadlines; within each group, creation order.
            #expect(fired == Array(created.suffix(20)) + Array(created.prefix(20)))
        }
        try body(pollerType(of: backend))
    }

    @Test("a cancelled timer never fires, even when due in the same turn as the canceller", arguments: Backend.underTest)
    func cancellation(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            var cancelled: TimerID?
            var sameTurnVictim: TimerID?
            var canceller: TimerID?
            var end: TimerID?
            var fired: [TimerID] = []
            let service = ScriptedService()
            service.onStart = { context in
                cancelled = context.schedule(after: .milliseconds(20))
                #expect(context.cancel(cancelled!), "cancelling a live timer")
                #expect(!context.cancel(cancelled!), "cancelling twice")
                // Both due before the first wait; the first cancels the second.
                canceller = context.schedule(after: .milliseconds(1))
                sameTurnVictim = context.schedule(after: .milliseconds(1))
                end = context.schedule(after: .milliseconds(60))
                usleep(3_000)
            }
            service.onTimer = { id, context in
                fired.append(id)
                if id == canceller { #expect(context.cancel(sameTurnVictim!)) }
                if id == end {
                    #expect(!context.cancel(id), "a fired one-shot timer is no longer live")
                    context.stop()
                }
            }
            try runHere(P.self, service)
            #expect(fired == [canceller!, end!])
        }
        try body(pollerType(of: backend))
    }

    @Test("a repeating timer fires every interval until cancelled", arguments: Backend.underTest)
    func repetition(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            var ticker: TimerID?
            var ticks: [MonotonicInstant] = []
            var start = MonotonicInstant.now()
            var end: TimerID?
            let service = ScriptedService()
            service.onStart = { context in
                start = .now()
                ticker = context.schedule(after: .milliseconds(10), repeating: .milliseconds(10))
            }
            service.onTimer = { id, context in
                if id == ticker {
                    ticks.append(.now())
                    if ticks.count == 5 {
                        #expect(context.cancel(id), "a repeating timer stays live between firings")
                        end = context.schedule(after: .milliseconds(50))
                    }
                } else if id == end {
                    context.stop()
                } else {
                    Issue.record("unexpected \(id)")
                }
            }
            try runHere(P.self, service)
            #expect(ticks.count == 5, "fired \(ticks.count) times")
            for (index, tick) in ticks.enumerated() {
                // Deadlines are start + 10 ms × (n + 1); a tick is never early.
                #expect(start.duration(until: tick) >= .milliseconds(10 * (index + 1)), "tick \(index) early")
            }
        }
        try body(pollerType(of: backend))
    }
}

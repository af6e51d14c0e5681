@testable import ReactorCore
import Testing

@Suite struct TimerQueueTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000)

    @Test func firesInDeadlineOrderThenCreationOrder() {
        var queue = TimerQueue()
        let late = queue.schedule(at: t0.advanced(by: .milliseconds(30)), repeating: nil)
        let early = queue.schedule(at: t0.advanced(by: .milliseconds(10)), repeating: nil)
        let tieA = queue.schedule(at: t0.advanced(by: .milliseconds(20)), repeating: nil)
        let tieB = queue.schedule(at: t0.advanced(by: .milliseconds(20)), repeating: nil)
        var fired: [TimerID] = []
        while let id = queue.popDue(now: t0.advanced(by: .seconds(1)))?.timer { fired.append(id) }
        #expect(fired == [early, tieA, tieB, late])
        #expect(queue.count == 0)
    }

    @Test func nothingFiresBeforeItsDeadline() {
        var queue = TimerQueue()
        _ = queue.schedule(at: t0.advanced(by: .milliseconds(5)), repeating: nil)
        let due = queue.popDue(now: t0)?.timer
        let next = queue.nextDeadline()
        #expect(due == nil)
        #expect(next == t0.advanced(by: .milliseconds(5)))
    }

    @Test func cancelledTimersNeverFire() {
        var queue = TimerQueue()
        let keep = queue.schedule(at: t0, repeating: nil)
        let drop = queue.schedule(at: t0, repeating: nil)
        let first = queue.cancel(drop)
        let second = queue.cancel(drop)
        let fired = queue.popDue(now: t0)?.timer
        let after = queue.popDue(now: t0)?.timer
        let cancelFired = queue.cancel(keep)
        #expect(first)
        #expect(!second, "a second cancel reports that nothing was cancelled")
        #expect(fired == keep)
        #expect(after == nil)
        #expect(!cancelFired, "a fired one-shot timer cannot be cancelled")
    }

    @Test func repeatingTimerRearmsUntilCancelled() {
        var queue = TimerQueue()
        let id = queue.schedule(at: t0, repeating: .milliseconds(10))
        var now = t0
        for _ in 0..<5 {
            let fired = queue.popDue(now: now)?.timer
            let again = queue.popDue(now: now)?.timer
            #expect(fired == id)
            #expect(again == nil, "re-armed one interval later, not now")
            now = now.advanced(by: .milliseconds(10))
        }
        let cancelled = queue.cancel(id)
        let late = queue.popDue(now: now.advanced(by: .seconds(1)))?.timer
        #expect(cancelled)
        #expect(late == nil)
    }

    @Test func repeatingTimerThatFellBehindDoesNotBurst() {
        var queue = TimerQueue()
        let id = queue.schedule(at: t0, repeating: .milliseconds(10))
        let muchLater = t0.advanced(by: .seconds(1))
        let fired = queue.popDue(now: muchLater)?.timer
        let burst = queue.popDue(now: muchLater)?.timer
        let next = queue.nextDeadline()
        #expect(fired == id)
        #expect(burst == nil)
        #expect(next == muchLater.advanced(by: .milliseconds(10)))
    }

    /// 100,000 pending timers, half cancelled: everything left fires, in order.
    @Test func hundredThousandTimers() {
        var queue = TimerQueue()
        var ids: [TimerID] = []
        for i in 0..<100_000 {
            // Deadlines out of creation order, so the heap has real work.
            ids.append(queue.schedule(at: t0.advanced(by: .microseconds((i * 7919) % 100_000)), repeating: nil))
        }
        for id in ids where id.rawValue % 2 == 0 { _ = queue.cancel(id) }
        #expect(queue.count == 50_000)
        var last = MonotonicInstant(nanoseconds: 0)
        var fired = 0
        while let id = queue.popDue(now: t0.advanced(by: .seconds(1)))?.timer {
            #expect(id.rawValue % 2 == 1)
            let index = Int(id.rawValue) - Int(ids[0].rawValue)
            let deadline = t0.advanced(by: .microseconds((index * 7919) % 100_000))
            #expect(deadline >= last)
            last = deadline
            fired += 1
        }
        #expect(fired == 50_000)
    }
}

// Contract items 6–8: timeouts, no spinning, wake-ups from other threads,
// interrupted waits.
import Dispatch
import Reactor
import ReactorTestSupport
import Synchronization
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Poller waits")
struct PollerWaitTests {
    @Test("a timed wait returns on time with no events; .zero does not block", arguments: Backend.underTest)
    func timeoutHonoured(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let (reader, _) = try fds.pipe()
        let waits = try measuredWaits(backend, [.milliseconds(50), .microseconds(2500), .zero]) { poller in
            try poller.register(FileDescriptor(rawValue: reader), token: Token(1), interest: .read)  // registered, never ready
        }
        #expect(waits.allSatisfy { $0.events == 0 })
        #expect(waits[0].took >= .milliseconds(50) && waits[0].took < .milliseconds(500), "50 ms wait took \(waits[0].took)")
        // Sub-millisecond parts round up: never early.
        #expect(waits[1].took >= .microseconds(2500) && waits[1].took < .milliseconds(400), "2.5 ms wait took \(waits[1].took)")
        #expect(waits[2].took < .milliseconds(40), "zero wait took \(waits[2].took)")

        // The output array is replaced, not appended to.
        let probe = try PollerProbe(backend)
        var events = [PollEvent(token: Token(77), readiness: .readable)]
        try probe.poller.wait(timeout: .zero, into: &events)
        #expect(events.isEmpty)
    }

    @Test("a 200 ms wait does not spin", arguments: Backend.underTest)
    func noBusyLoop(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let (reader, _) = try fds.pipe()
        let waits = try measuredWaits(backend, [.milliseconds(200)]) { poller in
            try poller.register(FileDescriptor(rawValue: reader), token: Token(1), interest: .read)
        }
        #expect(waits[0].events == 0)
        #expect(waits[0].took >= .milliseconds(200), "200 ms wait took \(waits[0].took)")
        #expect(waits[0].cpu < .milliseconds(50), "a 200 ms wait used \(waits[0].cpu) of CPU")
    }

    @Test("a wake from another thread ends an infinite wait, and is not an event", arguments: Backend.underTest)
    func wakeFromAnotherThread(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let (rescueReader, rescueWriter) = try fds.pipe()
        let waker = Shared<(any PollerWaker)?>(nil)
        let result = Shared<(events: Int, took: Duration, error: String?)?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)

        // The poller lives on the waiting thread; only its waker crosses over.
        let thread = try TestThread {
            do {
                let poller = try backend.makePoller()
                // A way out if the wake never arrives, so a failure cannot hang the suite.
                try poller.register(.init(rawValue: rescueReader), token: Token(1), interest: .read)
                waker.update { $0 = poller.waker }
                ready.signal()
                var events: [PollEvent] = []
                let start = ContinuousClock.now
                try poller.wait(timeout: nil, into: &events)
                let took = elapsed(since: start)
                result.update { $0 = (events.count, took, nil) }
            } catch {
                result.update { $0 = (0, .zero, "\(error)") }
                ready.signal()
            }
            done.signal()
        }
        ready.wait()
        let wakeAt = ContinuousClock.now
        usleep(50_000)  // let the thread block in its wait
        waker.value?.wake()
        let woke = done.wait(timeout: .now() + .seconds(2)) == .success
        let latency = elapsed(since: wakeAt)
        if !woke {
            writeBytes(rescueWriter)
            done.wait()
        }
        thread.join()
        #expect(woke, "the wait did not return within 2 s of the wake")
        let outcome = try #require(result.value)
        #expect(outcome.error == nil)
        #expect(outcome.events == 0, "a wake is not an event")
        #expect(latency < .seconds(1), "woke after \(latency)")
    }

    @Test("a wake before the wait makes the next wait return at once; wakes coalesce", arguments: Backend.underTest)
    func wakeBeforeWait(_ backend: Backend) throws {
        // Three wakes, one early return; the next wait runs its full time; and
        // the waker works again after it has been consumed.
        let waits = try measuredWaits(backend, [.seconds(5), .milliseconds(50), .seconds(5)]) { poller in
            poller.waker.wake()
            poller.waker.wake()
            poller.waker.wake()
        } between: { index, poller in
            if index == 2 { poller.waker.wake() }
        }
        #expect(waits.allSatisfy { $0.events == 0 }, "a wake is not an event")
        #expect(waits[0].took < .seconds(1), "the pending wake was lost")
        #expect(waits[1].took >= .milliseconds(50), "wakes did not coalesce: the second wait took \(waits[1].took)")
        #expect(waits[2].took < .seconds(1), "the waker did not work a second time")
    }

    @Test("the waker stays safe to use after its poller is gone", arguments: Backend.underTest)
    func wakerOutlivesPoller(_ backend: Backend) throws {
        var poller: (any Poller)? = try backend.makePoller()
        let waker = try #require(poller?.waker)
        poller = nil
        #expect(poller == nil)
        for _ in 0..<3 { waker.wake() }
        // Still a working process: a new poller and its own waker behave.
        let probe = try PollerProbe(backend)
        probe.poller.waker.wake()
        let start = ContinuousClock.now
        _ = try probe.wait(.seconds(5))
        #expect(elapsed(since: start) < .seconds(1))
    }

    @Test("an interrupted wait (EINTR) returns normally with no events", arguments: Backend.underTest)
    func interruptedWait(_ backend: Backend) throws {
        installSignalHandler
        let finished = Shared(false)
        let result = Shared<(events: Int, took: Duration, error: String?)?>(nil)
        let thread = try TestThread {
            // Threads inherit the creator's mask, and the test runner's threads block signals.
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGUSR1)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            do {
                let poller = try backend.makePoller()
                var events: [PollEvent] = []
                let start = ContinuousClock.now
                try poller.wait(timeout: .seconds(3), into: &events)
                result.update { $0 = (events.count, elapsed(since: start), nil) }
            } catch {
                result.update { $0 = (0, .zero, "\(error)") }
            }
            finished.update { $0 = true }
        }
        // A signal may land before the wait starts; keep sending until it returns.
        while !finished.value {
            pthread_kill(thread.handle, SIGUSR1)
            usleep(5_000)
        }
        thread.join()
        let outcome = try #require(result.value)
        #expect(outcome.error == nil, "EINTR must not be thrown")
        #expect(outcome.events == 0)
        #expect(outcome.took < .seconds(2), "the interrupted wait did not return (took \(outcome.took))")
    }
}

/// A no-op SIGUSR1 handler without SA_RESTART, so a signal interrupts a blocking wait.
private let installSignalHandler: Void = {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in }
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0
    sigaction(SIGUSR1, &action, nil)
}()

/// One measured `wait`: how many events it returned, how long it took, and
/// the CPU the waiting thread used meanwhile.
struct MeasuredWait: Sendable {
    var events: Int
    var took: Duration
    var cpu: Duration
}

/// Creates a poller of `backend` on a fresh thread, calls `setUp`, then waits
/// once per timeout (calling `between` before each) and returns the
/// measurements.
///
/// A fresh thread, because a thread that has closed an io_uring ring gets the
/// ring's exit work queued to it later as task work, which interrupts the
/// thread's next blocking wait (EINTR, contract item 8) and would make a
/// timing measurement on a shared test-runner thread return early.
func measuredWaits(
    _ backend: Backend, _ timeouts: [Duration?],
    setUp: @escaping @Sendable (any Poller) throws -> Void,
    between: @escaping @Sendable (Int, any Poller) -> Void = { _, _ in }
) throws -> [MeasuredWait] {
    let result = Shared<Result<[MeasuredWait], TestFailure>?>(nil)
    let thread = try TestThread {
        do {
            let poller = try backend.makePoller()
            try setUp(poller)
            var measured: [MeasuredWait] = []
            var events: [PollEvent] = []
            for (index, timeout) in timeouts.enumerated() {
                between(index, poller)
                let cpuBefore = threadCPUTime()
                let start = ContinuousClock.now
                try poller.wait(timeout: timeout, into: &events)
                measured.append(MeasuredWait(events: events.count, took: elapsed(since: start), cpu: threadCPUTime() - cpuBefore))
            }
            result.update { $0 = .success(measured) }
        } catch {
            result.update { $0 = .failure(TestFailure("\(error)")) }
        }
    }
    thread.join()
    return try #require(result.value).get()
}

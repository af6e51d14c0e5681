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
        // Never early: a load can only make a wait later, so these cannot flake. How late is a benchmark's matter.
        #expect(waits[0].took >= .milliseconds(50), "a 50 ms wait returned early, after \(waits[0].took)")
        // Sub-millisecond parts round up.
        #expect(waits[1].took >= .microseconds(2500), "a 2.5 ms wait returned early, after \(waits[1].took)")
        // .zero polls and returns: it never blocks, so the thread never sleeps in it.
        #expect(waits[2].sleeps == 0, "a zero wait slept \(waits[2].sleeps) times")

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
        #expect(waits[0].took >= .milliseconds(200), "a 200 ms wait returned early, after \(waits[0].took)")
        // A wait that blocks in the kernel sleeps once (libev may return from a
        // turn with nothing fired and wait again: a few). A spinning wait either
        // never sleeps (polling with a zero timeout) or sleeps once per short
        // timeout, hundreds of times in 200 ms.
        #expect((1...10).contains(waits[0].sleeps), "a 200 ms wait slept \(waits[0].sleeps) times")
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
        usleep(50_000)  // let the thread block in its wait
        waker.value?.wake()
        // A watchdog: the wait has no timeout, so a lost wake would hang it.
        let woke = done.wait(timeout: .now() + .seconds(30)) == .success
        if !woke {
            writeBytes(rescueWriter)
            done.wait()
        }
        thread.join()
        #expect(woke, "the wait did not return within 30 s of the wake")
        let outcome = try #require(result.value)
        #expect(outcome.error == nil)
        #expect(outcome.events == 0, "a wake is not an event")
    }

    @Test("a wake before the wait makes the next wait return at once; wakes coalesce", arguments: Backend.underTest)
    func wakeBeforeWait(_ backend: Backend) throws {
        // Three wakes, one early return; the next wait runs its full time; and
        // the waker works again after it has been consumed.
        // The first and last waits have no timeout: only a wake ends them (a lost one is caught by the watchdog).
        let waits = try measuredWaits(backend, [nil, .milliseconds(50), nil]) { poller in
            poller.waker.wake()
            poller.waker.wake()
            poller.waker.wake()
        } between: { index, poller in
            if index == 2 { poller.waker.wake() }
        }
        #expect(waits.allSatisfy { $0.events == 0 }, "a wake is not an event")
        #expect(waits[1].took >= .milliseconds(50), "wakes did not coalesce: the second wait took \(waits[1].took)")
    }

    @Test("the waker stays safe to use after its poller is gone", arguments: Backend.underTest)
    func wakerOutlivesPoller(_ backend: Backend) throws {
        var poller: (any Poller)? = try backend.makePoller()
        let waker = try #require(poller?.waker)
        poller = nil
        #expect(poller == nil)
        for _ in 0..<3 { waker.wake() }
        // Still a working process: a new poller and its own waker behave.
        let waits = try measuredWaits(backend, [nil]) { poller in poller.waker.wake() }
        #expect(waits.map(\.events) == [0], "the wake ended the wait with no event")
    }

    @Test("an interrupted wait (EINTR) returns normally with no events", arguments: Backend.underTest)
    func interruptedWait(_ backend: Backend) throws {
        installSignalHandler
        let finished = Shared(false)
        let result = Shared<(events: Int, error: String?)?>(nil)
        let waker = Shared<(any PollerWaker)?>(nil)
        let thread = try TestThread {
            // Threads inherit the creator's mask, and the test runner's threads block signals.
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGUSR1)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            do {
                let poller = try backend.makePoller()
                waker.update { $0 = poller.waker }
                var events: [PollEvent] = []
                // No timeout: only the signal (or the watchdog's wake) ends this wait.
                try poller.wait(timeout: nil, into: &events)
                result.update { $0 = (events.count, nil) }
            } catch {
                result.update { $0 = (0, "\(error)") }
            }
            finished.update { $0 = true }
        }
        // A signal may land before the wait starts; keep sending until it returns,
        // or until the watchdog gives up and ends the wait with a wake.
        let returnedOnSignal = eventually(within: .seconds(30)) {
            pthread_kill(thread.handle, SIGUSR1)
            usleep(5_000)
            return finished.value
        }
        while !finished.value {
            waker.value?.wake()
            usleep(5_000)
        }
        thread.join()
        #expect(returnedOnSignal, "the interrupted wait did not return")
        let outcome = try #require(result.value)
        #expect(outcome.error == nil, "EINTR must not be thrown")
        #expect(outcome.events == 0)
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
/// how many times the waiting thread slept in it (voluntary context switches).
struct MeasuredWait: Sendable {
    var events: Int
    var took: Duration
    var sleeps: Int
}

/// Creates a poller of `backend` on a fresh thread, calls `setUp`, then waits
/// once per timeout (calling `between` before each) and returns the
/// measurements. A watchdog: if the waits have not all returned within
/// 60 s (they are meant to end long before), it wakes the poller until they
/// do, and throws.
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
    let waker = Shared<(any PollerWaker)?>(nil)
    let thread = try TestThread {
        do {
            let poller = try backend.makePoller()
            waker.update { $0 = poller.waker }
            try setUp(poller)
            var measured: [MeasuredWait] = []
            var events: [PollEvent] = []
            for (index, timeout) in timeouts.enumerated() {
                between(index, poller)
                let sleepsBefore = threadVoluntarySwitches()
                let start = ContinuousClock.now
                try poller.wait(timeout: timeout, into: &events)
                measured.append(MeasuredWait(events: events.count, took: elapsed(since: start),
                                             sleeps: threadVoluntarySwitches() - sleepsBefore))
            }
            result.update { $0 = .success(measured) }
        } catch {
            result.update { $0 = .failure(TestFailure("\(error)")) }
        }
    }
    let returned = eventually(within: .seconds(60)) { result.value != nil }
    while result.value == nil {
        waker.value?.wake()
        usleep(5_000)
    }
    thread.join()
    guard returned else { throw TestFailure("a wait hung: it had not returned after 60 s") }
    return try #require(result.value).get()
}

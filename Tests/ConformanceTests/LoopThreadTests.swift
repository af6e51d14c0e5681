// The confinement the loop's shortcuts rely on (LoopThread): in debug builds,
// touching a runtime's context from another thread while it runs traps at
// once, naming what was called, instead of racing on state that skips the
// exclusivity checks. Exit tests: the trap ends a child process, not the suite.
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

#if DEBUG
@Suite("Loop thread confinement (debug builds)")
struct LoopThreadTests {
    @Test("a runtime's context used from another thread while it runs traps")
    func contextFromAnotherThread() async throws {
        let result = try await #require(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let runtime = try Runtime<EpollPoller, LoggingService>(service: LoggingService())
            // Smuggled on purpose: the compiler rightly refuses to send a Context across threads.
            nonisolated(unsafe) let context = runtime.context
            let thread = try TestThread {
                usleep(100_000)  // the loop has bound its thread by now
                context.schedule(after: .seconds(1))
            }
            _ = thread
            context.schedule(after: .seconds(30))  // keeps the loop waiting until the trap ends the process
            try runtime.run()
        }
        let message = String(decoding: result.standardErrorContent, as: UTF8.self)
        #expect(message.contains("schedule on a thread other than its runtime's"), "\(message.suffix(400))")
    }

    @Test("the same calls on the runtime's own thread, before and while it runs, do not trap")
    func contextOnItsThread() throws {
        let runtime = try Runtime<EpollPoller, LoggingService>(service: LoggingService())
        runtime.context.schedule(after: .milliseconds(1))
        let timer = runtime.context.schedule(after: .seconds(30))
        #expect(runtime.context.cancel(timer))
        runtime.context.stop()
        try runtime.run()
    }
}
#endif

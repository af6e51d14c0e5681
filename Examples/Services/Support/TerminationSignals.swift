#if canImport(Glibc)
import Glibc
#endif
import Reactor

/// Graceful shutdown on SIGINT and SIGTERM for servers that run runtimes on
/// threads of their own: the signals are blocked everywhere and received by
/// one thread with `sigwait`, which calls the shutdown (a signal handler may
/// not take locks; a thread may).
public enum TerminationSignals {
    private static let signals = [SIGINT, SIGTERM]

    private static func set() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        return set
    }

    /// Blocks SIGINT and SIGTERM in the calling thread and every thread it
    /// starts later. Call before starting any runtime thread.
    public static func block() {
        var set = set()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Starts the thread that waits for the signals and calls `shutdown`; a
    /// second signal exits at once, for a shutdown that hangs.
    public static func onSignal(program: String, _ shutdown: @escaping @Sendable () -> Void) throws(ReactorError) {
        try startDetachedThread(name: "\(program)-signals") {
            var set = set()
            var received: Int32 = 0
            var count = 0
            while sigwait(&set, &received) == 0 {
                count += 1
                if count > 1 { _exit(128 + received) }
                printError("\(program): signal \(received), shutting down")
                shutdown()
            }
        }
    }
}

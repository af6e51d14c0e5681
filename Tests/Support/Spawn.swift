// Child processes started with posix_spawn(3), for the tests (through
// ``ChildProcess``) and for the tools (reactor-bench's servers, resp-bench's
// redis-server).
//
// Not Foundation's `Process`: under AddressSanitizer it aborted inside
// `Process.run` before most suites started, so no sanitizer could run the
// suite. posix_spawn also gives what the tests need directly: the child's
// signal mask and dispositions are set in the spawn itself (no window where
// this thread's mask is changed), and every descriptor but the three standard
// ones is closed in the child, so a child never holds another test's pipe or
// socket open. swift-subprocess was the other candidate; its API is async,
// and every caller here is synchronous code on a plain thread.
import CReactorSys
import ReactorSync

#if canImport(Glibc)
import Glibc
#endif

/// A child that could not be started: which program, and the system's reason.
public struct SpawnError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A child process started with posix_spawn: its pid, whether it still runs,
/// how it ended.
///
/// The child is reaped here (waitpid on this pid only, never -1), so it never
/// lingers as a zombie; a child still running when its `SpawnedProcess` goes
/// away is killed (SIGKILL) and reaped, so none outlives its owner.
public final class SpawnedProcess: Sendable {
    /// How the child ended, as Foundation's `Process` says it.
    public enum TerminationReason: Sendable {
        /// It called exit (or returned from main): ``terminationStatus`` is the code.
        case exit
        /// A signal ended it: ``terminationStatus`` is the signal's number.
        case uncaughtSignal
    }

    /// The child's pid.
    public let processIdentifier: pid_t
    /// The program, as given.
    public let executable: String
    /// The wait status once the child has been reaped; nil while it runs.
    private let reaped = ReactorMutex<Int32?>(nil)

    /// Starts `executable` (a path; PATH is not searched) with `arguments`.
    ///
    /// `environment` adds to (or overrides) this process's environment. Each
    /// standard stream is the given descriptor (duplicated into the child;
    /// the caller still owns and closes its own), or /dev/null when nil. The
    /// child starts with no signal blocked, and SIGTERM, SIGINT, SIGHUP,
    /// SIGQUIT and SIGPIPE at their default actions, as a shell would start
    /// it: the test runner's threads block nearly every signal, and a child
    /// inheriting that mask would ignore SIGTERM.
    public init(executable: String, arguments: [String], environment: [String: String] = [:],
                standardInput: Int32? = nil, standardOutput: Int32? = nil, standardError: Int32? = nil) throws(SpawnError) {
        self.executable = executable
        func check(_ rc: Int32, _ what: String) throws(SpawnError) {
            guard rc == 0 else { throw SpawnError("cannot start \(executable): \(what): \(describe(rc))") }
        }

        var actions = posix_spawn_file_actions_t()
        try check(posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init")
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source, flags) in [(STDIN_FILENO, standardInput, O_RDONLY),
                                        (STDOUT_FILENO, standardOutput, O_WRONLY),
                                        (STDERR_FILENO, standardError, O_WRONLY)] {
            if let source {
                try check(posix_spawn_file_actions_adddup2(&actions, source, target), "dup2 \(source) to \(target)")
            } else {
                try check(posix_spawn_file_actions_addopen(&actions, target, "/dev/null", flags, 0), "/dev/null as \(target)")
            }
        }
        // After the dup2s: the child keeps 0, 1 and 2 and nothing else, even
        // descriptors some other code opened without close-on-exec.
        try check(posix_spawn_file_actions_addclosefrom_np(&actions, 3), "closefrom 3")

        var attributes = posix_spawnattr_t()
        try check(posix_spawnattr_init(&attributes), "posix_spawnattr_init")
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        try check(posix_spawnattr_setsigmask(&attributes, &mask), "setsigmask")
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaults, signal) }
        try check(posix_spawnattr_setsigdefault(&attributes, &defaults), "setsigdefault")
        try check(posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)), "setflags")

        // SAFETY: the strdup'ed strings live until the deferred frees, after
        // posix_spawn has returned (the child has exec'ed or failed by then:
        // glibc's posix_spawn waits for the exec).
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp: [UnsafeMutablePointer<CChar>?] = mergedEnvironment(environment).map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }

        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw SpawnError("cannot start \(executable): \(describe(rc))"
                             + (rc == ENOENT ? " (no such file: is it installed, or built?)" : ""))
        }
        processIdentifier = pid
    }

    deinit {
        reaped.withLock { status in
            guard status == nil else { return }
            kill(processIdentifier, SIGKILL)
            var raw: Int32 = 0
            while waitpid(processIdentifier, &raw, 0) < 0 && errno == EINTR {}
            status = raw
        }
    }

    /// Reaps the child if it has exited (without blocking); its wait status then.
    private func poll() -> Int32? {
        reaped.withLock { status -> Int32? in
            if let status { return status }
            var raw: Int32 = 0
            while true {
                let rc = waitpid(processIdentifier, &raw, WNOHANG)
                if rc == processIdentifier {
                    status = raw
                    return raw
                }
                if rc == 0 { return nil }
                if errno == EINTR { continue }
                // ECHILD: something else in this process reaped our child
                // (a waitpid(-1) somewhere). It has ended; how is lost, and
                // ``terminationStatus`` says -1 rather than inventing a code.
                status = Self.lostStatus
                return Self.lostStatus
            }
        }
    }

    /// Stands for a wait status that was lost (see ``poll()``): no real
    /// status has every bit set.
    private static let lostStatus: Int32 = -1

    /// True until the child has exited (and been reaped).
    public var isRunning: Bool { poll() == nil }

    /// The exit code, or the number of the signal that ended the child
    /// (see ``terminationReason``); -1 if its status was lost. The child must
    /// have exited: check ``isRunning`` or wait first.
    public var terminationStatus: Int32 {
        guard let raw = poll() else { preconditionFailure("terminationStatus of \(executable) (pid \(processIdentifier)) while it still runs") }
        if raw == Self.lostStatus { return -1 }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (they are macros).
        return raw & 0x7f == 0 ? (raw >> 8) & 0xff : raw & 0x7f
    }

    /// Whether the child exited or a signal ended it. The child must have exited.
    public var terminationReason: TerminationReason {
        guard let raw = poll() else { preconditionFailure("terminationReason of \(executable) (pid \(processIdentifier)) while it still runs") }
        return raw == Self.lostStatus || raw & 0x7f == 0 ? .exit : .uncaughtSignal
    }

    /// Sends `signal` to the child unless it has been reaped (its pid may
    /// then be another process's).
    public func send(_ signal: Int32) {
        // Under the lock, so no reap can slip between the check and the kill:
        // until we reap it, the pid stays the child's, even as a zombie.
        reaped.withLock { status in
            if status == nil { kill(processIdentifier, signal) }
        }
    }

    /// SIGTERM, as Foundation's `Process.terminate()`.
    public func terminate() { send(SIGTERM) }

    /// The exit status (see ``terminationStatus``), or nil if the child is
    /// still running after `timeout`.
    public func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        var pause: UInt32 = 500
        while isRunning {
            if ContinuousClock.now >= deadline { return nil }
            usleep(pause)
            pause = min(pause * 2, 10_000)
        }
        return terminationStatus
    }

    /// Waits however long the child takes to exit.
    public func waitUntilExit() {
        while waitForExit(timeout: .seconds(3600)) == nil {}
    }
}

/// A pipe whose both ends are close-on-exec (a child gets an end only by a
/// dup2 in its spawn). The caller closes both.
public func makePipe() throws(SpawnError) -> (read: Int32, write: Int32) {
    var ends: [Int32] = [-1, -1]
    guard pipe2(&ends, O_CLOEXEC) == 0 else { throw SpawnError("pipe2: \(describe(errno))") }
    return (ends[0], ends[1])
}

/// This process's environment (`environ`) with `overrides` set, as
/// `NAME=VALUE` strings.
private func mergedEnvironment(_ overrides: [String: String]) -> [String] {
    var entries: [String] = []
    // Optional although Swift imports it as non-null: clearenv(3) leaves it null.
    let start: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
    if var entry = start {
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            let name = text.prefix { $0 != "=" }
            if overrides[String(name)] == nil { entries.append(text) }
            entry += 1
        }
    }
    for (name, value) in overrides.sorted(by: { $0.key < $1.key }) { entries.append("\(name)=\(value)") }
    return entries
}

/// `strerror` with the error's name: "No such file or directory (ENOENT)".
private func describe(_ code: Int32) -> String {
    let name = strerrorname_np(code).map { String(cString: $0) } ?? "errno \(code)"
    return "\(String(cString: strerror(code))) (\(name))"
}

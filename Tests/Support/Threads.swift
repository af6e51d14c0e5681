// Helpers every test target shares: threads, values handed between threads,
// clocks, waits with deadlines, the descriptor limit. No `import Testing`
// here: this is a plain library target, built by `swift build` too.
import ReactorSync

#if canImport(Glibc)
import Glibc
#endif

/// A test's failure with a message that says what went wrong.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A joinable pthread (the cooperative pool that runs tests is too small to
/// block in, and a runtime must own its thread).
public final class TestThread: Sendable {
    public let handle: pthread_t

    private final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    public init(_ body: @escaping @Sendable () -> Void) throws {
        // Sound: the retained box is released exactly once, by the new thread
        // (or here, when the thread could not be created).
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw TestFailure("pthread_create: \(rc)")
        }
        handle = thread
    }

    public func join() { pthread_join(handle, nil) }
}

/// A value handed between threads under a lock.
public final class Shared<Value: Sendable>: Sendable {
    private let state: ReactorMutex<Value>
    public init(_ value: Value) { state = ReactorMutex(value) }
    public var value: Value { state.withLock { $0 } }
    public func update<R: Sendable>(_ body: (inout Value) -> R) -> R { state.withLock { body(&$0) } }
}

// MARK: Clocks

public func elapsed(since start: ContinuousClock.Instant) -> Duration { ContinuousClock.now - start }

/// How many times the calling thread has slept of its own accord (blocked in
/// the kernel: a wait, a read with nothing to read): `ru_nvcsw` of its
/// `RUSAGE_THREAD` usage. A count, not a time, so a loaded machine cannot
/// change it.
public func threadVoluntarySwitches() -> Int {
    var usage = rusage()
    // RUSAGE_THREAD (1) is _GNU_SOURCE-only, so Swift's Glibc module lacks the name.
    guard getrusage(__rusage_who_t(1), &usage) == 0 else { return -1 }
    return usage.ru_nvcsw
}

public func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

/// Polls `condition` every millisecond until it holds or `timeout` passes.
public func eventually(within timeout: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        usleep(1000)
    }
    return true
}

// MARK: Descriptors

/// The descriptor limit of this process.
public func descriptorLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
    return Int(limit.rlim_cur)
}

/// Raises the soft descriptor limit to at least `needed` (up to the hard
/// limit); throws, saying both numbers, when the hard limit is lower.
public func ensureDescriptorLimit(_ needed: Int) throws {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw TestFailure("getrlimit: errno \(errno)") }
    guard Int(limit.rlim_cur) < needed else { return }
    guard Int(limit.rlim_max) >= needed else {
        throw TestFailure("this test needs \(needed) descriptors; RLIMIT_NOFILE's hard limit is \(limit.rlim_max) (raise it: ulimit -Hn)")
    }
    limit.rlim_cur = rlim_t(needed)
    guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw TestFailure("setrlimit: errno \(errno)") }
}

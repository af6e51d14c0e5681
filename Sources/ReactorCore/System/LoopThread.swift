#if canImport(Glibc)
import Glibc
#endif
#if DEBUG
import Synchronization
#endif

/// The thread an object of the loop is confined to, checked in debug builds.
///
/// The loop's per-event state skips the runtime's exclusivity checks
/// (`@exclusivity(unchecked)`) and some references skip retain and release
/// (`Unmanaged`, borrowed slots). Both are sound for one reason only: that
/// state is touched by one thread, the one running the loop (why the
/// shortcuts exist is told in Context.swift). This is that reason written as
/// a check: the runtime, its context and its poller bind to the loop's
/// thread as it starts, and their entry points check the calling thread, so
/// that a debug build (and every sanitizer run, which builds debug) traps at
/// the first call from another thread instead of racing silently.
///
/// Until ``bind()`` runs, any thread passes: a runtime, a poller or a
/// resource may be set up on one thread and run on another, before its loop
/// starts. Release builds record and check nothing, and store nothing.
@frozen
public struct LoopThread {
    // Debug builds only: in release the struct is empty, so the objects
    // holding one keep their layout (and their cache lines) unchanged.
    #if DEBUG
    /// The bound thread (0: unbound), atomic because the one call the check
    /// exists for comes from another thread: a plain field would make the
    /// check itself a data race (ThreadSanitizer reported it so).
    @usableFromInline final class Owner: Sendable {
        @usableFromInline let thread = Atomic<UInt>(0)
        @usableFromInline init() {}
    }
    @usableFromInline let owner = Owner()
    #endif

    /// Unbound: any thread passes until ``bind()``.
    @inlinable
    public init() {}

    /// Binds to the calling thread: the loop's, as it starts.
    @inlinable
    public func bind() {
        #if DEBUG
        owner.thread.store(UInt(pthread_self()), ordering: .relaxed)
        #endif
    }

    /// Binds to the calling thread unless bound already: a poller binds at
    /// its first wait, which runs on the loop's thread.
    @inlinable @inline(__always)
    public func bindOnce() {
        #if DEBUG
        _ = owner.thread.compareExchange(expected: 0, desired: UInt(pthread_self()), ordering: .relaxed)
        #endif
    }

    /// Debug builds: traps unless the caller runs on the bound thread,
    /// naming `operation`. Release builds: nothing.
    @inlinable @inline(__always)
    public func check(_ operation: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        #if DEBUG
        let owner = owner.thread.load(ordering: .relaxed)
        if owner != 0, pthread_equal(pthread_t(owner), pthread_self()) == 0 {
            preconditionFailure("\(operation()) on a thread other than its runtime's: a runtime's resources, context and poller "
                                + "belong to the thread that runs it (from another thread, go through its Controller)",
                                file: file, line: line)
        }
        #endif
    }
}

// The project's one lock. Every lock in the package (Sources, Tests, Tools,
// Examples) is this type, so that a ThreadSanitizer build can see them all.
//
// ThreadSanitizer learns about a lock from the calls it intercepts
// (pthread_mutex_lock and friends) or from instrumented atomics. The
// standard library's `Synchronization.Mutex` is neither: on Linux it waits on
// a futex from inside the standard library, which is not built with the
// sanitizer, so TSan sees two threads touch the guarded value with nothing
// ordering them and reports a race at every `withLock`. A build with
// `-DREACTOR_TSAN` (scripts/sanitize.sh thread passes it) swaps in a pthread
// mutex, which TSan intercepts; every other build keeps `Mutex`.
// (`Synchronization.Atomic` needs no such swap: its operations are compiler
// builtins inlined into our own, instrumented, code.)
#if REACTOR_TSAN
#if canImport(Glibc)
import Glibc
#endif
#else
import Synchronization
#endif

/// A value guarded by a lock: `Synchronization.Mutex`, or a pthread mutex in
/// a ThreadSanitizer build (see the file's comment). The same surface as
/// `Mutex.withLock`, so a call site reads the same in both builds.
package struct ReactorMutex<Value: ~Copyable>: ~Copyable {
    #if REACTOR_TSAN
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline let value: UnsafeMutablePointer<Value>

    package init(_ initialValue: consuming sending Value) {
        // Heap-allocated: a pthread mutex must not move once initialised, and
        // this struct may be moved (it is ~Copyable, not pinned).
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock.
    @inlinable
    package borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
    #else
    @usableFromInline let mutex: Mutex<Value>

    package init(_ initialValue: consuming sending Value) {
        mutex = Mutex(initialValue)
    }

    /// Runs `body` with the value while holding the lock.
    @inlinable
    package borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try mutex.withLock(body)
    }
    #endif
}

// SAFETY: in both builds the value is reached only through `withLock`, under
// the lock, and it enters and leaves as `sending` (as `Mutex` requires), so
// no non-Sendable state is shared between threads outside the lock.
extension ReactorMutex: @unchecked Sendable where Value: ~Copyable {}

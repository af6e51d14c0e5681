import SystemPackage

/// A polling engine: the one narrow interface every backend implements.
///
/// ## The contract (what the conformance suite checks)
///
/// A backend that conforms promises, for every descriptor registered through it:
///
/// 1. **Registration.** `register` fails with `EBADF` for a descriptor that is
///    not open and with `EEXIST` for one already registered; `reregister` and
///    `deregister` fail with `ENOENT` for one that is not registered. A failed
///    call leaves the backend unchanged. Errors are ``ReactorError``s that
///    name the operation and the descriptor.
/// 2. **Level-triggered.** While a descriptor is readable (writable) and its
///    interest contains `.read` (`.write`), every `wait` reports it, whatever
///    the kernel interface does underneath (edge-triggered or one-shot).
/// 3. **Interest gates everything.** A descriptor whose interest is `.none`
///    produces no events at all, not even `.hangup` or `.error`. `.readClosed`
///    is reported only with `.read` interest; `.error` and `.hangup` with any
///    interest other than `.none`, and they come with `.readable` when the
///    interest includes `.read` so that a reader finds end of file or the error.
/// 4. **One event per descriptor per wait**, carrying the token given at
///    (re)registration, unchanged.
/// 5. **Deregistration is immediate.** After `deregister` returns, no later
///    `wait` reports the descriptor. (Events already handed out are the
///    runtime's to filter; it does so by token.) The caller closes the
///    descriptor only after deregistering it.
/// 6. **Timeouts.** `wait(timeout: d)` returns no earlier than `d` when nothing
///    is ready and no signal interrupts it (item 8); backends round up to
///    their clock's granularity. `nil` waits
///    until an event or a wake, and `.zero` does not block. Waiting never spins.
/// 7. **Wake-ups.** `waker.wake()` from any thread makes the current `wait` (or
///    the next one, if none is in progress) return promptly. Wakes coalesce,
///    and a wake is never reported as an event.
/// 8. **Interrupted waits** (`EINTR`) return normally with no events; the
///    runtime recomputes its timeout and waits again. Besides signals, Linux
///    interrupts a thread's blocking wait once after that thread closed an
///    io_uring ring (the ring's exit work is queued to it as task work).
public protocol Poller: AnyObject, SendableMetatype {
    /// The handle other threads use to cut a `wait` short.
    associatedtype Waker: PollerWaker

    /// A short name for logs and tables, e.g. `epoll`.
    static var name: String { get }

    /// Creates the backend's kernel objects (an epoll instance, a ring, ...).
    init() throws(ReactorError)

    /// The waker bound to this poller. It stays valid after the poller is gone
    /// (waking then does nothing harmful).
    var waker: Waker { get }

    /// Starts watching `fd` with `interest`; events carry `token`.
    func register(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError)

    /// Changes the interest (and token) of a registered descriptor.
    func reregister(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError)

    /// Stops watching `fd`. The caller may close it afterwards.
    func deregister(_ fd: FileDescriptor) throws(ReactorError)

    /// Waits up to `timeout` (forever when `nil`) and replaces the contents of
    /// `events` with what is ready. The array's capacity is reused between
    /// calls, so a steady-state wait does not allocate.
    func wait(timeout: Duration?, into events: inout [PollEvent]) throws(ReactorError)

    /// Whether this kind of poller may move stream bytes itself (see
    /// ``StreamTransport``). Readiness backends keep the default, false, and
    /// a runtime specialised for them has no completion path at all.
    static var performsStreamIO: Bool { get }

    /// The transport through which this poller performs stream I/O, or nil
    /// when it reports readiness only (always, unless ``performsStreamIO``;
    /// also when the kernel lacks a feature the transport needs).
    var streamTransport: (any StreamTransport)? { get }

    /// Hands memory the backend grew for a burst back to the kernel; the
    /// runtime calls it after a quiet spell (``RuntimeOptions/releaseMemoryAfterQuiet``),
    /// on its thread, between waits. io_uring's completion mode shrinks its
    /// provided-buffer ring; the default does nothing.
    func releaseIdleMemory()
}

extension Poller {
    /// Nothing to release: a readiness backend's memory does not grow with bursts.
    public func releaseIdleMemory() {}
}

/// A `Sendable` handle that interrupts a poller's `wait` from any thread.
public protocol PollerWaker: Sendable {
    /// Makes the poller's current or next `wait` return promptly.
    func wake()
}

extension Duration {
    /// Milliseconds for `epoll_wait` / `poll`, rounded up so a wait never
    /// returns before its deadline (returning early would spin). `nil` → -1.
    @inlinable
    public static func pollMilliseconds(_ timeout: Duration?) -> Int32 {
        guard let timeout else { return -1 }
        let (seconds, attoseconds) = timeout.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return ms > Int64(Int32.max) ? Int32.max : Int32(ms)
    }
}

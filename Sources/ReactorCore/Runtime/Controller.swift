import DequeModule
import Dispatch
import ReactorSync
import Synchronization

/// The `Sendable` handle on a runtime, for other threads: send commands to
/// its Service, wake it, ask it to shut down, and wait for it to finish.
///
/// Commands are delivered exactly once, in the order `send` was called (so in
/// order per sender). After shutdown begins, `send` throws instead of queueing
/// a command that would never be delivered.
public final class Controller<Command: Sendable>: Sendable {
    enum Phase: Sendable { case running, stopping, stopped }

    /// What crosses to the loop: a command for the Service, or work to run
    /// on the loop's thread with its Context.
    @usableFromInline enum Message: Sendable {
        case command(Command)
        case task(@Sendable (Context) -> Void)
    }

    struct State: Sendable {
        var phase: Phase = .running
        var queue = Deque<Message>()
    }

    private let state = ReactorMutex(State())
    /// Lets the loop skip the lock on turns where nothing was sent.
    private let hasPending = Atomic<Bool>(false)
    /// Mirrors `phase != .running`, so the loop checks for a shutdown every
    /// turn with one atomic load instead of taking the lock.
    private let stopping = Atomic<Bool>(false)
    private let waker: any PollerWaker
    /// Entered once for the loop (left as it stops) and, for a spawned
    /// runtime, once more for its thread's hold on the runtime (left once it
    /// has let go of the runtime, its Service, its resources and their TLS
    /// sessions): a `main` that joins its runtimes and returns would
    /// otherwise exit the process while that thread still frees them, and
    /// OpenSSL's cleanup at exit then raced the thread's SSL_free.
    private let finished = DispatchGroup()
    /// The pthread running the loop, so `join` can refuse to wait for itself.
    private let loopThread = Atomic<UInt>(0)

    init(waker: any PollerWaker) {
        self.waker = waker
        finished.enter()
    }

    /// Queues `command` for the Service and wakes the runtime.
    ///
    /// Throws `send(command): the runtime has shut down; the command was not
    /// delivered` once a shutdown has begun.
    public func send(_ command: Command) throws(ReactorError) {
        try enqueue(.command(command), operation: "send", what: "command")
    }

    /// Runs `task` on the runtime's thread, between events, with the
    /// runtime's Context — in order with commands. Throws once a shutdown
    /// has begun, like ``send(_:)``.
    public func execute(_ task: @escaping @Sendable (Context) -> Void) throws(ReactorError) {
        try enqueue(.task(task), operation: "execute", what: "task")
    }

    /// Writes `bytes` to the stream resource `id` from any thread
    /// (protosocket's Sender): the bytes join the stream's write queue on the
    /// runtime's thread. Throws once a shutdown has begun. If the resource
    /// is gone by the time the write runs, the runtime logs a warning that
    /// names it and the number of bytes not delivered.
    public func write(_ bytes: [UInt8], to id: ResourceID) throws(ReactorError) {
        try enqueue(.task({ context in
            guard let stream = context.resource(id) as? StreamResource else {
                context.logger.warning("\(ReactorError("write", .resource(id), detail: "the resource is gone or not a stream; \(bytes.count) bytes not delivered"))")
                return
            }
            stream.write(bytes)
        }), operation: "write", what: "resource \(id)")
    }

    private func enqueue(_ message: Message, operation: String, what: String) throws(ReactorError) {
        let accepted = state.withLock { state -> Bool in
            guard state.phase == .running else { return false }
            state.queue.append(message)
            return true
        }
        guard accepted else {
            throw ReactorError(operation, .named(what), detail: "the runtime has shut down; the \(what.hasPrefix("resource") ? "bytes were" : what + " was") not delivered")
        }
        hasPending.store(true, ordering: .releasing)
        waker.wake()
    }

    /// Interrupts the runtime's current wait (its loop turn then runs the post-loop hook).
    public func wake() {
        waker.wake()
    }

    /// Asks the runtime to stop gracefully. Commands already sent are still
    /// delivered; later ones are refused. Safe to call more than once.
    public func shutdown() {
        beginStopping()
        waker.wake()
    }

    /// True until the runtime has finished.
    public var isRunning: Bool {
        state.withLock { $0.phase != .stopped }
    }

    /// Waits until the runtime's loop has ended and its resources are closed,
    /// and, for a runtime started with `spawn` (or a ``RuntimeGroup``), until
    /// its thread has freed it, its Service and what they held: once `join`
    /// returns, `main` may return and the process exit. Returns false on timeout, or at once when called from the loop's own
    /// thread (which would otherwise wait for itself forever).
    @discardableResult
    public func join(timeout: Duration? = nil) -> Bool {
        if loopThread.load(ordering: .acquiring) == UInt(bitPattern: pthreadSelfID()) { return false }
        guard let timeout else {
            finished.wait()
            return true
        }
        return finished.wait(timeout: .now() + .nanoseconds(Int(clamping: timeout.nanoseconds))) == .success
    }

    // MARK: Runtime side

    @usableFromInline var shutdownRequested: Bool {
        stopping.load(ordering: .acquiring)
    }

    @usableFromInline func beginStopping() {
        state.withLock { if $0.phase == .running { $0.phase = .stopping } }
        stopping.store(true, ordering: .releasing)
    }

    /// Moves queued commands into `batch` (which the loop reuses) under the
    /// lock. Returns false, without locking, when nothing was sent.
    @usableFromInline func drain(into batch: inout Deque<Message>) -> Bool {
        guard hasPending.exchange(false, ordering: .acquiringAndReleasing) else { return false }
        state.withLock { state in swap(&state.queue, &batch) }
        return true
    }

    /// A spawned runtime's thread holds the runtime until ``letGo()``.
    func holdUntilReleased() { finished.enter() }

    /// The spawned runtime's thread no longer holds the runtime.
    func letGo() { finished.leave() }

    @usableFromInline func markLoopThread() {
        loopThread.store(UInt(bitPattern: pthreadSelfID()), ordering: .releasing)
    }

    @usableFromInline func markStopped() {
        let wasStopped = state.withLock { state -> Bool in
            defer { state.phase = .stopped }
            return state.phase == .stopped
        }
        stopping.store(true, ordering: .releasing)
        loopThread.store(0, ordering: .releasing)
        if !wasStopped { finished.leave() }
    }
}

#if canImport(Glibc)
import Glibc
#endif

func pthreadSelfID() -> Int {
    Int(bitPattern: UInt(pthread_self()))
}

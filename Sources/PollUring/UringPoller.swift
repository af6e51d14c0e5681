#if canImport(CUring)
import CReactorSys
import CUring
import ReactorCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The io_uring backend. In its **completion mode** (``Mode/completion``,
/// the default where the kernel has what it needs) connected socket streams
/// move their bytes through the ring: a multishot receive per stream into a
/// ring of provided buffers, delivered in place; queued output leaves as
/// one send request per stream at a time (order), every request of a turn
/// submitted with the wait in one `io_uring_enter`. Everything else —
/// listeners, pipes, datagrams, raw descriptors, a connect in progress — is
/// watched with poll requests, as in the **poll mode** (``UringPollModePoller``,
/// the backend `uring-poll`), which also runs when feature probing finds
/// the kernel too old for the completion mode (the reason is in ``mode``).
///
/// **Level-triggered polls by one-shot re-arm.** Each poll request completes once;
/// after reporting it, the backend arms a new one at the start of the next
/// wait, and the kernel completes it at once if the descriptor is still
/// ready, which is exactly level-triggered. Multishot polls are
/// edge-triggered (data left unread produces no further completion), and the
/// runtime reads once per event rather than to EAGAIN, so multishot would
/// need a drain signal the Poller contract does not have.
///
/// **Stale completions.** `user_data` packs a kind, the descriptor and a
/// generation: a poll's changes with every (re)registration, a stream
/// request's with every registration. A completion whose generation is not
/// the descriptor's current one is dropped (a receive's buffer goes straight
/// back to the ring), so a descriptor number reused after a close never
/// hears its predecessor's completions. Interest changes remove the armed
/// poll and add a new one; deregistration cancels what is in flight (a
/// send's bytes stay alive, held by its slot, until its last completion).
public final class UringPoller: Poller {
    public static let name = "uring"

    /// Which way the ring is used.
    public enum Mode: Sendable, Equatable, CustomStringConvertible {
        /// Stream I/O through the ring (multishot receive, provided buffers,
        /// send requests); each receive ends after `receiveLimit` bytes (0:
        /// the kernel cannot limit it, and a stream that stops reading may
        /// hold what arrived before its receive was cancelled);
        /// `deferredTaskRun` when the ring runs SINGLE_ISSUER | DEFER_TASKRUN.
        case completion(receiveLimit: UInt32, deferredTaskRun: Bool)
        /// Poll requests only; the string says why when the completion mode was wanted but is missing.
        case poll(String?)

        /// `completion (...)` or `poll (...)`, for the startup log.
        public var description: String {
            switch self {
            case .completion(let limit, let deferred):
                let receives = limit > 0 ? "multishot receives of up to \(limit >> 10) KiB" : "multishot receives (unlimited: this kernel cannot cap them)"
                let ring = deferred ? "single issuer, deferred task work" : "cooperative task work (no DEFER_TASKRUN here)"
                return "completion mode: \(receives) into provided buffers, send requests, submitted with the wait; \(ring)"
            case .poll(nil): return "poll mode: poll requests on the ring, reads and writes by system calls"
            case .poll(let why?): return "poll mode (\(why))"
            }
        }
    }

    /// The mode this ring runs in.
    public let mode: Mode

    /// Stream I/O through the ring when in completion mode: the runtime's
    /// loop, specialised for this type, collects completions after each wait.
    @inlinable public static var performsStreamIO: Bool { true }

    /// Itself in completion mode; nil in poll mode.
    public var streamTransport: (any StreamTransport)? { buffers == nil ? nil : self }

    public let waker: EventfdWaker
    /// Allocated: liburing's struct must stay at one address for the ring's lifetime.
    let ring: UnsafeMutablePointer<io_uring>

    struct Registration {
        var token: UInt64 = 0
        var interest: Interest = .none
        var generation: UInt64 = 0
        var registered = false
        /// A poll request for this generation is in flight (or queued).
        var armed = false
        /// Bumped at every registration: tags this descriptor's stream requests.
        var epoch: UInt64 = 0
        /// The descriptor moves its bytes through the ring (``attach(_:)``).
        var streaming = false
        /// A multishot receive (or, for a listener, accept) is on the ring.
        var receiving = false
        /// The descriptor is a listener (its multishot request accepts).
        var accepts = false
        /// The send slot in flight, or -1.
        var sendSlot: Int32 = -1
    }
    // `@exclusivity(unchecked)` on the per-event state: why, and why it is sound, in Context.swift.
    // Debug builds check that confinement: bound at the first wait, checked by every registration.
    private var loopThread = LoopThread()
    @exclusivity(unchecked) var table: [Registration] = []
    /// Descriptors to arm at the start of the next wait.
    @exclusivity(unchecked) private var toArm: [Int32] = []
    @exclusivity(unchecked) private var wakerArmed = false
    /// The ring was created disabled (SINGLE_ISSUER): the first wait enables it.
    private var waitsToEnable = false
    let batch: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    static let batchSize: UInt32 = 256

    /// The stream side (completion mode): buffers, sends, completions.
    @exclusivity(unchecked) var buffers: UringBufferRing?
    @exclusivity(unchecked) var sends = UringSendSlots()
    @exclusivity(unchecked) var completions: [StreamCompletion] = []
    /// Set by ``releaseIdleMemory()``: the next wait shrinks the buffer ring.
    @exclusivity(unchecked) var shrinkWanted = false

    // user_data: kind in bits 60-63, generation in 32-59, descriptor (or slot) in 0-31.
    static let kindShift: UInt64 = 60
    static let kindPoll: UInt64 = 0
    static let kindControl: UInt64 = 1 << 60
    static let kindWaker: UInt64 = 2 << 60
    static let kindCancelAll: UInt64 = 3 << 60
    static let kindReceive: UInt64 = 4 << 60
    static let kindSend: UInt64 = 5 << 60
    static let kindAccept: UInt64 = 6 << 60
    static let kindMask: UInt64 = 15 << 60
    static let generationMask: UInt64 = (1 << 28) - 1

    /// A ring in completion mode where the kernel supports it (poll mode
    /// otherwise, saying why in ``mode``). Throws an error naming the cause
    /// when io_uring is unavailable: the `kernel.io_uring_disabled` sysctl,
    /// ENOSYS, EPERM, or ENOMEM from the locked-memory limit.
    public convenience init() throws(ReactorError) {
        try self.init(completionMode: true)
    }

    /// A ring in poll mode, or in completion mode (when `completionMode` and the kernel has it).
    init(completionMode: Bool) throws(ReactorError) {
        ring = .allocate(capacity: 1)
        // A large completion queue: one poll completion per ready descriptor per turn.
        // COOP_TASKRUN: completions are processed when this thread next enters
        // the kernel for the ring, instead of by interrupting it; without it,
        // every completion interrupts whatever the thread is blocked in (an
        // epoll_wait of another poller fails with EINTR). Kernels before 5.19
        // refuse the flag with EINVAL; then the ring starts without it.
        //
        // The completion mode asks first for SINGLE_ISSUER | DEFER_TASKRUN
        // (6.1): completions are processed only when the loop waits, never
        // in between, which is cheaper and keeps a multishot receive from
        // reading ahead while the loop runs handlers. Its single issuer is
        // the thread that enables the ring, so the ring starts disabled
        // (R_DISABLED) and the first wait — on the loop's thread, wherever
        // the poller was made — enables it and registers the ring's
        // descriptor for that thread (`io_uring_register_ring_fd`).
        var rc: Int32 = 0
        var chosen: UInt32 = 0
        let size = UInt32(IORING_SETUP_CQSIZE), cooperative = UInt32(IORING_SETUP_COOP_TASKRUN)
        let deferred = size | UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN) | UInt32(IORING_SETUP_R_DISABLED)
        let attempts = completionMode ? [deferred, size | cooperative, size] : [size | cooperative, size]
        for flags in attempts {
            var params = io_uring_params()
            params.flags = flags
            params.cq_entries = 16384
            chosen = flags
            rc = io_uring_queue_init_params(1024, ring, &params)
            if rc != -EINVAL { break }
        }
        waitsToEnable = chosen & UInt32(IORING_SETUP_R_DISABLED) != 0
        if rc < 0 {
            ring.deallocate()
            let errno = Errno(rawValue: -rc)
            throw ReactorError("io_uring_queue_init", errno: errno, detail: "io_uring unavailable: \(UringAvailability.explain(errno))")
        }
        batch = .allocate(capacity: Int(UringPoller.batchSize))
        do {
            waker = try EventfdWaker()
        } catch {
            io_uring_queue_exit(ring)
            ring.deallocate()
            batch.deallocate()
            throw error
        }
        if completionMode {
            switch UringBufferRing.make(on: ring) {
            case .success(let ring):
                buffers = ring
                mode = .completion(receiveLimit: ring.receiveLimit, deferredTaskRun: waitsToEnable)
            case .failure(let why):
                mode = .poll("the completion mode needs \(why.what)")
            }
        } else {
            mode = .poll(nil)
        }
    }

    deinit {
        cancelEverything()
        io_uring_queue_exit(ring)
        buffers?.deallocate()
        sends.deallocate()
        ring.deallocate()
        batch.deallocate()
    }

    public func register(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        loopThread.check("register")
        let index = Int(fd.rawValue)
        if isRegistered(index) {
            throw ReactorError("register", .fd(fd.rawValue), errno: .fileExists)
        }
        // A poll request on a bad descriptor would fail only when submitted; check now.
        try Syscall.checkOpen(fd, operation: "register")
        if index >= table.count { table.append(contentsOf: repeatElement(Registration(), count: index + 1 - table.count)) }
        table[index].generation &+= 1
        table[index].epoch &+= 1
        table[index].registered = true
        table[index].armed = false
        table[index].streaming = false
        table[index].receiving = false
        table[index].sendSlot = -1
        table[index].accepts = false
        table[index].token = token.rawValue
        table[index].interest = interest
        if interest != .none { toArm.append(fd.rawValue) }
    }

    public func reregister(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        loopThread.check("reregister")
        let index = Int(fd.rawValue)
        guard isRegistered(index) else {
            throw ReactorError("reregister", .fd(fd.rawValue), errno: .noSuchFileOrDirectory)
        }
        disarm(index)
        table[index].token = token.rawValue
        table[index].interest = interest
        if interest != .none { toArm.append(fd.rawValue) }
    }

    public func deregister(_ fd: FileDescriptor) throws(ReactorError) {
        loopThread.check("deregister")
        let index = Int(fd.rawValue)
        guard isRegistered(index) else {
            throw ReactorError("deregister", .fd(fd.rawValue), errno: .noSuchFileOrDirectory)
        }
        let wasArmed = table[index].armed
        disarm(index)
        table[index].registered = false
        if table[index].streaming { cancelStreamRequests(index) }
        // The caller closes the descriptor next; the ring must drop its poll first.
        if wasArmed { io_uring_submit(ring) }
    }

    public func wait(timeout: Duration?, into events: inout [PollEvent]) throws(ReactorError) {
        loopThread.bindOnce()
        // Tested first: `removeAll(keepingCapacity:)` costs ~50 instructions
        // even on an empty array, and in completion mode it is nearly always empty.
        if !events.isEmpty { events.removeAll(keepingCapacity: true) }
        var timeout = timeout
        if shrinkWanted {
            shrinkWanted = false
            // What was reaped during the shrink is handed out now, without blocking.
            if shrinkBuffers(into: &events) { timeout = .zero }
        }
        if waitsToEnable {
            // This thread becomes the ring's only submitter.
            waitsToEnable = false
            let rc = reactor_enable_rings(ring)
            if rc < 0 { throw ReactorError("io_uring_enable_rings", errno: Errno(rawValue: -rc)) }
            _ = io_uring_register_ring_fd(ring)  // an optimisation: without it, each enter looks the ring up
        }
        for fd in toArm {
            let entry = table[Int(fd)]
            if entry.registered && !entry.armed && entry.interest != .none { arm(Int(fd)) }
        }
        toArm.removeAll(keepingCapacity: true)
        if !wakerArmed {
            wakerArmed = true
            let sqe = nextSQE()
            io_uring_prep_poll_add(sqe, waker.fd, UInt32(POLLIN))
            io_uring_sqe_set_data64(sqe, UringPoller.kindWaker)
        }

        var first: UnsafeMutablePointer<io_uring_cqe>?
        let rc: Int32
        #if DEBUG
        // Completions injected during the submissions are ready now: the wait must not block for others.
        if !completions.isEmpty { timeout = .zero }
        #endif
        if timeout == .zero {
            // Entering the kernel also runs the completions' pending task work.
            rc = buffers == nil ? io_uring_submit(ring) : io_uring_submit_and_get_events(ring)
        } else if let timeout {
            let ns = timeout.nanoseconds
            var ts = __kernel_timespec(tv_sec: Int64(ns / 1_000_000_000), tv_nsec: Int64(ns % 1_000_000_000))
            rc = io_uring_submit_and_wait_timeout(ring, &first, 1, &ts, nil)
        } else {
            rc = io_uring_submit_and_wait_timeout(ring, &first, 1, nil, nil)
        }
        if rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY {
            throw ReactorError("io_uring_submit_and_wait", errno: Errno(rawValue: -rc))
        }
        reap(into: &events)
    }

    /// After a quiet spell (the runtime asks): the buffer ring shrinks to its
    /// initial size at the start of the next wait.
    public func releaseIdleMemory() {
        if buffers?.isGrown == true { shrinkWanted = true }
    }

    /// Unregisters the buffer ring, reaps every completion posted until then
    /// (with cooperative task work one can be posted at the end of any
    /// system call of this thread, the unregister's included), so that each
    /// buffer the kernel took is marked held, and only then discards the
    /// others' pages and registers the ring again. A receive armed on the
    /// old ring takes from the new one; one that ran in between ended with
    /// -ENOBUFS, and starts again. True when something was reaped.
    func shrinkBuffers(into events: inout [PollEvent]) -> Bool {
        guard buffers != nil, buffers!.unregister(on: ring) else { return false }
        let before = completions.count
        reap(into: &events)
        let reaped = !events.isEmpty || completions.count > before
        let discarded = buffers!.shrink(on: ring)
        buffersDiscarded &+= UInt64(discarded)
        return reaped
    }

    /// Buffers whose pages shrinks returned to the kernel, in all.
    public private(set) var buffersDiscarded: UInt64 = 0

    // MARK: Helpers

    private func reap(into events: inout [PollEvent]) {
        while true {
            let count = io_uring_peek_batch_cqe(ring, batch, UringPoller.batchSize)
            if count == 0 { return }
            for index in 0..<Int(count) {
                // Sound: peek_batch filled `count` valid pointers into the CQ
                // ring, which stay valid until cq_advance below.
                complete(batch[index]!.pointee, into: &events)
            }
            io_uring_cq_advance(ring, count)
        }
    }

    @inline(__always)
    private func complete(_ cqe: io_uring_cqe, into events: inout [PollEvent]) {
        let userData = cqe.user_data
        let result = cqe.res
        switch userData & UringPoller.kindMask {
        case UringPoller.kindPoll:
            break
        case UringPoller.kindReceive:
            return received(cqe)
        case UringPoller.kindSend:
            return sent(cqe)
        case UringPoller.kindAccept:
            return acceptedConnection(cqe)
        case UringPoller.kindWaker:
            wakerArmed = false
            waker.reset()
            return
        default:
            return  // a remove's or cancel's own completion: nothing to report
        }
        let index = Int(userData & 0xFFFF_FFFF)
        let generation = (userData >> 32) & UringPoller.generationMask
        guard index < table.count, table[index].registered,
              table[index].generation & UringPoller.generationMask == generation else {
            return  // for a descriptor removed or re-registered since: stale
        }
        table[index].armed = false
        if table[index].interest != .none { toArm.append(Int32(index)) }
        if result == -ECANCELED { return }
        let raw: Readiness = result < 0 ? .error : UringPoller.readiness(UInt32(bitPattern: result))
        let readiness = raw.normalized(for: table[index].interest)
        events.append(PollEvent(token: Token(table[index].token), readiness: readiness))
    }

    private func arm(_ index: Int) {
        table[index].armed = true
        let entry = table[index]
        var mask: UInt32 = 0
        if entry.interest.contains(.read) { mask |= UInt32(POLLIN) | UInt32(UInt16(bitPattern: reactor_POLLRDHUP)) }
        if entry.interest.contains(.write) { mask |= UInt32(POLLOUT) }
        let sqe = nextSQE()
        io_uring_prep_poll_add(sqe, Int32(index), mask)
        io_uring_sqe_set_data64(sqe, UringPoller.tag(index, entry.generation))
    }

    /// Cancels the armed poll, if any, and moves to a new generation so its
    /// late completion is recognised as stale.
    private func disarm(_ index: Int) {
        if table[index].armed {
            let sqe = nextSQE()
            io_uring_prep_poll_remove(sqe, UringPoller.tag(index, table[index].generation))
            io_uring_sqe_set_data64(sqe, UringPoller.kindControl)
            table[index].armed = false
        }
        table[index].generation &+= 1
    }

    /// Cancels every request still on the ring and waits (briefly) for the
    /// cancellations to complete, on this thread. Left to `io_uring_queue_exit`,
    /// the kernel cancels them later from a worker and queues task work to
    /// this thread, which interrupts the thread's next blocking call (an
    /// `epoll_wait` of another poller, say) with a spurious EINTR.
    private func cancelEverything() {
        guard !waitsToEnable else { return }  // never enabled: nothing was submitted
        guard let sqe = io_uring_get_sqe(ring) ?? { io_uring_submit(ring); return io_uring_get_sqe(ring) }() else { return }
        io_uring_prep_cancel64(sqe, 0, Int32(IORING_ASYNC_CANCEL_ANY))
        io_uring_sqe_set_data64(sqe, UringPoller.kindCancelAll)
        var first: UnsafeMutablePointer<io_uring_cqe>?
        var ts = __kernel_timespec(tv_sec: 0, tv_nsec: 100_000_000)
        // Reap until the cancel-all's own completion arrives: by then every
        // cancelled request has completed too.
        var done = false
        while !done {
            let rc = io_uring_submit_and_wait_timeout(ring, &first, 1, &ts, nil)
            if rc < 0 && rc != -EINTR { return }
            while true {
                let count = io_uring_peek_batch_cqe(ring, batch, UringPoller.batchSize)
                if count == 0 { break }
                for index in 0..<Int(count) {
                    // Sound: peek_batch filled `count` valid pointers, valid until cq_advance.
                    let cqe = batch[index]!.pointee
                    if cqe.user_data == UringPoller.kindCancelAll {
                        done = true
                    } else if cqe.user_data & UringPoller.kindMask == UringPoller.kindAccept && cqe.res >= 0 {
                        // A connection a multishot accept took before its cancel: nobody will own it.
                        Glibc.close(cqe.res)
                    }
                }
                io_uring_cq_advance(ring, count)
            }
        }
    }

    func isRegistered(_ index: Int) -> Bool {
        index >= 0 && index < table.count && table[index].registered
    }

    func nextSQE() -> UnsafeMutablePointer<io_uring_sqe> {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        // The submission queue is full: hand it to the kernel, which consumes
        // every entry during submit (no SQPOLL), so the next get succeeds.
        // (A disabled ring — more than 1,024 requests before the first wait —
        // cannot submit; nothing queues that many before a loop runs.)
        io_uring_submit(ring)
        guard let sqe = io_uring_get_sqe(ring) else {
            preconditionFailure("io_uring: the submission queue is full and cannot be submitted (ring not enabled yet)")
        }
        return sqe
    }

    static func tag(_ index: Int, _ generation: UInt64, kind: UInt64 = kindPoll) -> UInt64 {
        kind | (generation & generationMask) << 32 | UInt64(UInt32(truncatingIfNeeded: index))
    }

    @inline(__always)
    private static func readiness(_ bits: UInt32) -> Readiness {
        var readiness: Readiness = []
        if bits & UInt32(POLLIN) != 0 { readiness.insert(.readable) }
        if bits & UInt32(POLLOUT) != 0 { readiness.insert(.writable) }
        if bits & (UInt32(POLLERR) | UInt32(POLLNVAL)) != 0 { readiness.insert(.error) }
        if bits & UInt32(POLLHUP) != 0 { readiness.insert(.hangup) }
        if bits & UInt32(UInt16(bitPattern: reactor_POLLRDHUP)) != 0 { readiness.insert(.readClosed) }
        return readiness
    }
}
#endif

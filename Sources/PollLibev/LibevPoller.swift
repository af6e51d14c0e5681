#if canImport(CLibev)
import CLibev
import CReactorSys
import ReactorCore
import SystemPackage
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The libev backend: one `ev_io` watcher per descriptor, `ev_run(EVRUN_ONCE)`
/// per wait, an `ev_timer` for the wait's timeout and an `ev_async` waker.
///
/// libev is pinned to its epoll backend with `EVFLAG_NOENV`, so `LIBEV_FLAGS`
/// in the environment cannot silently swap it. Timers stay in the runtime's
/// heap (one timer model for every backend); libev only honours the timeout.
///
/// libev reports only readable/writable, also when the peer hangs up or an
/// error is pending. To keep the contract (`.hangup`, `.error`,
/// `.readClosed`), each batch is classified with one `poll(2)` over the
/// descriptors libev reported: one extra system call per batch, not per event.
public final class LibevPoller: Poller {
    public static let name = "libev"

    /// Owns the loop, so a Controller that outlives the poller can still wake safely.
    public let waker: LibevWaker
    private var loop: OpaquePointer { waker.loop }
    // `@exclusivity(unchecked)` on the per-event state: why, and why it is sound, in Context.swift.
    // Debug builds check that confinement: bound at the first wait, checked by every registration.
    private var loopThread = LoopThread()
    /// Descriptor number → its watcher (allocated: libev keeps the address).
    @exclusivity(unchecked) private var watchers: [UnsafeMutablePointer<ev_io>?] = []
    @exclusivity(unchecked) private var interests: [Interest] = []
    private let timeoutTimer: UnsafeMutablePointer<ev_timer>

    // Filled by the C callbacks during `ev_run`.
    @exclusivity(unchecked) fileprivate var collected: [(fd: Int32, token: UInt64, revents: Int32)] = []
    @exclusivity(unchecked) fileprivate var timedOut = false
    @exclusivity(unchecked) fileprivate var woken = false
    #if DEBUG
    /// True while `wait` runs the loop: the only time a callback may reach this poller unretained.
    fileprivate var runningLoop = false
    #endif
    /// poll(2)'s array for `classify`, reused and grown to the largest batch
    /// (an array's append checked uniqueness for every event).
    private var probe: UnsafeMutableBufferPointer<pollfd> = .allocate(capacity: 256)

    public init() throws(ReactorError) {
        waker = try LibevWaker()
        timeoutTimer = .allocate(capacity: 1)
        reactor_ev_timer_init(timeoutTimer, { loop, _, _ in
            LibevPoller.with(loop) { $0.timedOut = true }
        }, 0)
        // Sound: the loop is only run inside `wait`, on this poller's thread,
        // while `self` is alive; callbacks read the pointer back unretained.
        ev_set_userdata(loop, Unmanaged.passUnretained(self).toOpaque())
        waker.start()
    }

    deinit {
        if reactor_ev_is_active(timeoutTimer) != 0 { ev_timer_stop(loop, timeoutTimer) }
        timeoutTimer.deallocate()
        probe.deallocate()
        for watcher in watchers {
            guard let watcher else { continue }
            if reactor_ev_is_active(watcher) != 0 { ev_io_stop(loop, watcher) }
            watcher.deallocate()
        }
        ev_set_userdata(loop, nil)
    }

    /// Runs `body` on the poller whose loop called back, without retaining
    /// it: a callback runs inside `wait`, whose `self` keeps the poller
    /// alive. (Taking the reference as a strong one retained and released
    /// it, and checked exclusive access, for every event: callgrind.)
    @inline(__always)
    fileprivate static func with(_ loop: OpaquePointer?, _ body: (LibevPoller) -> Void) {
        Unmanaged<LibevPoller>.fromOpaque(ev_userdata(loop)!)._withUnsafeGuaranteedRef { poller in
            #if DEBUG
            precondition(poller.runningLoop, "a libev callback outside the poller's wait")
            #endif
            body(poller)
        }
    }

    public func register(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        loopThread.check("register")
        guard watcher(for: fd) == nil else { throw ReactorError("register", .fd(fd.rawValue), errno: .fileExists) }
        // libev finds a bad descriptor only when the loop runs; check now.
        try Syscall.checkOpen(fd, operation: "register")
        let watcher = UnsafeMutablePointer<ev_io>.allocate(capacity: 1)
        reactor_ev_io_init(watcher, { loop, watcher, revents in
            guard let watcher else { return }
            let token = UInt64(UInt(bitPattern: watcher.pointee.data))
            LibevPoller.with(loop) { $0.collected.append((watcher.pointee.fd, token, revents)) }
        }, fd.rawValue, LibevPoller.events(interest))
        // The token rides in the watcher's `data` pointer: tokens, not pointers.
        watcher.pointee.data = UnsafeMutableRawPointer(bitPattern: UInt(token.rawValue))
        let index = Int(fd.rawValue)
        if index >= watchers.count {
            watchers.append(contentsOf: repeatElement(nil, count: index + 1 - watchers.count))
            interests.append(contentsOf: repeatElement(.none, count: index + 1 - interests.count))
        }
        watchers[index] = watcher
        interests[index] = interest
        if interest != .none { ev_io_start(loop, watcher) }
    }

    public func reregister(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        loopThread.check("reregister")
        guard let watcher = watcher(for: fd) else {
            throw ReactorError("reregister", .fd(fd.rawValue), errno: .noSuchFileOrDirectory)
        }
        // libev requires a watcher to be stopped while it is changed.
        if reactor_ev_is_active(watcher) != 0 { ev_io_stop(loop, watcher) }
        reactor_ev_io_set(watcher, fd.rawValue, LibevPoller.events(interest))
        watcher.pointee.data = UnsafeMutableRawPointer(bitPattern: UInt(token.rawValue))
        interests[Int(fd.rawValue)] = interest
        if interest != .none { ev_io_start(loop, watcher) }
    }

    public func deregister(_ fd: FileDescriptor) throws(ReactorError) {
        loopThread.check("deregister")
        guard let watcher = watcher(for: fd) else {
            throw ReactorError("deregister", .fd(fd.rawValue), errno: .noSuchFileOrDirectory)
        }
        if reactor_ev_is_active(watcher) != 0 { ev_io_stop(loop, watcher) }
        watcher.deallocate()
        watchers[Int(fd.rawValue)] = nil
        interests[Int(fd.rawValue)] = .none
    }

    public func wait(timeout: Duration?, into events: inout [PollEvent]) throws(ReactorError) {
        loopThread.bindOnce()
        events.removeAll(keepingCapacity: true)
        collected.removeAll(keepingCapacity: true)
        timedOut = false
        woken = false
        #if DEBUG
        runningLoop = true
        defer { runningLoop = false }
        #endif
        if timeout == .zero {
            ev_run(loop, Int32(EVRUN_NOWAIT))
        } else {
            if let timeout {
                // libev caches its clock; refresh it or the timer fires early.
                ev_now_update(loop)
                reactor_ev_timer_set(timeoutTimer, Double(timeout.nanoseconds) / 1e9)
                ev_timer_start(loop, timeoutTimer)
            }
            // EVRUN_ONCE can return with no watcher fired; only our own
            // signals (an event, the timeout, a wake) or a signal that
            // interrupted epoll_wait end the wait. libev swallows EINTR but
            // leaves it in errno (nothing after its epoll_wait sets errno on
            // success), which is how an interrupted wait is told apart.
            repeat {
                Glibc.errno = 0
                ev_run(loop, Int32(EVRUN_ONCE))
            } while collected.isEmpty && !timedOut && !woken && Glibc.errno != EINTR
            if reactor_ev_is_active(timeoutTimer) != 0 { ev_timer_stop(loop, timeoutTimer) }
        }
        if woken { waker.reset() }
        guard !collected.isEmpty else { return }
        classify(into: &events)
    }

    /// Turns libev's revents into Readiness, adding what libev leaves out
    /// (hangup, error, read-closed) from one zero-timeout poll(2) over the batch.
    private func classify(into events: inout [PollEvent]) {
        if collected.count > probe.count {
            probe.deallocate()
            probe = .allocate(capacity: collected.count)
        }
        for (index, entry) in collected.enumerated() {
            let interest = interests[Int(entry.fd)]
            var mask: Int16 = 0
            if interest.contains(.read) { mask |= Int16(POLLIN) | reactor_POLLRDHUP }
            if interest.contains(.write) { mask |= Int16(POLLOUT) }
            probe[index] = pollfd(fd: entry.fd, events: mask, revents: 0)
        }
        _ = poll(probe.baseAddress, nfds_t(collected.count), 0)
        for (index, entry) in collected.enumerated() {
            var readiness: Readiness = []
            if entry.revents & Int32(EV_READ) != 0 { readiness.insert(.readable) }
            if entry.revents & Int32(EV_WRITE) != 0 { readiness.insert(.writable) }
            if entry.revents & Int32(EV_ERROR) != 0 { readiness.insert(.error) }
            let bits = probe[index].revents
            if bits & (Int16(POLLERR) | Int16(POLLNVAL)) != 0 { readiness.insert(.error) }
            if bits & Int16(POLLHUP) != 0 { readiness.insert(.hangup) }
            if bits & reactor_POLLRDHUP != 0 { readiness.insert(.readClosed) }
            events.append(PollEvent(token: Token(entry.token), readiness: readiness.normalized(for: interests[Int(entry.fd)])))
        }
    }

    private func watcher(for fd: FileDescriptor) -> UnsafeMutablePointer<ev_io>? {
        let index = Int(fd.rawValue)
        return index >= 0 && index < watchers.count ? watchers[index] : nil
    }

    private static func events(_ interest: Interest) -> Int32 {
        var events: Int32 = 0
        if interest.contains(.read) { events |= Int32(EV_READ) }
        if interest.contains(.write) { events |= Int32(EV_WRITE) }
        return events
    }
}

/// Wakes a libev loop from any thread with `ev_async_send`, which libev
/// documents as thread-safe. It owns the loop (destroyed when the last holder
/// of poller or waker lets go), so a late wake never touches freed memory.
public final class LibevWaker: PollerWaker, @unchecked Sendable {
    // @unchecked: `loop` and `async` are only touched from the loop's thread,
    // except by `ev_async_send`, which is the one libev call safe from any thread.
    let loop: OpaquePointer
    private let async: UnsafeMutablePointer<ev_async>
    private let armed = Atomic<Bool>(false)

    init() throws(ReactorError) {
        guard let loop = ev_loop_new(UInt32(EVBACKEND_EPOLL) | UInt32(EVFLAG_NOENV)) else {
            throw ReactorError("ev_loop_new", detail: "libev could not create an epoll-backed loop")
        }
        self.loop = loop
        async = .allocate(capacity: 1)
    }

    /// Arms the async watcher; called once the poller is the loop's userdata.
    fileprivate func start() {
        reactor_ev_async_init(async, { loop, _, _ in LibevPoller.with(loop) { $0.woken = true } })
        ev_async_start(loop, async)
    }

    deinit {
        ev_async_stop(loop, async)
        async.deallocate()
        ev_loop_destroy(loop)
    }

    public func wake() {
        guard !armed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        ev_async_send(loop, async)
    }

    fileprivate func reset() {
        armed.store(false, ordering: .releasing)
    }
}
#endif

import CReactorSys
import ReactorCore
import SystemPackage
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The Linux epoll backend: `epoll_create1`, `epoll_ctl`, `epoll_wait`,
/// level-triggered, the descriptor number in `data.u64` (its token and
/// interest are looked up in dense per-descriptor tables), an eventfd waker.
///
/// epoll reports `EPOLLERR` and `EPOLLHUP` even for a descriptor registered
/// with no events, so `.none` interest is implemented by taking the descriptor
/// out of the epoll set (as libuv does) and putting it back when interest returns.
public final class EpollPoller: Poller {
    public static let name = "epoll"

    private let epfd: Int32
    public let waker: EventfdWaker
    // `@exclusivity(unchecked)` on the per-event state: why, and why it is sound, in Context.swift.
    // Debug builds check that confinement: bound at the first wait, checked by every registration.
    private var loopThread = LoopThread()
    /// Per descriptor number: the registered interest, plus one, or 0 when not
    /// registered. Descriptor numbers are dense, so an array beats a dictionary.
    @exclusivity(unchecked) private var registered: [UInt8] = []
    /// Per descriptor number: the token of its registration. epoll carries the
    /// descriptor number, not the token, so that `wait` also finds the
    /// interest: under read interest a hangup or error must come with
    /// `.readable`, and epoll reports a pipe's `EPOLLHUP` without `EPOLLIN`.
    @exclusivity(unchecked) private var tokens: [UInt64] = []
    /// epoll_wait's output buffer, reused; doubled when a wait fills it.
    private var buffer: UnsafeMutableBufferPointer<epoll_event>

    /// The token the waker's eventfd is registered with; never a ResourceID
    /// (those have a slot below 2^24 in their low bits and start at sequence 1).
    private static let wakerToken = UInt64.max

    public init() throws(ReactorError) {
        precondition(EpollPoller.bitLayoutHolds, "this platform's EPOLL* values differ from Linux's; readiness(_:) must change")
        epfd = try Syscall.check("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        do {
            waker = try EventfdWaker()
        } catch {
            _ = Glibc.close(epfd)
            throw error
        }
        buffer = .allocate(capacity: 256)
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = EpollPoller.wakerToken
        if case .failure(let errno) = Syscall.run({ epoll_ctl(epfd, EPOLL_CTL_ADD, waker.fd, &event) }) {
            let error = ReactorError("epoll_ctl(add waker)", .fd(waker.fd), errno: errno)
            _ = Glibc.close(epfd)
            buffer.deallocate()
            throw error
        }
    }

    deinit {
        _ = Glibc.close(epfd)
        buffer.deallocate()
    }

    public func register(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        loopThread.check("register")
        guard state(of: fd) == 0 else { throw ReactorError("register", .fd(fd.rawValue), errno: .fileExists) }
        if interest != .none {
            try control(EPOLL_CTL_ADD, fd, token: token, interest: interest, operation: "register")
        } else {
            // Not in the epoll set, but the contract still wants EBADF for a closed descriptor.
            try Syscall.checkOpen(fd, operation: "register")
        }
        setState(of: fd, token: token, interest: interest)
    }

    public func reregister(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        loopThread.check("reregister")
        let current = state(of: fd)
        guard current != 0 else { throw ReactorError("reregister", .fd(fd.rawValue), errno: .noSuchFileOrDirectory) }
        let wasParked = current == 1
        switch (wasParked, interest == .none) {
        case (true, true): break
        case (true, false): try control(EPOLL_CTL_ADD, fd, token: token, interest: interest, operation: "reregister")
        case (false, true): try control(EPOLL_CTL_DEL, fd, token: token, interest: interest, operation: "reregister")
        case (false, false): try control(EPOLL_CTL_MOD, fd, token: token, interest: interest, operation: "reregister")
        }
        setState(of: fd, token: token, interest: interest)
    }

    public func deregister(_ fd: FileDescriptor) throws(ReactorError) {
        loopThread.check("deregister")
        let current = state(of: fd)
        guard current != 0 else { throw ReactorError("deregister", .fd(fd.rawValue), errno: .noSuchFileOrDirectory) }
        if current != 1 {
            do {
                try control(EPOLL_CTL_DEL, fd, token: Token(0), interest: .none, operation: "deregister")
            } catch {
                // Contract item 1: a failed call changes nothing — except when
                // the kernel has already forgotten the descriptor (it was closed
                // behind our back: EBADF, or ENOENT for a number now reused).
                // Keeping the entry then would make the next registration of
                // that number fail with EEXIST.
                if error.errno == .badFileDescriptor || error.errno == .noSuchFileOrDirectory { registered[Int(fd.rawValue)] = 0 }
                throw error
            }
        }
        registered[Int(fd.rawValue)] = 0
    }

    public func wait(timeout: Duration?, into events: inout [PollEvent]) throws(ReactorError) {
        loopThread.bindOnce()
        events.removeAll(keepingCapacity: true)
        let count: Int32
        switch Syscall.run({ epoll_wait(epfd, buffer.baseAddress, Int32(buffer.count), Duration.pollMilliseconds(timeout)) }) {
        case .success(let ready): count = ready
        case .failure(.interrupted): return  // contract item 8
        case .failure(let errno): throw ReactorError("epoll_wait", .fd(epfd), errno: errno)
        }
        for index in 0..<Int(count) {
            let event = buffer[index]
            let data = event.data.u64
            if data == EpollPoller.wakerToken {
                waker.reset()
                continue
            }
            let fd = Int(truncatingIfNeeded: data)
            let state = fd < registered.count ? registered[fd] : 0
            guard state > 1 else { continue }  // not registered, or parked: cannot happen, but never report it
            let readiness = EpollPoller.readiness(event.events).normalized(for: Interest(rawValue: state - 1))
            events.append(PollEvent(token: Token(tokens[fd]), readiness: readiness))
        }
        if Int(count) == buffer.count { grow() }
    }

    // MARK: Helpers

    /// epoll's bits as Readiness, by shifts rather than five tests: the
    /// branches were a third of `wait`'s instructions per event (callgrind).
    /// Linux's values are fixed by its ABI — EPOLLIN 0x1, EPOLLOUT 0x4,
    /// EPOLLERR 0x8, EPOLLHUP 0x10, EPOLLRDHUP 0x2000 — and Readiness's are
    /// 1, 2, 4, 8, 16, so OUT/ERR/HUP shift down by one and RDHUP by nine;
    /// `init` checks the constants once.
    @inline(__always)
    private static func readiness(_ bits: UInt32) -> Readiness {
        Readiness(rawValue: UInt8(truncatingIfNeeded: (bits & 0x1) | ((bits >> 1) & 0xE) | ((bits >> 9) & 0x10)))
    }

    /// The bit layout `readiness(_:)` relies on.
    private static let bitLayoutHolds: Bool =
        EPOLLIN.rawValue == 0x1 && EPOLLOUT.rawValue == 0x4 && EPOLLERR.rawValue == 0x8
        && EPOLLHUP.rawValue == 0x10 && EPOLLRDHUP.rawValue == 0x2000

    private func control(_ op: Int32, _ fd: FileDescriptor, token: Token, interest: Interest, operation: String) throws(ReactorError) {
        var event = epoll_event()
        if interest.contains(.read) { event.events |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if interest.contains(.write) { event.events |= EPOLLOUT.rawValue }
        event.data.u64 = UInt64(UInt32(bitPattern: fd.rawValue))
        try Syscall.check(operation, .fd(fd.rawValue)) { epoll_ctl(epfd, op, fd.rawValue, &event) }
    }

    private func state(of fd: FileDescriptor) -> UInt8 {
        let index = Int(fd.rawValue)
        return index >= 0 && index < registered.count ? registered[index] : 0
    }

    private func setState(of fd: FileDescriptor, token: Token, interest: Interest) {
        let index = Int(fd.rawValue)
        if index >= registered.count {
            registered.append(contentsOf: repeatElement(0, count: index + 1 - registered.count))
            tokens.append(contentsOf: repeatElement(0, count: index + 1 - tokens.count))
        }
        registered[index] = interest.rawValue + 1
        tokens[index] = token.rawValue
    }

    private func grow() {
        let bigger = UnsafeMutableBufferPointer<epoll_event>.allocate(capacity: min(buffer.count * 2, 65536))
        buffer.deallocate()
        buffer = bigger
    }
}

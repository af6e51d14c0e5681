import CReactorSys
import ReactorCore
import SystemPackage
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The portable `poll(2)` backend: a dense `pollfd` array handed to the kernel
/// as is, with O(1) register and deregister (swap-remove plus an index map
/// from descriptor number to array position) and a self-pipe waker.
///
/// poll is level-triggered and reports `POLLHUP`/`POLLERR` whatever was asked,
/// so `.none` interest is a negative `fd` in the entry, which poll skips.
/// Each wait scans every entry: O(registered), poll's inherent cost.
public final class PollPoller: Poller {
    public static let name = "poll"

    public let waker: PipeWaker
    // `@exclusivity(unchecked)` on the per-event state: why, and why it is sound, in Context.swift.
    // Debug builds check that confinement: bound at the first wait, checked by every registration.
    private var loopThread = LoopThread()
    /// Entry 0 is the waker's read end; entries 1... are registrations.
    @exclusivity(unchecked) private var pollfds: [pollfd]
    /// Parallel to `pollfds`: the token and the real descriptor of each entry.
    @exclusivity(unchecked) private var tokens: [UInt64]
    @exclusivity(unchecked) private var descriptors: [Int32]
    /// Descriptor number → position in `pollfds`, or -1.
    @exclusivity(unchecked) private var positions: [Int32] = []

    public init() throws(ReactorError) {
        waker = try PipeWaker()
        pollfds = [pollfd(fd: waker.readFD, events: Int16(POLLIN), revents: 0)]
        tokens = [0]
        descriptors = [waker.readFD]
    }

    public func register(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        loopThread.check("register")
        guard position(of: fd) < 0 else { throw ReactorError("register", .fd(fd.rawValue), errno: .fileExists) }
        // poll(2) validates nothing until it runs; check now so a closed
        // descriptor fails here, as it does with epoll.
        try Syscall.checkOpen(fd, operation: "register")
        let index = Int(fd.rawValue)
        if index >= positions.count { positions.append(contentsOf: repeatElement(-1, count: index + 1 - positions.count)) }
        positions[index] = Int32(pollfds.count)
        pollfds.append(PollPoller.entry(fd, interest))
        tokens.append(token.rawValue)
        descriptors.append(fd.rawValue)
    }

    public func reregister(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        loopThread.check("reregister")
        let at = position(of: fd)
        guard at >= 0 else { throw ReactorError("reregister", .fd(fd.rawValue), errno: .noSuchFileOrDirectory) }
        pollfds[at] = PollPoller.entry(fd, interest)
        tokens[at] = token.rawValue
    }

    public func deregister(_ fd: FileDescriptor) throws(ReactorError) {
        loopThread.check("deregister")
        let at = position(of: fd)
        guard at >= 0 else { throw ReactorError("deregister", .fd(fd.rawValue), errno: .noSuchFileOrDirectory) }
        let last = pollfds.count - 1
        if at != last {
            pollfds[at] = pollfds[last]
            tokens[at] = tokens[last]
            descriptors[at] = descriptors[last]
            positions[Int(descriptors[at])] = Int32(at)
        }
        pollfds.removeLast()
        tokens.removeLast()
        descriptors.removeLast()
        positions[Int(fd.rawValue)] = -1
    }

    public func wait(timeout: Duration?, into events: inout [PollEvent]) throws(ReactorError) {
        loopThread.bindOnce()
        events.removeAll(keepingCapacity: true)
        let result = Syscall.run {
            pollfds.withUnsafeMutableBufferPointer { entries in
                poll(entries.baseAddress, nfds_t(entries.count), Duration.pollMilliseconds(timeout))
            }
        }
        let count: Int32
        switch result {
        case .success(let ready): count = ready
        case .failure(.interrupted): return  // contract item 8: an interrupted wait reports nothing
        case .failure(let errno): throw ReactorError("poll", errno: errno)
        }
        var remaining = Int(count)
        if pollfds[0].revents != 0 {
            pollfds[0].revents = 0
            waker.reset()
            remaining -= 1
        }
        var index = 1
        while remaining > 0 && index < pollfds.count {
            let revents = pollfds[index].revents
            if revents != 0 {
                pollfds[index].revents = 0
                remaining -= 1
                let readiness = PollPoller.readiness(revents).normalized(for: PollPoller.interest(pollfds[index].events))
                events.append(PollEvent(token: Token(tokens[index]), readiness: readiness))
            }
            index += 1
        }
    }

    // MARK: Helpers

    private func position(of fd: FileDescriptor) -> Int {
        let index = Int(fd.rawValue)
        return index >= 0 && index < positions.count ? Int(positions[index]) : -1
    }

    private static func entry(_ fd: FileDescriptor, _ interest: Interest) -> pollfd {
        var events: Int16 = 0
        if interest.contains(.read) { events |= Int16(POLLIN) | reactor_POLLRDHUP }
        if interest.contains(.write) { events |= Int16(POLLOUT) }
        // A negative descriptor is skipped by poll: that is how `.none` stays silent.
        return pollfd(fd: interest == .none ? -1 : fd.rawValue, events: events, revents: 0)
    }

    @inline(__always)
    private static func interest(_ events: Int16) -> Interest {
        var interest: Interest = []
        if events & Int16(POLLIN) != 0 { interest.insert(.read) }
        if events & Int16(POLLOUT) != 0 { interest.insert(.write) }
        return interest
    }

    @inline(__always)
    private static func readiness(_ bits: Int16) -> Readiness {
        var readiness: Readiness = []
        if bits & Int16(POLLIN) != 0 { readiness.insert(.readable) }
        if bits & Int16(POLLOUT) != 0 { readiness.insert(.writable) }
        // POLLNVAL: the descriptor was closed while registered (a misuse);
        // surfaced as an error so the resource ends instead of spinning.
        if bits & (Int16(POLLERR) | Int16(POLLNVAL)) != 0 { readiness.insert(.error) }
        if bits & Int16(POLLHUP) != 0 { readiness.insert(.hangup) }
        if bits & reactor_POLLRDHUP != 0 { readiness.insert(.readClosed) }
        return readiness
    }
}

/// Wakes a poll(2) wait through a non-blocking self-pipe. A class so the pipe
/// lives as long as its last holder (the Controller may outlive the poller).
public final class PipeWaker: PollerWaker {
    let readFD: Int32
    let writeFD: Int32
    private let armed = Atomic<Bool>(false)

    init() throws(ReactorError) {
        var fds: [Int32] = [-1, -1]
        try Syscall.check("pipe") { pipe(&fds) }
        readFD = fds[0]
        writeFD = fds[1]
        do {
            try Syscall.makeNonBlocking(FileDescriptor(rawValue: readFD), operation: "pipe")
            try Syscall.makeNonBlocking(FileDescriptor(rawValue: writeFD), operation: "pipe")
        } catch {
            _ = Glibc.close(readFD); _ = Glibc.close(writeFD)
            throw error
        }
    }

    deinit {
        _ = Glibc.close(readFD)
        _ = Glibc.close(writeFD)
    }

    public func wake() {
        guard !armed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(writeFD, &byte, 1)  // EAGAIN means the pipe is full: already awake
    }

    func reset() {
        var sink: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        while Glibc.read(readFD, &sink, MemoryLayout.size(ofValue: sink)) > 0 {}
        armed.store(false, ordering: .releasing)
    }
}

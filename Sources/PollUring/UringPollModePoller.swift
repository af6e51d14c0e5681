#if canImport(CUring)
import ReactorCore
import SystemPackage

/// The io_uring backend in poll mode (`uring-poll`): poll requests on the
/// ring for every descriptor, reads and writes by system calls — the way
/// SwiftNIO uses io_uring. Kept beside the completion mode (``UringPoller``)
/// so the two can be compared, and as the fall-back when the kernel lacks
/// what the completion mode needs.
public final class UringPollModePoller: Poller {
    public static let name = "uring-poll"

    private let ring: UringPoller

    /// Creates the ring; the errors are ``UringPoller``'s.
    public init() throws(ReactorError) {
        ring = try UringPoller(completionMode: false)
    }

    /// Always ``UringPoller/Mode/poll(_:)``.
    public var mode: UringPoller.Mode { ring.mode }

    public var waker: EventfdWaker { ring.waker }

    public func register(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        try ring.register(fd, token: token, interest: interest)
    }

    public func reregister(_ fd: FileDescriptor, token: Token, interest: Interest) throws(ReactorError) {
        try ring.reregister(fd, token: token, interest: interest)
    }

    public func deregister(_ fd: FileDescriptor) throws(ReactorError) {
        try ring.deregister(fd)
    }

    public func wait(timeout: Duration?, into events: inout [PollEvent]) throws(ReactorError) {
        try ring.wait(timeout: timeout, into: &events)
    }
}
#endif

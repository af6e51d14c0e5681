import CReactorSys
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Wakes a poller's wait by writing to an eventfd the poller watches (the
/// epoll and io_uring backends use it).
/// A class so the descriptor lives exactly as long as the last holder: the
/// Controller may outlive the poller, and a waker must never write into a
/// descriptor number that has been closed and reused.
public final class EventfdWaker: PollerWaker {
    /// The eventfd; the poller watches it for readability.
    public let fd: Int32
    /// Set by the first wake after a reset; later wakes skip the system call.
    private let armed = Atomic<Bool>(false)

    /// A waker over a new non-blocking eventfd.
    public init() throws(ReactorError) {
        fd = try Syscall.check("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
    }

    deinit { _ = Glibc.close(fd) }

    public func wake() {
        guard !armed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)  // EAGAIN only if the counter is saturated: already awake
    }

    /// Called by the poller when the eventfd fired, before the runtime looks
    /// at its command queue, so a wake that races the drain is never lost.
    public func reset() {
        var value: UInt64 = 0
        _ = Glibc.read(fd, &value, 8)
        armed.store(false, ordering: .releasing)
    }
}

import CReactorSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An eventfd: a kernel counter that becomes readable when non-zero. Reading
/// reports ``ResourceEvent/signalled(_:)`` with the sum signalled since the
/// last read and resets it.
public final class EventCounter: Resource {
    /// A new eventfd at zero, non-blocking; fails only when the process is out of descriptors.
    public init() throws(ReactorError) {
        let fd = try Syscall.check("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        super.init(fd: FileDescriptor(rawValue: fd), interest: .read)
    }

    public override var kind: String { "eventfd" }

    /// Adds `value` to the counter, making it readable.
    public func signal(_ value: UInt64 = 1) throws(ReactorError) {
        var value = value
        // An eventfd write moves 8 bytes or fails (EAGAIN at the counter's maximum): never a short write.
        try Syscall.check("eventfd write", .fd(fd.rawValue)) { Glibc.write(fd.rawValue, &value, 8) }
    }

    public override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard readiness.contains(.readable) else { return super.handle(readiness, in: context, emit: emit) }
        var value: UInt64 = 0
        let n = Glibc.read(fd.rawValue, &value, 8)
        if n == 8 { emit(.signalled(value)); return .active }
        let errno = Glibc.errno
        if errno == EAGAIN || errno == EINTR { return .active }
        return .failed(ReactorError("eventfd read", .fd(fd.rawValue), errno: .init(rawValue: errno)))
    }
}

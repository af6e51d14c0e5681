import CReactorSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The outcome of one non-blocking transfer. Returned rather than thrown: the
/// hot path sees `wouldBlock` often, and a thrown error is boxed on the heap.
public enum IOResult: Equatable, Sendable {
    /// `n > 0` bytes moved.
    case transferred(Int)
    /// Reading found end of file (0 bytes).
    case endOfFile
    /// `EAGAIN`: try again when the poller says so.
    case wouldBlock
    /// Anything else, with the kernel's reason.
    case failed(Errno)
}

/// Thin, typed wrappers over the system calls the resources use. Each retries
/// on `EINTR`, returns `IOResult` instead of reading `errno` at the call site.
public enum Syscall {
    @inlinable
    static func classify(_ n: Int, eofIsZero: Bool) -> IOResult {
        if n > 0 { return .transferred(n) }
        if n == 0 { return eofIsZero ? .endOfFile : .transferred(0) }
        let code = Glibc.errno
        if code == EAGAIN || code == EWOULDBLOCK { return .wouldBlock }
        return .failed(Errno(rawValue: code))
    }

    public static func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        while true {
            let n = Glibc.read(fd.rawValue, buffer.baseAddress, buffer.count)
            if n < 0 && Glibc.errno == EINTR { continue }
            return classify(n, eofIsZero: true)
        }
    }

    public static func write(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer) -> IOResult {
        while true {
            let n = Glibc.write(fd.rawValue, buffer.baseAddress, buffer.count)
            if n < 0 && Glibc.errno == EINTR { continue }
            return classify(n, eofIsZero: false)
        }
    }

    public static func writev(_ fd: FileDescriptor, _ vectors: UnsafeBufferPointer<iovec>) -> IOResult {
        while true {
            let n = Glibc.writev(fd.rawValue, vectors.baseAddress, Int32(vectors.count))
            if n < 0 && Glibc.errno == EINTR { continue }
            return classify(n, eofIsZero: false)
        }
    }

    /// `close(2)` without retrying on EINTR: on Linux the descriptor is
    /// released even when close reports EINTR, so a retry could close a
    /// descriptor another thread has just been given.
    public static func close(_ fd: FileDescriptor) {
        _ = Glibc.close(fd.rawValue)
    }

    /// Puts a descriptor in non-blocking, close-on-exec mode.
    public static func makeNonBlocking(_ fd: FileDescriptor, operation: String = "fcntl") throws(ReactorError) {
        let flags = fcntl(fd.rawValue, F_GETFL)
        if flags < 0 || fcntl(fd.rawValue, F_SETFL, flags | O_NONBLOCK) < 0 {
            throw ReactorError.lastErrno(operation, .fd(fd.rawValue))
        }
        let fdFlags = fcntl(fd.rawValue, F_GETFD)
        if fdFlags < 0 || fcntl(fd.rawValue, F_SETFD, fdFlags | FD_CLOEXEC) < 0 {
            throw ReactorError.lastErrno(operation, .fd(fd.rawValue))
        }
    }

    /// Fails with EBADF if `fd` is not an open descriptor. Backends whose kernel
    /// interface does not validate at registration (poll) use it.
    public static func checkOpen(_ fd: FileDescriptor, operation: String) throws(ReactorError) {
        if fcntl(fd.rawValue, F_GETFD) < 0 { throw ReactorError.lastErrno(operation, .fd(fd.rawValue)) }
    }

    /// A socket's pending error (`SO_ERROR`), clearing it; nil when none.
    public static func pendingSocketError(_ fd: FileDescriptor) -> Errno? {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &code, &length) < 0 {
            let err = Glibc.errno
            // Not a socket (a pipe, say): there is no pending error to read.
            return err == ENOTSOCK ? nil : Errno(rawValue: err)
        }
        return code == 0 ? nil : Errno(rawValue: code)
    }

    /// Ignores SIGPIPE for the process, once. A write to a closed pipe or
    /// socket then fails with EPIPE, reported as an event, instead of killing
    /// the process (SwiftNIO does the same).
    public static func ignoreSIGPIPE() {
        _ = sigpipeIgnored
    }

    private static let sigpipeIgnored: Bool = {
        signal(SIGPIPE, SIG_IGN)
        return true
    }()
}

/// Nanoseconds on `CLOCK_MONOTONIC`: never jumps with wall-clock changes.
/// A plain UInt64 keeps the timer heap's comparisons cheap.
public struct MonotonicInstant: Comparable, Hashable, Sendable {
    public var nanoseconds: UInt64

    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MonotonicInstant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    @inlinable public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }

    public func advanced(by duration: Duration) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: nanoseconds &+ duration.nanoseconds)
    }

    /// The time from `self` until `later`, zero when `later` has passed.
    public func duration(until later: MonotonicInstant) -> Duration {
        later.nanoseconds > nanoseconds ? .nanoseconds(Int64(later.nanoseconds - nanoseconds)) : .zero
    }
}

extension Duration {
    /// Whole nanoseconds, clamped at zero for negative durations.
    public var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}

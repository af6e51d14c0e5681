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
///
/// **errno discipline** (mio's `syscall!`): every libc call that can fail
/// goes through ``check(_:_:_:)`` or ``run(_:)``, which read `errno` the
/// moment the call returns -1 — before an error message is built, since
/// string interpolation, `inet_ntop` and allocation may all change `errno`.
public enum Syscall {
    /// Runs one libc call that reports failure with a negative result and
    /// `errno`; returns its result, or the `errno` read at once.
    @inlinable
    public static func run<T: SignedInteger>(_ call: () -> T) -> Result<T, Errno> {
        let result = call()
        // Nothing may run between the call and this read: errno is thread-local but any libc call may set it.
        if result < 0 { return .failure(Errno(rawValue: Glibc.errno)) }
        return .success(result)
    }

    /// Runs one libc call that reports failure with a null pointer and `errno`
    /// (`opendir`, say); returns the pointer, or the `errno` read at once.
    @inlinable
    public static func run<T>(_ call: () -> T?) -> Result<T, Errno> {
        guard let result = call() else { return .failure(Errno(rawValue: Glibc.errno)) }
        return .success(result)
    }

    /// Runs one libc call; on failure throws a ``ReactorError`` naming
    /// `operation` and `subject`, with the `errno` read before either is
    /// evaluated (`subject` is built only on failure).
    @inlinable @discardableResult
    public static func check<T: SignedInteger>(_ operation: String, _ subject: @autoclosure () -> ReactorError.Subject = .none,
                                               _ call: () -> T) throws(ReactorError) -> T {
        switch run(call) {
        case .success(let value): return value
        case .failure(let errno): throw ReactorError(operation, subject(), errno: errno)
        }
    }

    /// A transfer's outcome from its byte count (or the errno already read).
    /// `ENOBUFS` from a write is `wouldBlock`, as libuv has it: the kernel
    /// was short of memory for a moment, and the write is retried when the
    /// descriptor is next reported writable, instead of ending the stream.
    @inlinable
    static func classify(_ result: Result<Int, Errno>, eofIsZero: Bool) -> IOResult {
        switch result {
        case .success(let n):
            if n > 0 { return .transferred(n) }
            return eofIsZero ? .endOfFile : .transferred(0)
        case .failure(let errno):
            if errno == .resourceTemporarilyUnavailable || errno == .wouldBlock { return .wouldBlock }
            if errno == .noBufferSpace && !eofIsZero { return .wouldBlock }
            return .failed(errno)
        }
    }

    /// One transfer call, retried on `EINTR`, as an ``IOResult``: the one
    /// loop every transfer below shares. `call` moves at most `count` bytes
    /// (the count it is given; fewer only under fault injection), and
    /// returns its byte count or -1 with `errno`. In debug builds the
    /// thread's ``FaultInjector``, if any, may fail the call first or
    /// shorten it (`site` says which faults fit); release builds compile
    /// none of that.
    @inline(__always)
    static func transfer(_ site: TransferSite, count: Int, eofIsZero: Bool, _ call: (_ count: Int) -> Int) -> IOResult {
        while true {
            #if DEBUG
            var length = count
            var injected: Errno?
            if let injector = FaultInjector.current, let fault = injector.decide(site.faultSite) {
                if fault == .shortTransfers { length = Swift.min(count, 1) } else { injected = errno(of: fault) }
            }
            let result = injected.map { .failure($0) } ?? run { call(length) }
            #else
            let result = run { call(count) }
            #endif
            if case .failure(.interrupted) = result { continue }
            return classify(result, eofIsZero: eofIsZero)
        }
    }

    /// What a transfer is, for the faults that fit it.
    enum TransferSite {
        case readSocket, readFile, write

        #if DEBUG
        var faultSite: FaultInjector.Site {
            switch self {
            case .readSocket: return .read(socket: true)
            case .readFile: return .read(socket: false)
            case .write: return .write
            }
        }
        #endif
    }

    #if DEBUG
    /// The errno an injected fault stands for.
    static func errno(of fault: FaultInjection.Kinds) -> Errno {
        switch fault {
        case .interrupted: return .interrupted
        case .wouldBlock: return .resourceTemporarilyUnavailable
        case .noBuffers: return .noBufferSpace
        case .connectionReset: return .connectionReset
        case .brokenPipe: return .brokenPipe
        case .tooManyOpenFiles: return .tooManyOpenFiles
        default: return .ioError  // no other kind is injected as an errno of a system call
        }
    }
    #endif

    /// One non-blocking `read(2)` into `buffer`, retried on `EINTR`.
    public static func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        transfer(.readFile, count: buffer.count, eofIsZero: true) { Glibc.read(fd.rawValue, buffer.baseAddress, $0) }
    }

    /// One non-blocking `write(2)` of `buffer`, retried on `EINTR`; a short write is `.transferred(n)`.
    public static func write(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer) -> IOResult {
        transfer(.write, count: buffer.count, eofIsZero: false) { Glibc.write(fd.rawValue, buffer.baseAddress, $0) }
    }

    /// One non-blocking `recv(2)` into `buffer`, retried on `EINTR`: a
    /// socket's `read` without the file layer (`vfs_read`, `vfs_write` and
    /// the file position lookup were 6% of an echo server's CPU on loopback,
    /// perf, with `read` and `write`).
    public static func receive(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        transfer(.readSocket, count: buffer.count, eofIsZero: true) { Glibc.recv(fd.rawValue, buffer.baseAddress, $0, 0) }
    }

    /// One non-blocking `send(2)` of `buffer` with `MSG_NOSIGNAL`, retried on
    /// `EINTR`: a socket's `write` without the file layer (see ``receive(_:into:)``).
    public static func send(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer) -> IOResult {
        transfer(.write, count: buffer.count, eofIsZero: false) { Glibc.send(fd.rawValue, buffer.baseAddress, $0, Int32(MSG_NOSIGNAL)) }
    }

    /// One non-blocking `writev(2)` of `vectors`, retried on `EINTR`. (The
    /// count `.max` means all of them: only an injected short write asks
    /// for less, and then writes that much of the first vector.)
    public static func writev(_ fd: FileDescriptor, _ vectors: UnsafeBufferPointer<iovec>) -> IOResult {
        transfer(.write, count: .max, eofIsZero: false) { count in
            if count == .max { return Glibc.writev(fd.rawValue, vectors.baseAddress, Int32(vectors.count)) }
            return Glibc.write(fd.rawValue, vectors[0].iov_base, Swift.min(count, vectors[0].iov_len))
        }
    }

    /// One `accept4` on a listening socket: the connection's descriptor,
    /// non-blocking and close-on-exec, or the errno (EINTR included: the
    /// listener decides). Fault injection may fail it first (debug builds).
    public static func accept(_ fd: FileDescriptor) -> Result<Int32, Errno> {
        #if DEBUG
        if let injector = FaultInjector.current, let fault = injector.decide(.accept) { return .failure(errno(of: fault)) }
        #endif
        return run { accept4(fd.rawValue, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)) }
    }

    /// `close(2)` without retrying on EINTR: on Linux the descriptor is
    /// released even when close reports EINTR, so a retry could close a
    /// descriptor another thread has just been given.
    public static func close(_ fd: FileDescriptor) {
        _ = Glibc.close(fd.rawValue)
    }

    /// Puts a descriptor in non-blocking, close-on-exec mode.
    public static func makeNonBlocking(_ fd: FileDescriptor, operation: String = "fcntl") throws(ReactorError) {
        let flags = try check(operation, .fd(fd.rawValue)) { fcntl(fd.rawValue, F_GETFL) }
        try check(operation, .fd(fd.rawValue)) { fcntl(fd.rawValue, F_SETFL, flags | O_NONBLOCK) }
        let fdFlags = try check(operation, .fd(fd.rawValue)) { fcntl(fd.rawValue, F_GETFD) }
        try check(operation, .fd(fd.rawValue)) { fcntl(fd.rawValue, F_SETFD, fdFlags | FD_CLOEXEC) }
    }

    /// Fails with EBADF if `fd` is not an open descriptor. Backends whose kernel
    /// interface does not validate at registration (poll) use it.
    public static func checkOpen(_ fd: FileDescriptor, operation: String) throws(ReactorError) {
        try check(operation, .fd(fd.rawValue)) { fcntl(fd.rawValue, F_GETFD) }
    }

    /// A socket's pending error (`SO_ERROR`), clearing it; nil when none.
    public static func pendingSocketError(_ fd: FileDescriptor) -> Errno? {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if case .failure(let errno) = run({ getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &code, &length) }) {
            // Not a socket (a pipe, say): there is no pending error to read.
            return errno == .notSocket ? nil : errno
        }
        return code == 0 ? nil : Errno(rawValue: code)
    }

    /// The names in the directory at `path`, without "." and "..", or the
    /// errno of `opendir`.
    package static func directoryEntries(_ path: String) -> Result<[String], Errno> {
        guard let directory = opendir(path) else { return .failure(Errno(rawValue: Glibc.errno)) }
        defer { closedir(directory) }
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        var names: [String] = []
        while let entry = readdir(directory) {
            // SAFETY: the name is read through a pointer up to its NUL, inside
            // the record readdir returned. d_name is declared 256 bytes, but a
            // record ends just after its name: copying the whole field (as
            // `entry.pointee.d_name` does) read past readdir's buffer
            // (AddressSanitizer: heap-buffer-overflow).
            let name = String(cString: (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
        }
        return .success(names)
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
    /// Nanoseconds since an arbitrary point (boot, on Linux).
    public var nanoseconds: UInt64

    /// The instant `nanoseconds` after the clock's origin.
    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current time on `CLOCK_MONOTONIC`.
    public static func now() -> MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MonotonicInstant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    @inlinable public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }

    /// This instant plus `duration` (negative durations count as zero).
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

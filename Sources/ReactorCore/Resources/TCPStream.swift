import CReactorSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection: accepted by a ``TCPListener`` or opened with
/// ``connect(to:)``. Reads report ``ResourceEvent/received(_:)``; the peer's
/// end of file reports ``ResourceEvent/readClosed`` and leaves the write side
/// open (half-close); a reset or other error ends the stream with that error.
public final class TCPStream: StreamResource {

    /// Wraps a connected socket (from `accept4`), with TCP_NODELAY set.
    init(connected fd: FileDescriptor) {
        super.init(fd: fd)
        TCPStream.setNoDelay(fd)
    }

    private init(connecting fd: FileDescriptor) {
        super.init(fd: fd, reading: true)
        awaitingWritability = true  // writable = connected (or failed); writes queue until then
        interest = .both
    }

    public override var kind: String { "tcp-stream" }

    /// Starts a non-blocking connect. Success arrives as
    /// ``ResourceEvent/connected``; failure (refused, unreachable) ends the
    /// stream with the reason, e.g. `connect(fd 9): ECONNREFUSED (Connection refused)`.
    public static func connect(to address: SocketAddress) throws(ReactorError) -> TCPStream {
        let raw = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw ReactorError.lastErrno("socket", .named("\(address)")) }
        let fd = FileDescriptor(rawValue: raw)
        let rc = address.withSockAddr { Glibc.connect(raw, $0, $1) }
        if rc != 0 && Glibc.errno != EINPROGRESS {
            let error = ReactorError.lastErrno("connect", .named("\(address)"))
            Syscall.close(fd)
            throw error
        }
        setNoDelay(fd)
        return TCPStream(connecting: fd)
    }

    /// The peer's address.
    public func peerAddress() throws(ReactorError) -> SocketAddress { try SocketAddress.read(fd, peer: true) }
    /// This end's address.
    public func localAddress() throws(ReactorError) -> SocketAddress { try SocketAddress.read(fd, peer: false) }

    /// Shuts down the write side (the peer reads end of file) once queued
    /// output is sent: at once when nothing is queued, otherwise when the
    /// queue drains, so no queued byte is lost to the half-close.
    public func shutdownWrite() {
        if outbound.isEmpty && !awaitingWritability {
            _ = Glibc.shutdown(fd.rawValue, Int32(SHUT_WR))
        } else {
            shutdownAfterFlush = true
        }
    }

    /// A half-close asked for while bytes were still queued.
    private var shutdownAfterFlush = false

    override func outputDrained() {
        guard shutdownAfterFlush else { return }
        shutdownAfterFlush = false
        _ = Glibc.shutdown(fd.rawValue, Int32(SHUT_WR))
    }

    public override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if awaitingWritability {
            guard readiness.contains(.writable) || readiness.contains(.error) || readiness.contains(.hangup) else { return .active }
            if let errno = Syscall.pendingSocketError(fd) {
                return .failed(ReactorError("connect", .fd(fd.rawValue), errno: errno))
            }
            awaitingWritability = false
            emit(.connected)
            guard isRegistered else { return .active }
            updateInterest()
            // Bytes written while connecting go out now.
            return super.handle(readiness.intersection(.writable), in: context, emit: emit)
        }
        return super.handle(readiness, in: context, emit: emit)
    }

    public override func readEndOfFile(_ readiness: Readiness, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if readiness.contains(.hangup) && outbound.isEmpty { return .closed }
        setReading(false)
        emit(.readClosed)
        return .active
    }

    static func setNoDelay(_ fd: FileDescriptor) {
        var on: Int32 = 1
        setsockopt(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }
}

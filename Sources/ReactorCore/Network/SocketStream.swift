import CReactorSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A stream connection — TCP or Unix domain — accepted by a
/// ``SocketListener`` or opened with ``connect(to:timeout:options:)``.
///
/// Reads report ``ResourceEvent/received(_:)``. The peer's end of file
/// reports ``ResourceEvent/readClosed`` and then closes the stream once its
/// queue is written — unless ``StreamOptions/allowRemoteHalfClosure`` keeps
/// this side's write half open (half-close) for the handler to finish and
/// close. A reset or other error ends the stream with that error
/// (`read(fd 9): ECONNRESET (Connection reset by peer)`). Writes queue what
/// the kernel does not take (see ``StreamResource``).
///
/// Every ending can be asked for while a connect is still in progress:
/// ``shutdownWrite()`` takes effect once the connection completes (after
/// bytes queued meanwhile), ``StreamResource/closeWhenFlushed(within:)``
/// likewise, ``Resource/close()`` and ``abort()`` at once.
public final class SocketStream: StreamResource {
    /// Where this stream connects to (set for outgoing connections; for
    /// accepted ones, see ``peerAddress()``).
    public let remoteAddress: SocketAddress?
    private let family: Int32
    private var connectTimeout: Duration?
    private var connectTimer: TimerID?
    /// A half-close asked for while bytes were still queued.
    private var shutdownAfterFlush = false

    /// Wraps a connected socket from `accept4` and applies `options`.
    init(accepted fd: FileDescriptor, family: Int32, options: StreamOptions) {
        remoteAddress = nil
        self.family = family
        super.init(fd: fd)
        isSocket = true
        configure(options)
    }

    private init(connecting fd: FileDescriptor, to address: SocketAddress, timeout: Duration?, options: StreamOptions) {
        remoteAddress = address
        family = address.family
        connectTimeout = timeout
        super.init(fd: fd, reading: true)
        isSocket = true
        configure(options)
        awaitingWritability = true  // writable = connected (or failed); writes queue until then
        interest = .both
    }

    private func configure(_ options: StreamOptions) {
        Syscall.apply(options, to: fd, family: family)
        highWatermark = options.highWatermark
        lowWatermark = options.lowWatermark
        allowsRemoteHalfClosure = options.allowRemoteHalfClosure
    }

    public override var kind: String { family == AF_UNIX ? "unix-stream" : "tcp-stream" }

    /// A connected socket moves its bytes through the backend's transport
    /// when it has one; one still connecting waits for writability first.
    override var acceptsTransport: Bool { !awaitingWritability }

    /// Starts a non-blocking connect. Success arrives as
    /// ``ResourceEvent/connected``; failure ends the stream with the reason,
    /// e.g. `connect(127.0.0.1:9): ECONNREFUSED (Connection refused)`, or
    /// `ETIMEDOUT ... no answer within 2 s` when `timeout` passes first.
    /// Bytes written before the connection completes are queued and sent
    /// once it does.
    ///
    /// With `tls`, the stream speaks TLS: the handshake starts once the
    /// connection is up, ``ResourceEvent/tlsEstablished(_:)`` reports its
    /// outcome, and bytes written before then are encrypted and sent when it
    /// completes. A failed handshake ends the stream with OpenSSL's reason,
    /// e.g. `tls handshake(resource #3): certificate verify failed (self-signed certificate)`.
    public static func connect(to address: SocketAddress, timeout: Duration? = nil,
                               options: StreamOptions = StreamOptions(),
                               tls: StreamTLSOptions? = nil) throws(ReactorError) -> SocketStream {
        let fd = try Syscall.socket(family: address.family, type: Int32(SOCK_STREAM.rawValue), for: address)
        let result = Syscall.run { address.withSockAddr { Glibc.connect(fd.rawValue, $0, $1) } }
        // EAGAIN: a Unix socket whose listener's backlog is full; it completes like EINPROGRESS.
        if case .failure(let errno) = result, errno != .nowInProgress, errno != .resourceTemporarilyUnavailable {
            Syscall.close(fd)
            throw ReactorError("connect", .named("\(address)"), errno: errno)
        }
        let stream = SocketStream(connecting: fd, to: address, timeout: timeout, options: options)
        if var tls {
            // One cached session per server and port: the same name on two ports is two servers.
            if tls.sessionKey == nil { tls.sessionKey = "\(tls.serverName ?? address.host):\(address.port)" }
            try stream.startTLS(tls)
        }
        return stream
    }

    /// True until an outgoing connection has completed.
    public var isConnecting: Bool { awaitingWritability }

    /// The peer's address.
    public func peerAddress() throws(ReactorError) -> SocketAddress { try SocketAddress.read(fd, peer: true) }
    /// This end's address.
    public func localAddress() throws(ReactorError) -> SocketAddress { try SocketAddress.read(fd, peer: false) }

    /// Shuts down the write side (the peer reads end of file) once queued
    /// output is sent: at once when nothing is queued, otherwise when the
    /// queue drains, so no queued byte is lost to the half-close; on a stream
    /// still connecting, once the connection completes.
    public func shutdownWrite() {
        if let tls {
            // TLS first says so (close_notify), then the transport's write side follows it out.
            shutdownTLS(tls)
            if !tls.isEstablished { return }  // done once the handshake completes
        }
        if outbound.isEmpty && !awaitingWritability {
            _ = Glibc.shutdown(fd.rawValue, Int32(SHUT_WR))
        } else {
            shutdownAfterFlush = true
        }
    }

    /// Closes at once with a TCP reset (`SO_LINGER` 0): queued bytes are
    /// discarded and the peer sees ECONNRESET. For refusing abusive peers;
    /// ``StreamResource/closeWhenFlushed()`` is the graceful close.
    public func abort() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd.rawValue, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    /// `TCP_CORK`: hold partial frames until ``uncork()`` (or 200 ms), so a
    /// header and a body written separately leave in one segment.
    public func cork() { Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_CORK, 1) }
    /// Sends what ``cork()`` held back.
    public func uncork() { Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_CORK, 0) }

    /// Turns `TCP_NODELAY` on or off.
    public func setNoDelay(_ on: Bool) { Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, on ? 1 : 0) }

    public override func didRegister(in context: Context) {
        super.didRegister(in: context)
        if awaitingWritability, let connectTimeout {
            connectTimer = context.schedule(after: connectTimeout, for: self)
        }
    }

    public override func timerFired(_ timer: TimerID, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard timer == connectTimer, awaitingWritability else { return super.timerFired(timer, in: context, emit: emit) }
        connectTimer = nil
        return .failed(ReactorError("connect", .named(remoteAddress.map { "\($0)" } ?? "fd \(fd.rawValue)"),
                                    errno: .timedOut, detail: "no answer within \(connectTimeout ?? .zero)"))
    }

    public override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if awaitingWritability {
            guard !readiness.isDisjoint(with: [.writable, .error, .hangup]) else { return .active }
            if let errno = Syscall.pendingSocketError(fd) ?? (readiness.contains(.hangup) ? .connectionRefused : nil) {
                return .failed(ReactorError("connect", .named(remoteAddress.map { "\($0)" } ?? "fd \(fd.rawValue)"), errno: errno))
            }
            awaitingWritability = false
            if let connectTimer { context.cancel(connectTimer) }
            connectTimer = nil
            emit(.connected)
            guard isRegistered else { return .active }
            updateInterest()
            if let status = beginTLSHandshake(emit: emit), !isActive(status) { return status }
            // Endings asked for while connecting with nothing queued act now;
            // with bytes queued, they act when the flush below drains them.
            if outbound.isEmpty && tls == nil {
                if closeAfterFlush { close(); return .active }
                outputDrained()
            }
            // Bytes written while connecting go out now.
            let status = super.handle(readiness.intersection(.writable), in: context, emit: emit)
            if isRegistered, !onTransport, let streamTransport = context.transport {
                // Connected: from here on the bytes move through the transport,
                // and the poll that watched the connect goes before the next wait.
                onTransport = true
                context.interestChanged(self)
                adoptTransport(streamTransport)
            }
            return status
        }
        return super.handle(readiness, in: context, emit: emit)
    }

    override func outputDrained() {
        guard shutdownAfterFlush else { return }
        shutdownAfterFlush = false
        _ = Glibc.shutdown(fd.rawValue, Int32(SHUT_WR))
    }

    /// End of file: reports ``ResourceEvent/readClosed``; then the stream
    /// closes once flushed, unless it allows half-closure.
    public override func readEndOfFile(_ readiness: Readiness, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        setReading(false)
        emit(.readClosed)
        guard isRegistered else { return .active }
        // Hangup: both directions are shut (this side half-closed earlier, or
        // cannot write any more), so after end of file the stream is done.
        if readiness.contains(.hangup) && outbound.isEmpty && tls == nil { return .closed }
        return allowsRemoteHalfClosure ? .active : endAtEndOfFile()
    }

    private func isActive(_ status: ResourceStatus) -> Bool {
        if case .active = status { return true }
        return false
    }
}

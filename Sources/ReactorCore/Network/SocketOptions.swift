import CReactorSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// How a ``SocketListener`` binds and listens.
public struct ListenerOptions: Sendable {
    /// The kernel's queue of connections not yet accepted.
    public var backlog: Int32 = 1024
    /// `SO_REUSEADDR`: a restarted server rebinds while old connections sit
    /// in TIME_WAIT. On by default for TCP.
    public var reuseAddress = true
    /// `SO_REUSEPORT`: several listeners (one per runtime thread) bind the
    /// same port and the kernel spreads connections across them. Any other
    /// process of the same user that sets it can join the port too (and take
    /// a share of its connections): bind a fixed port without it first if
    /// that matters.
    public var reusePort = false
    /// For a Unix socket path: remove a file left at the path by an earlier
    /// process before binding (only if it is a socket nobody listens on).
    public var removeStaleSocketFile = false

    /// Options with the given values; every one has a default.
    public init(backlog: Int32 = 1024, reuseAddress: Bool = true, reusePort: Bool = false, removeStaleSocketFile: Bool = false) {
        self.backlog = backlog
        self.reuseAddress = reuseAddress
        self.reusePort = reusePort
        self.removeStaleSocketFile = removeStaleSocketFile
    }
}

/// Settings of a stream connection; a listener applies its
/// ``SocketListener/connectionOptions`` to every connection it accepts.
public struct StreamOptions: Sendable {
    /// `TCP_NODELAY`: small writes go out at once instead of waiting to be
    /// coalesced (Nagle). On by default; use ``SocketStream/cork()`` to batch.
    public var noDelay = true
    /// TCP keep-alive probes, off when nil.
    public var keepAlive: KeepAlive?
    /// Queued bytes above which ``StreamResource/isAboveHighWatermark``
    /// turns true: the Service should stop producing for this stream.
    public var highWatermark = 1 << 20
    /// Queued bytes at or below which a stream that went above the high
    /// watermark reports ``ResourceEvent/writableAgain``.
    public var lowWatermark = 256 << 10
    /// `SO_SNDBUF`, when set; the kernel's default otherwise.
    public var sendBufferSize: Int?
    /// `SO_RCVBUF`, when set; the kernel's default otherwise.
    public var receiveBufferSize: Int?
    /// Whether the peer's end of file leaves the stream open for writing
    /// (a half-closed connection the handler finishes and closes), rather
    /// than closing it once its queue is written (the default). See
    /// ``StreamResource/allowsRemoteHalfClosure``.
    public var allowRemoteHalfClosure = false

    /// Options with the given values; every one has a default.
    public init(noDelay: Bool = true, keepAlive: KeepAlive? = nil, highWatermark: Int = 1 << 20, lowWatermark: Int = 256 << 10,
                sendBufferSize: Int? = nil, receiveBufferSize: Int? = nil, allowRemoteHalfClosure: Bool = false) {
        self.allowRemoteHalfClosure = allowRemoteHalfClosure
        self.noDelay = noDelay
        self.keepAlive = keepAlive
        self.highWatermark = highWatermark
        self.lowWatermark = min(lowWatermark, highWatermark)
        self.sendBufferSize = sendBufferSize
        self.receiveBufferSize = receiveBufferSize
    }

    /// TCP keep-alive: after `idle` without traffic, a probe every
    /// `interval`; the connection fails with ETIMEDOUT after `count` unanswered.
    public struct KeepAlive: Sendable {
        /// Time without traffic before the first probe (`TCP_KEEPIDLE`, whole seconds).
        public var idle: Duration
        /// Time between probes (`TCP_KEEPINTVL`, whole seconds).
        public var interval: Duration
        /// Unanswered probes before the connection fails (`TCP_KEEPCNT`).
        public var count: Int32
        /// Keep-alive with the given timing; the defaults probe after a minute.
        public init(idle: Duration = .seconds(60), interval: Duration = .seconds(10), count: Int32 = 6) {
            self.idle = idle
            self.interval = interval
            self.count = count
        }
    }
}

extension Syscall {
    /// `setsockopt` with an `Int32` value.
    /// Best effort: the options a stream's configuration asks for are hints the kernel may clamp.
    @discardableResult
    static func setOption(_ fd: FileDescriptor, _ level: Int32, _ name: Int32, _ value: Int32) -> Bool {
        setOptionResult(fd, level, name, value) == 0
    }

    /// `setsockopt`'s own result, for ``Syscall/check(_:_:_:)`` where a failure matters.
    static func setOptionResult(_ fd: FileDescriptor, _ level: Int32, _ name: Int32, _ value: Int32) -> Int32 {
        var value = value
        return setsockopt(fd.rawValue, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Applies the options that live in the kernel. TCP-only options are
    /// skipped for other families (a Unix socket has no Nagle).
    static func apply(_ options: StreamOptions, to fd: FileDescriptor, family: Int32) {
        let isTCP = family == AF_INET || family == AF_INET6
        if isTCP { setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, options.noDelay ? 1 : 0) }
        if let keepAlive = options.keepAlive, isTCP {
            setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1)
            setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, Int32(clamping: keepAlive.idle.components.seconds))
            setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, Int32(clamping: keepAlive.interval.components.seconds))
            setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, keepAlive.count)
        }
        if let size = options.sendBufferSize { setOption(fd, SOL_SOCKET, SO_SNDBUF, Int32(clamping: size)) }
        if let size = options.receiveBufferSize { setOption(fd, SOL_SOCKET, SO_RCVBUF, Int32(clamping: size)) }
    }

    /// A new non-blocking, close-on-exec socket.
    static func socket(family: Int32, type: Int32, for address: SocketAddress) throws(ReactorError) -> FileDescriptor {
        let raw = try check("socket", .named("\(address)")) {
            Glibc.socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        return FileDescriptor(rawValue: raw)
    }
}

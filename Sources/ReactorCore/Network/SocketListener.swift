import CReactorSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A listening stream socket — TCP over IPv4 or IPv6, or a Unix domain
/// socket — that accepts until `EAGAIN` on each readiness and reports every
/// connection as ``ResourceEvent/accepted(_:)``, already registered.
///
/// **Inheritance** (DReactor's Dispatcher): each accepted connection gets
/// ``connectionOptions`` and the handler ``connectionHandler`` makes for it —
/// or, when that is nil, the listener's own ``Resource/handler`` if that
/// handler takes streams (its ``ResourceHandler/Subject`` is ``Resource``),
/// the runtime's Service otherwise. Override per connection by changing the
/// stream in the `.accepted` callback.
///
/// **Out of descriptors** (EMFILE / ENFILE): the listener stops watching for
/// connections, reports ``ResourceEvent/acceptPaused(_:)``, and retries
/// after a back-off (10 ms doubling to 1 s) — no busy loop; pending
/// connections wait in the kernel's backlog. The first successful accept
/// after that reports ``ResourceEvent/acceptResumed``.
public final class SocketListener: Resource {
    /// The address actually bound (with the kernel's port when 0 was asked for).
    public let localAddress: SocketAddress
    /// Applied to every accepted connection.
    public var connectionOptions: StreamOptions
    /// Makes the handler of each accepted connection (it may hand every
    /// connection the same stateless handler); nil passes on this
    /// listener's own ``Resource/handler`` where it fits (see the type's
    /// documentation).
    public var connectionHandler: ((SocketStream) -> (any ResourceHandler)?)?
    /// When set, every accepted connection speaks TLS with these settings
    /// (the listener's certificate, ALPN, timeouts): its handler sees
    /// plaintext, and ``ResourceEvent/tlsEstablished(_:)`` once the handshake
    /// completes. A plain and a TLS listener can share one runtime.
    public var tls: StreamTLSOptions?

    /// True while accepting is paused for lack of descriptors.
    public private(set) var isPaused = false
    private var retryDelay: Duration = .zero
    private var retryTimer: TimerID?
    private var unixPathToRemove: String?
    /// The transport's accept request is on the ring.
    private var accepting = false

    /// Binds and listens on `address`.
    public init(bindingTo address: SocketAddress, options: ListenerOptions = ListenerOptions(),
                connectionOptions: StreamOptions = StreamOptions()) throws(ReactorError) {
        let fd = try Syscall.socket(family: address.family, type: Int32(SOCK_STREAM.rawValue), for: address)
        do throws(ReactorError) {
            if address.isUnix {
                if options.removeStaleSocketFile, let path = address.path { try SocketListener.removeStaleSocket(at: path) }
            } else {
                if options.reuseAddress { Syscall.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) }
                if options.reusePort {
                    try Syscall.check("setsockopt(SO_REUSEPORT)", .named("\(address)")) { Syscall.setOptionResult(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
                }
            }
            if case .failure(let errno) = Syscall.run({ address.withSockAddr { bind(fd.rawValue, $0, $1) } }) {
                var error = ReactorError("bind", .named("\(address)"), errno: errno)
                if error.errno == .addressInUse {
                    if let path = address.path {
                        var info = stat()
                        let isSocket = lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
                        error.detail = isSocket
                            ? "a socket file exists at that path; pass removeStaleSocketFile to replace a stale one"
                            : "a file that is not a socket exists at that path"
                    } else {
                        error.detail = "another socket is bound to that address"
                    }
                }
                throw error
            }
            try Syscall.check("listen", .named("\(address)")) { listen(fd.rawValue, options.backlog) }
            localAddress = try SocketAddress.read(fd, peer: false)
        } catch {
            Syscall.close(fd)
            throw error
        }
        self.connectionOptions = connectionOptions
        unixPathToRemove = address.path
        super.init(fd: fd, interest: .read)
    }

    deinit {
        // A Unix listener's socket file outlives the socket: remove it, as the process that made it.
        if let path = unixPathToRemove { unlink(path) }
    }

    /// `tcp-listener` or `unix-listener`.
    public override var kind: String { localAddress.isUnix ? "unix-listener" : "tcp-listener" }

    /// Accepts every pending connection, reporting each as `.accepted`.
    public override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard readiness.contains(.readable) else { return super.handle(readiness, in: context, emit: emit) }
        while isRegistered {
            let result = Syscall.accept(fd)
            switch result {
            case .success(let raw):
                accepted(FileDescriptor(rawValue: raw), in: context, emit: emit)
            case .failure(.resourceTemporarilyUnavailable), .failure(.wouldBlock):
                return .active
            case .failure(let errno):
                if let status = acceptFailed(errno, in: context, emit: emit) { return status }
            }
        }
        return .active
    }

    // MARK: Accepting through the transport

    /// A listener accepts through the backend's transport when it has one.
    override var acceptsTransport: Bool { true }

    override func adoptTransport(_ transport: any StreamTransport) {
        transport.attach(fd)
        queueTransportWork()
    }

    override func releaseTransport(_ transport: any StreamTransport) {
        accepting = false
    }

    /// Starts the multishot accept unless one runs or a back-off waits.
    override func submitTransportRequests(_ transport: any StreamTransport, in context: Context) {
        guard onTransport, isRegistered, !accepting, retryTimer == nil else { return }
        accepting = true
        transport.startAccepting(fd)
    }

    /// A connection the transport accepted, or why its accept ended; the
    /// same outcomes as `accept4`'s, with the same pause on EMFILE/ENFILE.
    override func transportCompleted(_ completion: StreamCompletion, via transport: any StreamTransport, in context: Context,
                                     emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard completion.kind == .accepted else { return super.transportCompleted(completion, via: transport, in: context, emit: emit) }
        if !completion.continues {
            accepting = false
            queueTransportWork()  // the kernel ended the multishot: start another (unless pausing)
        }
        guard completion.result < 0 else {
            accepted(FileDescriptor(rawValue: completion.result), in: context, emit: emit)
            return .active
        }
        return acceptFailed(Errno(rawValue: -completion.result), in: context, emit: emit) ?? .active
    }

    /// What an accept's failure (by `accept4` or the transport) means: nil
    /// when the pending connection vanished or a firewall refused it (try the
    /// next), `.active` once out of descriptors (accepting paused, with a
    /// back-off), `.failed` for anything else.
    private func acceptFailed(_ errno: Errno, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus? {
        switch errno {
        case .interrupted, .connectionAbort, .protocolError, .notPermitted, .canceled, .resourceTemporarilyUnavailable:
            return nil
        case .tooManyOpenFiles, .tooManyOpenFilesInSystem, .noBufferSpace, .noMemory:
            pause(ReactorError("accept", .named("\(localAddress)"), errno: errno), in: context, emit: emit)
            return .active
        default:
            return .failed(ReactorError("accept", .named("\(localAddress)"), errno: errno))
        }
    }

    private func accepted(_ fd: FileDescriptor, in context: Context, emit: (ResourceEvent) -> Void) {
        if isPaused {
            isPaused = false
            retryDelay = .zero
            emit(.acceptResumed)
        }
        let stream = SocketStream(accepted: fd, family: localAddress.family, options: connectionOptions)
        if let tls {
            do {
                try stream.startTLS(tls)
            } catch {
                context.logger.warning("accepted connection dropped: \(error)")
                return
            }
        }
        if let connectionHandler {
            stream.handler = connectionHandler(stream)
        } else if let route, route.accepts(stream) {
            stream.route = route
        }
        do {
            try context.register(stream)
        } catch {
            // The stream closes its descriptor when dropped; the listener carries on.
            context.logger.warning("accepted connection not registered: \(error)")
            return
        }
        emit(.accepted(stream))
    }

    private func pause(_ error: ReactorError, in context: Context, emit: (ResourceEvent) -> Void) {
        retryDelay = retryDelay == .zero ? .milliseconds(10) : min(retryDelay * 2, .seconds(1))
        applyInterest(.none)
        retryTimer = context.schedule(after: retryDelay, for: self)
        if !isPaused {
            isPaused = true
            var explained = error
            explained.detail = "out of descriptors; accepting paused, retrying every \(retryDelay) up to 1 s"
            emit(.acceptPaused(explained))
        }
    }

    /// Resumes watching for connections when the back-off timer fires.
    public override func timerFired(_ timer: TimerID, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard timer == retryTimer else { return super.timerFired(timer, in: context, emit: emit) }
        retryTimer = nil
        if onTransport {
            interest = .read
            queueTransportWork()  // a new multishot accept takes the pending connections
        } else {
            applyInterest(.read)  // level-triggered: pending connections report at once
        }
        return .active
    }

    /// Removes a socket file nobody listens on; refuses to touch anything else.
    private static func removeStaleSocket(at path: String) throws(ReactorError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }  // nothing there
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ReactorError("bind", .named(path), errno: .fileExists, detail: "the path exists and is not a socket; not removing it")
        }
        // A live listener accepts a connect; a stale file refuses it.
        let probe = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { _ = Glibc.close(probe) }
        let address = try SocketAddress.unix(path: path)
        if address.withSockAddr({ Glibc.connect(probe, $0, $1) }) == 0 {
            throw ReactorError("bind", .named(path), errno: .addressInUse, detail: "another process is listening on this socket")
        }
        try Syscall.check("unlink stale socket", .named(path)) { unlink(path) }
    }
}

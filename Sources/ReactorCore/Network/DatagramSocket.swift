import DequeModule
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket: UDP over IPv4 or IPv6, or a Unix domain datagram
/// socket (a path or an abstract name).
///
/// **Receiving**: on readability the socket reads datagrams until the kernel
/// has none left, but at most ``datagramsPerWakeup`` per readiness report, so
/// one busy sender cannot starve the runtime's other resources (level-triggered
/// polling reports the socket again on the next turn). Each datagram is read
/// into the runtime's shared read buffer and reported as
/// ``ResourceEvent/datagram(_:from:)``; `from` is the sender's address (nil
/// only for a Unix sender that never bound a name, which cannot be answered).
/// A datagram larger than the read buffer (``RuntimeOptions/readBufferSize``)
/// is never delivered cut short: it is discarded and reported as
/// ``ResourceEvent/datagramTooLarge(length:capacity:from:)`` with its real length.
///
/// **Sending**: ``send(_:to:)-(UnsafeRawBufferPointer,_)`` hands the datagram to the
/// kernel at once when nothing is queued. When the kernel has no room
/// (`EAGAIN`), a copy is queued with its destination and sent, in order, once
/// the socket is writable again; write interest is on only while datagrams are
/// queued. Queued datagrams are never merged nor dropped silently, and a
/// graceful shutdown waits for them (``hasPendingOutput``). The queue has no
/// limit — datagrams have no back-pressure to apply — so a producer that can
/// outpace the network should watch ``queuedByteCount``. An unconnected
/// Unix socket sends its queue in order whatever the destinations, so one
/// receiver that does not read holds back datagrams for the others; and as
/// Linux cannot tell such a socket when a receiver has room again, it
/// retries on a timer (1 ms, doubling to 64 ms) instead of waiting for writability.
///
/// **Connected mode** (``connected(to:bindingTo:)``): ``send(_:)-(UnsafeRawBufferPointer)``
/// needs no address and only the peer's datagrams arrive. When nothing
/// listens at the peer, the kernel learns it from an ICMP port-unreachable
/// and reports `ECONNREFUSED` on a later receive or send. The socket has
/// exactly one party to talk to, so that ends it: the Service gets it back
/// with `.failed(...ECONNREFUSED...)`. An unconnected socket talks to many
/// parties; Linux does not report such errors to it, and should one surface
/// anyway it is logged and skipped, never fatal.
public final class DatagramSocket: Resource {
    /// The address this socket is bound to (with the kernel's port when 0 was asked for).
    public let localAddress: SocketAddress
    /// The peer of a connected socket; nil for an unconnected one.
    public let remoteAddress: SocketAddress?
    /// The most datagrams read per readiness report: more would let one
    /// flooding sender delay every other resource of the runtime.
    public var datagramsPerWakeup = 32
    /// Whether the Service wants datagrams; see ``setReading(_:)``.
    public private(set) var isReading = true
    /// Bytes queued and not yet taken by the kernel.
    public private(set) var queuedByteCount = 0
    /// Queued datagrams that the kernel refused once their turn came (too
    /// large, no route...). Each was logged as a warning with the reason;
    /// a datagram sent without queueing reports the same errors by throwing.
    public private(set) var discardedDatagramCount = 0

    /// A datagram the kernel had no room for: a copy, since the caller's
    /// buffer is only valid during the call, and its destination.
    private struct Outgoing {
        let bytes: [UInt8]
        let address: SocketAddress?
    }

    private var queue = Deque<Outgoing>()
    private let family: Int32
    /// A file-system path this socket created by binding; removed when the
    /// socket goes, as the process that made it.
    private let unixPathToRemove: String?
    /// Set once an error ended the socket: later sends are refused.
    private var failed = false
    /// Linux reports an unconnected Unix datagram socket writable while the
    /// receiver's queue is full (poll looks only at this socket's own send
    /// buffer), so write interest would spin; such a socket retries on a timer.
    private var retryTimer: TimerID?
    private var retryDelay: Duration = .zero

    // MARK: Creating

    /// Binds a new datagram socket to `address`: `127.0.0.1:0` or `[::]:0`
    /// for UDP (the kernel picks the port, see ``localAddress``), or
    /// `.unix(path:)` / `.abstract(name:)` for a Unix datagram socket.
    ///
    /// `reuseAddress` (`SO_REUSEADDR`) and `reusePort` (`SO_REUSEPORT`) let
    /// several sockets bind the same UDP address; with `SO_REUSEPORT` the
    /// kernel spreads incoming datagrams across them. A Unix path must not
    /// exist yet; the socket file is removed when the socket goes.
    public convenience init(bindingTo address: SocketAddress, reuseAddress: Bool = false, reusePort: Bool = false) throws(ReactorError) {
        let fd = try Syscall.socket(family: address.family, type: Int32(SOCK_DGRAM.rawValue), for: address)
        let local: SocketAddress
        do throws(ReactorError) {
            if !address.isUnix {
                if reuseAddress {
                    try Syscall.check("setsockopt(SO_REUSEADDR)", .named("\(address)")) { Syscall.setOptionResult(fd, SOL_SOCKET, SO_REUSEADDR, 1) }
                }
                if reusePort {
                    try Syscall.check("setsockopt(SO_REUSEPORT)", .named("\(address)")) { Syscall.setOptionResult(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
                }
            }
            try DatagramSocket.bind(fd, to: address)
            local = try DatagramSocket.boundAddress(fd, removingOnFailure: address.path)
        } catch {
            Syscall.close(fd)
            throw error
        }
        self.init(fd: fd, family: address.family, localAddress: local, remoteAddress: nil, unixPath: address.path)
    }

    /// A socket connected to `peer`: ``send(_:)-(UnsafeRawBufferPointer)``
    /// goes there without an address, and only `peer`'s datagrams arrive.
    /// Binds to `local` first when given (a Unix client binds a name to be
    /// answered at), otherwise the kernel picks an ephemeral port.
    ///
    /// Connecting a datagram socket sends nothing: it cannot tell whether
    /// anyone listens. A Unix peer that does not exist fails here (ENOENT,
    /// ECONNREFUSED); a UDP peer that does not listen ends the socket later
    /// with ECONNREFUSED (see the type's documentation).
    public static func connected(to peer: SocketAddress, bindingTo local: SocketAddress? = nil) throws(ReactorError) -> DatagramSocket {
        let fd = try Syscall.socket(family: peer.family, type: Int32(SOCK_DGRAM.rawValue), for: peer)
        var boundPath: String?
        do throws(ReactorError) {
            if let local {
                guard local.family == peer.family else {
                    throw ReactorError("bind", .named("\(local)"), errno: Errno(rawValue: EAFNOSUPPORT),
                                       detail: "the local address is not of the peer \(peer)'s family")
                }
                try DatagramSocket.bind(fd, to: local)
                boundPath = local.path
            }
            while case .failure(let errno) = Syscall.run({ peer.withSockAddr { Glibc.connect(fd.rawValue, $0, $1) } }) {
                guard errno == .interrupted else { throw ReactorError("connect", .named("\(peer)"), errno: errno) }
            }
            let localAddress = try DatagramSocket.boundAddress(fd, removingOnFailure: nil)
            return DatagramSocket(fd: fd, family: peer.family, localAddress: localAddress, remoteAddress: peer, unixPath: boundPath)
        } catch {
            // The path was created by the bind above, so it is this call's to remove.
            if let boundPath { unlink(boundPath) }
            Syscall.close(fd)
            throw error
        }
    }

    private init(fd: FileDescriptor, family: Int32, localAddress: SocketAddress, remoteAddress: SocketAddress?, unixPath: String?) {
        self.family = family
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.unixPathToRemove = unixPath
        super.init(fd: fd, interest: .read)
    }

    deinit {
        // A Unix socket's file outlives the socket: remove it, as the process that made it.
        if let path = unixPathToRemove { unlink(path) }
    }

    private static func bind(_ fd: FileDescriptor, to address: SocketAddress) throws(ReactorError) {
        if case .failure(let errno) = Syscall.run({ address.withSockAddr { Glibc.bind(fd.rawValue, $0, $1) } }) {
            var error = ReactorError("bind", .named("\(address)"), errno: errno)
            if error.errno == .addressInUse {
                error.detail = address.isUnix
                    ? "a file exists at that path; a datagram socket does not replace it, remove a stale one first"
                    : "another socket is bound to that address (reuseAddress / reusePort let several share it)"
            }
            throw error
        }
    }

    /// `getsockname` after a bind; removes the just-created socket file on
    /// failure, since nothing else will.
    private static func boundAddress(_ fd: FileDescriptor, removingOnFailure path: String?) throws(ReactorError) -> SocketAddress {
        do {
            return try SocketAddress.read(fd, peer: false)
        } catch {
            if let path { unlink(path) }
            throw error
        }
    }

    // MARK: State

    /// `udp`, or `unix-dgram` for a Unix domain datagram socket.
    public override var kind: String { family == AF_UNIX ? "unix-dgram" : "udp" }

    /// True while datagrams are queued: a graceful shutdown waits for them.
    public override var hasPendingOutput: Bool { !queue.isEmpty }

    /// Datagrams queued and not yet taken by the kernel.
    public var queuedDatagramCount: Int { queue.count }

    /// True for a socket made by ``connected(to:bindingTo:)``.
    public var isConnected: Bool { remoteAddress != nil }

    /// Turns receiving on or off. While off, datagrams wait in the kernel's
    /// receive buffer — and once it is full the kernel drops new ones (UDP)
    /// or makes senders wait (Unix): datagrams have no back-pressure beyond that.
    public func setReading(_ on: Bool) {
        isReading = on
        updateInterest()
    }

    // MARK: Sending

    /// Sends one datagram to `address`.
    ///
    /// Returns true when the kernel took the datagram now, false when it was
    /// queued (the kernel had no room, or earlier datagrams are still queued)
    /// to go out, in order, once the socket is writable. Throws — and sends
    /// nothing — for errors that concern only this datagram, so the socket
    /// stays usable: `EMSGSIZE` (larger than the socket can send; the error
    /// names the size), `EINVAL`, `EAFNOSUPPORT` (an address of another
    /// family), `ENETUNREACH`, `EACCES` (broadcast), `ENOENT` (no Unix socket
    /// at that path), and when the socket is already closed. The same errors
    /// for a datagram that had to be queued can only show once it leaves;
    /// it is then discarded, logged as a warning and counted in
    /// ``discardedDatagramCount``.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, to address: SocketAddress) throws(ReactorError) -> Bool {
        try submit(bytes, to: address)
    }

    /// Sends the bytes of an array, a slice or a string's UTF-8 view as one
    /// datagram to `address` (see ``send(_:to:)-(UnsafeRawBufferPointer,_)``).
    @discardableResult
    public func send<Bytes: Sequence>(_ bytes: Bytes, to address: SocketAddress) throws(ReactorError) -> Bool where Bytes.Element == UInt8 {
        try withBytes(bytes) { (raw) throws(ReactorError) in try submit(raw, to: address) }
    }

    /// Sends one datagram to the peer of a connected socket; throws
    /// `EDESTADDRREQ` on an unconnected one. Returns and throws as
    /// ``send(_:to:)-(UnsafeRawBufferPointer,_)``. A refused peer
    /// (`ECONNREFUSED`, from an earlier datagram's ICMP port-unreachable) ends
    /// the socket: a registered socket is handed back to the Service with
    /// that error and this call returns false; an unregistered one throws it.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer) throws(ReactorError) -> Bool {
        guard remoteAddress != nil else {
            throw ReactorError("send", .named("\(localAddress)"), errno: Errno(rawValue: EDESTADDRREQ),
                               detail: "the socket is not connected; use send(_:to:)")
        }
        return try submit(bytes, to: nil)
    }

    /// Sends the bytes of an array, a slice or a string's UTF-8 view as one
    /// datagram to the connected peer (see ``send(_:)-(UnsafeRawBufferPointer)``).
    @discardableResult
    public func send<Bytes: Sequence>(_ bytes: Bytes) throws(ReactorError) -> Bool where Bytes.Element == UInt8 {
        try withBytes(bytes) { (raw) throws(ReactorError) in try send(raw) }
    }

    /// Calls `body` with the bytes of `bytes` without copying when they are contiguous.
    private func withBytes<Bytes: Sequence>(_ bytes: Bytes, _ body: (UnsafeRawBufferPointer) throws(ReactorError) -> Bool) throws(ReactorError) -> Bool
    where Bytes.Element == UInt8 {
        // withContiguousStorageIfAvailable rethrows untyped errors, so the
        // typed error is carried out of it in a Result.
        // Sound: the views below are used only inside the closures that lend them.
        if let result = bytes.withContiguousStorageIfAvailable({ buffer -> Result<Bool, ReactorError> in
            do throws(ReactorError) { return .success(try body(UnsafeRawBufferPointer(buffer))) } catch { return .failure(error) }
        }) {
            return try result.get()
        }
        let copy = Array(bytes)
        let result = copy.withUnsafeBytes { raw -> Result<Bool, ReactorError> in
            do throws(ReactorError) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private func submit(_ bytes: UnsafeRawBufferPointer, to address: SocketAddress?) throws(ReactorError) -> Bool {
        guard !isClosed, !isClosing, !failed else {
            throw ReactorError("send", target(address), errno: .badFileDescriptor,
                               detail: "the socket is closed; the datagram of \(bytes.count) bytes was not sent")
        }
        // Behind queued datagrams a new one waits its turn: datagrams leave in the order they were sent.
        if queue.isEmpty {
            switch transmit(bytes, to: address) {
            case .sent:
                return true
            case .wouldBlock:
                break
            case .rejected(let error):
                throw error
            case .fatal(let error):
                failed = true
                guard let owner else { throw error }
                owner.end(self, reason: .failed(error))
                return false
            }
        }
        queue.append(Outgoing(bytes: Array(bytes), address: address))
        queuedByteCount += bytes.count
        updateInterest()
        return false
    }

    private enum SendOutcome {
        case sent
        case wouldBlock
        /// The kernel refused this datagram; the socket is fine.
        case rejected(ReactorError)
        /// The socket cannot send any more.
        case fatal(ReactorError)
    }

    /// One `sendto`/`send`, classified.
    private func transmit(_ bytes: UnsafeRawBufferPointer, to address: SocketAddress?) -> SendOutcome {
        // MSG_NOSIGNAL: a shut-down Unix socket reports EPIPE instead of raising SIGPIPE.
        let flags = Int32(MSG_NOSIGNAL)
        // Sound: `bytes` is the caller's buffer or a queued copy, valid for
        // this whole call; the kernel copies the datagram before returning.
        while true {
            let result = Syscall.run {
                if let address {
                    return address.withSockAddr { Glibc.sendto(fd.rawValue, bytes.baseAddress, bytes.count, flags, $0, $1) }
                }
                return Glibc.send(fd.rawValue, bytes.baseAddress, bytes.count, flags)
            }
            let code: Int32
            switch result {
            case .success(let n):
                // A datagram goes whole or not at all: no partial sends to resume.
                bytesOut &+= UInt64(n)
                return .sent
            case .failure(let errno):
                code = errno.rawValue
            }
            switch code {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .wouldBlock
            case EBADF, ENOTSOCK, EFAULT:
                return .fatal(ReactorError("send", target(address), errno: Errno(rawValue: code)))
            case ECONNREFUSED, ENOTCONN, ECONNRESET, EPIPE:
                // Unconnected: about one destination only (a Unix path nobody reads, say).
                guard remoteAddress != nil else {
                    return .rejected(ReactorError("send", target(address), errno: Errno(rawValue: code),
                                                  detail: "the datagram of \(bytes.count) bytes was not sent"))
                }
                // Connected: the error is the socket's, about its one peer.
                return .fatal(ReactorError("send", target(address), errno: Errno(rawValue: code),
                                           detail: "the connected peer is gone (nothing listens there)"))
            case EMSGSIZE:
                return .rejected(ReactorError("send", target(address), errno: Errno(rawValue: code),
                                              detail: "a datagram of \(bytes.count) bytes is larger than this socket can send; it was not sent"))
            default:
                return .rejected(ReactorError("send", target(address), errno: Errno(rawValue: code),
                                              detail: "the datagram of \(bytes.count) bytes was not sent"))
            }
        }
    }

    /// What a send error names: the destination, else the peer.
    private func target(_ address: SocketAddress?) -> ReactorError.Subject {
        if let address = address ?? remoteAddress { return .named("\(address)") }
        return .fd(fd.rawValue)
    }

    /// Sends queued datagrams until the kernel has no room; returns a status
    /// when the socket is finished.
    private func flush(in context: Context) -> ResourceStatus? {
        while let next = queue.first {
            let outcome = next.bytes.withUnsafeBytes { transmit($0, to: next.address) }
            switch outcome {
            case .sent:
                retryDelay = .zero
            case .wouldBlock:
                updateInterest()
                return nil
            case .rejected(let error):
                discardedDatagramCount += 1
                context.logger.warning("\(error); it had been queued, and is discarded")
            case .fatal(let error):
                failed = true
                return .failed(error)
            }
            queue.removeFirst()
            queuedByteCount -= next.bytes.count
        }
        updateInterest()
        return nil
    }

    /// Read interest while reading; write interest while datagrams are queued,
    /// except where writability cannot be trusted (see `retryTimer`).
    private func updateInterest() {
        var wanted: Interest = isReading ? .read : .none
        if !queue.isEmpty {
            if family == AF_UNIX && remoteAddress == nil, let owner {
                if retryTimer == nil {
                    retryDelay = retryDelay == .zero ? .milliseconds(1) : min(retryDelay * 2, .milliseconds(64))
                    retryTimer = owner.schedule(after: retryDelay, for: self)
                }
            } else {
                // Unregistered: writability (reported at once on registration) starts the first flush.
                wanted.insert(.write)
            }
        }
        applyInterest(wanted)
    }

    /// Starts sending datagrams queued before registration.
    public override func didRegister(in context: Context) {
        super.didRegister(in: context)
        // A retry timer of an earlier runtime died with that registration.
        retryTimer = nil
        if !queue.isEmpty { updateInterest() }
    }

    /// Retries queued datagrams of an unconnected Unix socket; other timers
    /// go on to the handler as ``ResourceEvent/timerFired(_:)``.
    public override func timerFired(_ timer: TimerID, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard timer == retryTimer else { return super.timerFired(timer, in: context, emit: emit) }
        retryTimer = nil
        return flush(in: context) ?? .active
    }

    // MARK: Readiness

    /// Sends queued datagrams when writable, then receives (see the type's documentation).
    public override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if readiness.contains(.writable), !queue.isEmpty, retryTimer == nil {
            if let status = flush(in: context) { return status }
        }
        guard isRegistered else { return .active }
        if isReading, !readiness.isDisjoint(with: [.readable, .error, .hangup]) {
            switch receive(in: context, emit: emit) {
            case .drained:
                // Nothing left to read: a hangup now means no more will come.
                if readiness.contains(.hangup), isRegistered { return .closed }
            case .more:
                break
            case .ended(let status):
                return status
            }
        } else if readiness.contains(.error) {
            // Not reading, so no receive consumed the error: read it here, or it would be reported again and again.
            if let errno = Syscall.pendingSocketError(fd), let status = receiveFailed(errno, in: context) { return status }
        } else if readiness.contains(.hangup), !readiness.contains(.readable) {
            return .closed
        }
        return .active
    }

    private enum ReceiveOutcome {
        /// The kernel had no more datagrams.
        case drained
        /// The per-wakeup limit was reached, or the Service paused or destroyed the socket.
        case more
        case ended(ResourceStatus)
    }

    /// Reads datagrams until the kernel has none, up to ``datagramsPerWakeup``.
    private func receive(in context: Context, emit: (ResourceEvent) -> Void) -> ReceiveOutcome {
        let buffer = context.readBuffer
        // Stack space for the sender's address and the one-entry vector: no
        // allocation per readiness.
        return withUnsafeTemporaryAllocation(of: sockaddr_storage.self, capacity: 1) { name in
            withUnsafeTemporaryAllocation(of: iovec.self, capacity: 1) { vector in
                // Sound: both are trivial types, initialized here before any
                // read; the read buffer lives as long as the Context, which
                // outlives this call, and recvmsg writes at most `buffer.count` bytes into it.
                name.initialize(repeating: sockaddr_storage())
                vector.initialize(repeating: iovec(iov_base: buffer.baseAddress, iov_len: buffer.count))
                var attempts = 0
                // At least one, so a limit set to 0 cannot leave readable datagrams spinning the loop.
                while attempts < max(1, datagramsPerWakeup) {
                    // The Service may destroy or pause the socket from a callback.
                    guard isRegistered, isReading else { return .more }
                    attempts += 1
                    var header = msghdr()
                    // Sound: both allocations stay valid for the whole closure,
                    // and msg_namelen tells the kernel the name's real capacity.
                    header.msg_name = UnsafeMutableRawPointer(name.baseAddress!)
                    header.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                    header.msg_iov = vector.baseAddress
                    header.msg_iovlen = 1
                    // MSG_TRUNC: the return value is the datagram's real length even when it did not fit.
                    let n: Int
                    switch Syscall.run({ recvmsg(fd.rawValue, &header, Int32(MSG_TRUNC)) }) {
                    case .success(let count):
                        n = count
                    case .failure(.interrupted):
                        continue
                    case .failure(.resourceTemporarilyUnavailable), .failure(.wouldBlock):
                        return .drained
                    case .failure(let errno):
                        if let status = receiveFailed(errno, in: context) { return .ended(status) }
                        continue
                    }
                    // A Unix sender without a name gives just the family: no
                    // address to answer. The kernel wrote the name into `name`
                    // (initialized above); the clamp only guards the length,
                    // since sockaddr_storage holds any family's address.
                    let from = header.msg_namelen > socklen_t(MemoryLayout<sa_family_t>.size)
                        ? SocketAddress(storage: name[0], length: min(header.msg_namelen, socklen_t(MemoryLayout<sockaddr_storage>.size)))
                        : nil
                    if n > buffer.count || header.msg_flags & Int32(MSG_TRUNC) != 0 {
                        emit(.datagramTooLarge(length: n, capacity: buffer.count, from: from))
                    } else {
                        bytesIn &+= UInt64(n)
                        // Sound: the kernel wrote exactly `n` ≤ buffer.count bytes at the buffer's start.
                        emit(.datagram(ReceivedBytes(UnsafeRawBufferPointer(rebasing: buffer[..<n])), from: from))
                    }
                }
                return .more
            }
        }
    }

    /// What a receive error means; nil when the socket carries on.
    private func receiveFailed(_ errno: Errno, in context: Context) -> ResourceStatus? {
        switch errno.rawValue {
        case ENOMEM, ENOBUFS:
            // The kernel is short of memory for now; level-triggered polling retries.
            return .active
        case EBADF, ENOTSOCK, EFAULT, EINVAL:
            return .failed(ReactorError("receive", .named("\(localAddress)"), errno: errno))
        default:
            if let remoteAddress {
                // The one peer is unreachable or refuses (ICMP): a connected socket is done.
                let detail = errno == .connectionRefused
                    ? "nothing listens at the peer (ICMP port unreachable); a connected datagram socket ends on it"
                    : "the connected peer is unreachable"
                return .failed(ReactorError("receive", .named("\(remoteAddress)"), errno: errno, detail: detail))
            }
            // About some earlier destination of an unconnected socket: the others still matter.
            context.logger.debug("datagram socket error skipped", metadata: ["socket": "\(localAddress)", "error": "\(errno)"])
            return nil
        }
    }
}
